/**
 * `pqc-revocation` (I7). Operator mode: msg.payload {device_id, key_id?} → the next signed,
 * cumulative revocation update, published retained on the revocation topic through the config
 * node's connection, signed with the CA key held in this node's `caKey` credential. Device mode:
 * one message per newly applied revocation entry, and a warning when this device itself was
 * revoked. Glue only: lib/io/revocation-operator.ts does the work. The CA key never reaches a
 * status, log line or error.
 */
import {
  RevocationOperator, caMatches, entryInfo, parseRevocationRequest, revocationCounters, seqValue,
} from '../lib/io/revocation-operator';
import { connectionStatus, StatusReporter, type NodeStatus } from '../lib/io/node-status';
import type { RevocationVerdict } from '../lib/session/session';
import { parseCaKeyPairJson, type CaKeyPair } from '../lib/session/identity';
import { parseCaPublicKeyText } from '../lib/wire/ca-key';
import { readyConfigFor, type ReadyConfig } from './config-lookup';
import type { RedNode, RedRuntime } from './red-api';

interface RevocationProperties {
  name?: string;
  pqcConfig?: string;
  mode?: string;
}

/** Node-RED's runtime also offers eachNode (the active flow configuration); red-api.ts omits it. */
type Runtime = RedRuntime & { nodes: { eachNode?: (callback: (config: Record<string, unknown>) => void) => void } };

type CaProblem = 'no-ca-key' | 'bad-ca-key' | 'no-ca' | 'ca-mismatch';

export = function (RED: RedRuntime): void {
  function PqcRevocation(this: RedNode, config: RevocationProperties): void {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: RedNode, config: RevocationProperties): void {
    const mode = config.mode === undefined || config.mode === '' ? 'operator' : config.mode;
    if (mode !== 'operator' && mode !== 'device') {
      fail(node, 'bad-settings', 'mode must be "operator" or "device"');
      return;
    }
    const pqc = readyConfigFor(RED, node, config.pqcConfig);
    if (!pqc) return;
    if (mode === 'device') {
      setUpDevice(node, pqc);
      return;
    }
    const ca = caKeyFor(node, config.pqcConfig!);
    if (!ca.ok) {
      fail(node, ca.problem, ca.message);
      return;
    }
    setUpOperator(node, pqc, ca.key);
  }

  /** Red status, one error in the log, and every input answered with done(err). */
  function fail(node: RedNode, problem: CaProblem | 'bad-settings', message: string): void {
    node.error(message);
    node.status({ fill: 'red', shape: 'ring', text: `${node.type}.status.${problem}` });
    node.on('input', (_msg, _send, done) => done(new Error(message)));
    node.on('close', (_removed, done) => done());
  }

  /**
   * The CA key pair from the credential, checked against the trust anchor the config node pins:
   * an update signed by another key would be refused by every receiver, and published retained
   * it would hide the valid update from late joiners.
   */
  function caKeyFor(node: RedNode, configId: string): { ok: true; key: CaKeyPair } | { ok: false; problem: CaProblem; message: string } {
    const text = node.credentials?.caKey?.trim() ?? '';
    if (text === '') return { ok: false, problem: 'no-ca-key', message: 'no CA key: paste or upload ca-key.json (from "pqc-iiot ca init")' };
    let key: CaKeyPair;
    try {
      key = parseCaKeyPairJson(text);
    } catch (error) {
      // The parser's messages never quote the input.
      return { ok: false, problem: 'bad-ca-key', message: `CA key is not valid: ${(error as Error).message}` };
    }
    const pinnedText = pinnedCaText(configId);
    const pinned = pinnedText ? parseCaPublicKeyText(pinnedText) : undefined;
    if (!pinned || !pinned.ok) {
      return { ok: false, problem: 'no-ca', message: 'the pqc-config node has no valid CA public key: receivers could not check revocation updates' };
    }
    if (!caMatches(key, pinned.value)) {
      return { ok: false, problem: 'ca-mismatch', message: 'CA key does not match the trust anchor (the CA public key of the pqc-config node)' };
    }
    return { ok: true, key };
  }

  /** The config node's `caPublicKey` property as deployed (also for a config node inside a subflow). */
  function pinnedCaText(configId: string): string | undefined {
    const configNode = RED.nodes.getNode(configId) as (RedNode & { _alias?: string }) | null;
    const ids = new Set<unknown>([configId, configNode?.id, configNode?._alias].filter((v) => v !== undefined));
    let text: string | undefined;
    (RED as Runtime).nodes.eachNode?.((n) => {
      if (ids.has(n.id) && n.type === 'pqc-config' && typeof n.caPublicKey === 'string') text = n.caPublicKey;
    });
    return text;
  }

  function setUpOperator(node: RedNode, pqc: ReadyConfig, ca: CaKeyPair): void {
    const { connection, endpoint, session } = pqc;
    const operator = new RevocationOperator({ ca, session, endpoint, connection });
    const reporter = new StatusReporter(
      (status) => node.status(status),
      (): NodeStatus => {
        if (connection.state === 'connected' && !operator.isSynced) {
          return { fill: 'yellow', shape: 'ring', text: 'pqc-revocation.status.syncing' };
        }
        return connectionStatus(connection.state, revocationCounters(operator.state()) ?? 'pqc-revocation.status.none');
      },
    );
    operator.onChange = () => reporter.update();
    const stopStatus = connection.onStatus(() => reporter.update());
    connection.register(node.id);
    reporter.update();

    node.on('input', (msg, send, done) => {
      let request;
      try {
        request = parseRevocationRequest(msg.payload);
      } catch (error) {
        done(error as Error);
        return;
      }
      operator.revoke(request).then(
        (outcome) => {
          msg.topic = operator.revocationTopic;
          msg.payload = {
            seq: seqValue(outcome.seq),
            added: outcome.added,
            alreadyRevoked: outcome.alreadyRevoked,
            revoked: outcome.total,
          };
          if (!outcome.confirmed) {
            node.warn(`revocation update ${outcome.seq} was accepted by the broker but not received back on "${operator.revocationTopic}" yet`);
          }
          reporter.update();
          send(msg);
          done();
        },
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    });

    node.on('close', (_removed, done) => {
      operator.close();
      stopStatus();
      reporter.close();
      connection.deregister(node.id, done);
    });
  }

  function setUpDevice(node: RedNode, pqc: ReadyConfig): void {
    const { connection, endpoint, session } = pqc;
    const ownKeyId = Buffer.from(pqc.identity.keyId, 'hex');
    const selfRevoked = (): boolean => session.isRevoked(session.deviceId, ownKeyId);
    let warned = false;
    const reporter = new StatusReporter(
      (status) => node.status(status),
      (): NodeStatus => {
        const state = session.revocationState();
        if (selfRevoked()) return { fill: 'yellow', shape: 'dot', text: `this device is revoked · seq ${state.seq}` };
        return connectionStatus(connection.state, revocationCounters(state) ?? 'pqc-revocation.status.none');
      },
    );
    const onRevocation = (verdict: RevocationVerdict): void => {
      for (const entry of verdict.added) {
        node.send({ topic: session.revocationTopic, payload: { ...entryInfo(entry.deviceId, entry.keyId), seq: seqValue(verdict.seq) } });
      }
      if (verdict.selfRevoked && !warned) {
        warned = true;
        node.warn(`this device (${session.deviceId}) has been revoked in update ${verdict.seq}: peers refuse its messages`);
      }
      reporter.update();
    };
    endpoint.on('revocation', onRevocation);
    const stopStatus = connection.onStatus(() => reporter.update());
    connection.register(node.id);
    reporter.update();

    node.on('close', (_removed, done) => {
      endpoint.off('revocation', onRevocation);
      stopStatus();
      reporter.close();
      connection.deregister(node.id, done);
    });
  }

  RED.nodes.registerType('pqc-revocation', PqcRevocation, {
    credentials: {
      caKey: { type: 'password' },
    },
  });
};

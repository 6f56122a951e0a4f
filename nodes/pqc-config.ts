/**
 * `pqc-config`: one MQTT connection, one device identity and one trust anchor, shared by the
 * secure in/out nodes that reference it (DESIGN §2). Glue only: lib/io/config.ts builds the
 * parts, lib/io/endpoint.ts runs them. Secrets live in credentials and never reach a log,
 * status or error text.
 */
import path from 'node:path';
import { buildFromConfig, stateResetHint, type ConfigSettings, type LogLevel } from '../lib/io/config';
import type { TlsOptions } from '../lib/io/mqtt-connection';
import { createIdentity, identityPublicInfo, identityToJson } from '../lib/session/identity';
import { parseKemName, parseSigName } from '../lib/crypto/algorithms';
import type { PqcConfigNode, RedHttpRequest, RedHttpResponse, RedRuntime, TlsConfigNode } from './red-api';

interface PqcConfigProperties extends ConfigSettings {
  name?: string;
  usetls?: boolean | string;
  tls?: string;
}

export = function (RED: RedRuntime): void {
  function PqcConfig(this: PqcConfigNode, config: PqcConfigProperties): void {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: PqcConfigNode, config: PqcConfigProperties): void {
    const credentials = node.credentials ?? {};
    const stateDir = stateDirFor(node.id);
    const log = (level: LogLevel, message: string): void => {
      if (level === 'error') node.error(message);
      else if (level === 'warn') node.warn(message);
      else node.log(message);
    };
    node.pqc = buildFromConfig(config, {
      user: credentials.user, password: credentials.password, identity: credentials.identity, pkcs11Pin: credentials.pkcs11Pin,
    }, {
      ownerId: node.id,
      tls: tlsOptionsFrom(config),
      // Never a temporary folder: state in /tmp would vanish at reboot and reopen replays.
      stateDir: stateDir ?? null,
      log,
    });
    const outcome = node.pqc;
    if (!outcome.ok) {
      // The message names the setting that is wrong; it never quotes the credential itself.
      if (outcome.problem !== 'no-identity') node.error(outcome.message);
      node.on('close', (_removed, done) => done());
      return;
    }
    void outcome.ready.then((state) => {
      // The nodes using this config stay disconnected; their sends fail with this message.
      if (!state.ok) node.error(`${state.message}; ${stateResetHint(outcome.stateDir ?? '')}`);
    });

    // A reconnect loop repeats the same socket error every few seconds; log each kind once.
    let lastWarning = '';
    outcome.connection.on('warning', (message) => {
      if (message !== lastWarning) node.warn(message);
      lastWarning = message;
    });
    outcome.connection.onStatus((state) => {
      if (state === 'connected') {
        lastWarning = '';
        node.log(`connected to ${config.broker}:${config.port} as ${outcome.connection.clientId} (device ${outcome.identity.deviceId}, audit log ${outcome.auditMode})`);
      }
    });
    const reported = new Set<string>();
    outcome.endpoint.on('announcement-rejected', ({ topic, reason }) => {
      // Keyed by topic and reason so an attacker spraying the keys topic cannot flood the log.
      const key = `${topic}\u0000${reason}`;
      if (reported.has(key) || reported.size > 1000) return;
      reported.add(key);
      node.warn(`key announcement on "${topic}" rejected: ${reason}`);
    });
    outcome.endpoint.on('revocation-rejected', ({ topic, reason }) => {
      const key = `revocation\u0000${reason}`;
      if (reported.has(key) || reported.size > 1000) return;
      reported.add(key);
      node.warn(`revocation update on "${topic}" rejected: ${reason}`);
    });
    // Key messages and batch manifests never reach a flow output: warn once per topic and reason.
    for (const [event, what] of [['key-message-rejected', 'topic key message'], ['manifest-rejected', 'batch manifest']] as const) {
      outcome.endpoint.on(event, ({ topic, reason }) => {
        const key = `${event}\u0000${topic}\u0000${reason}`;
        if (reported.has(key) || reported.size > 1000) return;
        reported.add(key);
        node.warn(`${what} on "${topic}" rejected: ${reason}`);
      });
    }
    outcome.endpoint.on('revocation', (r) => {
      const revoked = r.added.map((e) => `${e.deviceId} (key ${e.keyId})`).join(', ') || 'nothing new';
      node.log(`revocation update ${r.seq} applied: ${revoked}`);
      if (r.selfRevoked) node.error('this device\'s own key has been revoked: peers will refuse its messages');
    });
    outcome.endpoint.on('peer', (peer) => node.log(`trusted key of ${peer.deviceId} (key ${peer.keyId}, epoch ${peer.keyEpoch})`));
    outcome.endpoint.on('warning', (message) => node.warn(message));

    node.on('close', (_removed, done) => {
      outcome.close().then(done, done);
    });
  }

  /**
   * `<userDir>/pqc-iiot/<config node id>/`: one folder per config node, never a temporary one
   * (state in /tmp would vanish at reboot and reopen replays). Undefined without a userDir.
   */
  function stateDirFor(id: string): string | undefined {
    const userDir = (RED as unknown as { settings?: { userDir?: unknown } }).settings?.userDir;
    if (typeof userDir !== 'string' || userDir.trim() === '') return undefined;
    // Node ids are hex with a dot; anything else is made safe for a file name.
    const safe = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/.test(id) ? id : `id-${Buffer.from(id, 'utf8').toString('hex').slice(0, 120)}`;
    return path.join(userDir, 'pqc-iiot', safe);
  }

  function tlsOptionsFrom(config: PqcConfigProperties): TlsOptions | undefined {
    if (!(config.usetls === true || config.usetls === 'true') || !config.tls) return undefined;
    const tlsNode = RED.nodes.getNode(config.tls) as TlsConfigNode | null;
    if (!tlsNode) return undefined;
    const options: Record<string, unknown> = {};
    tlsNode.addTLSOptions(options);
    return options as TlsOptions;
  }

  RED.nodes.registerType('pqc-config', PqcConfig, {
    credentials: {
      user: { type: 'text' },
      password: { type: 'password' },
      identity: { type: 'password' },
      pkcs11Pin: { type: 'password' },
    },
  });

  /**
   * New identity for the editor, which puts it into the `identity` credential so Deploy stores
   * it encrypted. Only the response carries the secret; nothing is logged or kept here.
   */
  RED.httpAdmin.post('/pqc-iiot/identity', RED.auth.needsPermission('pqc-config.write'), (req: RedHttpRequest, res: RedHttpResponse) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    try {
      const kem = body.kemAlgorithm === undefined || body.kemAlgorithm === '' ? undefined : parseKemName(String(body.kemAlgorithm));
      const sig = body.sigAlgorithm === undefined || body.sigAlgorithm === '' ? undefined : parseSigName(String(body.sigAlgorithm));
      if (body.kemAlgorithm && !kem) throw new Error('unknown KEM algorithm');
      if (body.sigAlgorithm && !sig) throw new Error('unknown signature algorithm');
      const bundle = createIdentity({ deviceId: String(body.deviceId ?? '').trim(), kemAlgorithm: kem, sigAlgorithm: sig });
      res.status(200).json({ identity: identityToJson(bundle), info: identityPublicInfo(bundle) });
    } catch (error) {
      res.status(400).json({ error: (error as Error).message });
    }
  });
};

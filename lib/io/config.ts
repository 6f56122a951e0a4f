/**
 * Turns a `pqc-config` node's settings (strings and booleans as the editor stores them) and its
 * credentials into a connection, a session and the endpoint joining them — or into one named
 * problem the nodes show as a red status. Nothing here imports node-red, so it is tested alone.
 * Errors and problems never contain secrets: the identity parser's messages are secret-free.
 *
 * With a state folder (the config node passes `<userDir>/pqc-iiot/<config node id>/`), the
 * session's state is restored from it before the connection may start, every accepted message
 * and every new sequence reservation is stored before it is released or published (group
 * commit, lib/io/state-store.ts), and security events go to the signed audit log
 * `audit-<key epoch>.jsonl` in the same folder (docs/PROTOCOL.md §5.1, §12). A state file that
 * does not unseal or that is older than its generation marker stops the node: nothing is sent
 * or received until an operator resets the state.
 */
import path from 'node:path';
import { resolveLimits } from '../limits';
import type { Reason } from '../result';
import { parseIdentityJson, identityPublicInfo, type IdentityBundle, type IdentityPublicInfo } from '../session/identity';
import { Pkcs11ProviderError, openPkcs11Provider, type Pkcs11ErrorCode } from './pkcs11-provider';
import { isPkcs11IdentityJson, parsePkcs11IdentityJson, publicBundleOf, type Pkcs11Identity } from './pkcs11/identity-file';
import { SoftwareProvider, type SecurityProvider } from '../session/provider';
import { SecureSession, type RestoreReport } from '../session/session';
import { parseCaPublicKeyText } from '../wire/ca-key';
import { AuditLog } from './audit-log';
import { holdCryptoWorkersOff, type CryptoWorkersChoice } from './crypto-workers';
import { QUIET_REASONS, SecureEndpoint, claimedSender } from './endpoint';
import { DEFAULT_QUEUE_LIMIT, MqttConnection, type MqttConnectionOptions, type TlsOptions } from './mqtt-connection';
import { STATE_FILES, StateStore, restoreInto, type StateProblem } from './state-store';
import { throughputOptionsFrom, type ThroughputOptions, type ThroughputSettings } from './throughput-settings';

/**
 * Properties of the config node as saved in flows.json (all public); the throughput and
 * flood-protection ones are in lib/io/throughput-settings.ts.
 */
export interface ConfigSettings extends ThroughputSettings {
  broker?: unknown;
  port?: unknown;
  clientid?: unknown;
  keepalive?: unknown;
  cleansession?: unknown;
  protocol?: unknown;
  strict?: unknown;
  caPublicKey?: unknown;
  keysTopicPrefix?: unknown;
  replayWindow?: unknown;
  maxEnvelopeBytes?: unknown;
  queueLimit?: unknown;
  /** Signed audit log in the state folder (default on). */
  audit?: unknown;
  /** PKCS#11 identities: overrides of the module path, token label and key label in the file. */
  pkcs11Module?: unknown;
  pkcs11Token?: unknown;
  pkcs11KeyLabel?: unknown;
}

/** Credentials of the config node (never in flows.json in clear, never logged). */
export interface ConfigCredentials {
  user?: string;
  password?: string;
  identity?: string;
  /** The token user's PIN, for identities kept in a PKCS#11 token. */
  pkcs11Pin?: string;
}

/**
 * Why a config node cannot secure anything; each has a status text in the locales. The state
 * problems are found after start (reading the folder is asynchronous): `ready` reports them.
 */
export type ConfigProblem =
  | 'no-identity' | 'bad-identity' | 'no-ca' | 'bad-ca' | 'no-certificate' | 'bad-settings'
  | 'no-state-dir' | StateProblem
  | 'pkcs11-module' | 'pkcs11-token' | 'pkcs11-pin' | 'pkcs11-key' | 'pkcs11-removed' | 'pkcs11-error';

/** Every problem a config node can report (each has a status text in every node's locale). */
export const CONFIG_PROBLEMS: readonly ConfigProblem[] = Object.freeze([
  'no-identity', 'bad-identity', 'no-ca', 'bad-ca', 'no-certificate', 'bad-settings', 'no-state-dir', 'state-unreadable',
  'state-rollback', 'pkcs11-module', 'pkcs11-token', 'pkcs11-pin', 'pkcs11-key', 'pkcs11-removed', 'pkcs11-error',
]);

/** PKCS#11 error codes → the problem the node shows (messages never hold the PIN). */
export function pkcs11Problem(code: Pkcs11ErrorCode): ConfigProblem {
  switch (code) {
    case 'binding-unavailable':
    case 'module-not-found':
    case 'module-invalid':
      return 'pkcs11-module';
    case 'token-not-found':
      return 'pkcs11-token';
    case 'pin-missing':
    case 'pin-incorrect':
    case 'pin-locked':
      return 'pkcs11-pin';
    case 'key-missing':
    case 'key-mismatch':
      return 'pkcs11-key';
    case 'token-removed':
      return 'pkcs11-removed';
    default:
      return 'pkcs11-error';
  }
}

/** How the start-up (state restore) ended; the connection starts only after `ok: true`. */
export type StartState =
  | {
      ok: true;
      /** False without a state folder (library use): state lives in memory only. */
      persistent: boolean;
      /** True when there was no stored state (first start or after a reset). */
      fresh: boolean;
      restored: RestoreReport | undefined;
    }
  | { ok: false; problem: StateProblem; message: string };

export type ConfigOutcome =
  | {
      ok: true;
      connection: MqttConnection;
      endpoint: SecureEndpoint;
      session: SecureSession;
      identity: IdentityPublicInfo;
      /** Resolves (never rejects) once the stored state is restored and the connection may start. */
      ready: Promise<StartState>;
      /** The state folder, or undefined when the state is kept in memory only. */
      stateDir: string | undefined;
      /** The state store once open (undefined without a state folder or before `ready`). */
      readonly store: StateStore | undefined;
      /** The audit log once open (undefined when off, failed to open, or before `ready`). */
      readonly audit: AuditLog | undefined;
      /** evidence-grade (non-exportable signing key), best-effort (software key) or off. */
      readonly auditMode: 'evidence-grade' | 'best-effort' | 'off';
      close(): Promise<void>;
    }
  | { ok: false; problem: ConfigProblem; message: string };

export type LogLevel = 'info' | 'warn' | 'error';

export interface BuildOptions {
  ownerId: string;
  tls?: TlsOptions;
  clock?: () => number;
  /** Tests shorten the reconnect period; the editor does not expose it. */
  reconnectPeriodMs?: number;
  /**
   * Folder of the durable state and the audit log (one per config node). `null`: one is needed
   * but there is none (no Node-RED userDir), which is the problem `no-state-dir`. Absent: the
   * state lives in memory only and a restart forgets replay windows (library use and unit tests
   * only; the config node always passes a folder or null).
   */
  stateDir?: string | null;
  /** fsync state writes (default true; benchmarks only turn it off). */
  fsync?: boolean;
  /** Log lines for the owner (public data only). */
  log?: (level: LogLevel, message: string) => void;
  /** How often the audit log closes its rate-limit windows (default 10 s). */
  auditTickMs?: number;
}

const DEFAULT_AUDIT_TICK_MS = 10_000;

/** What an operator does about a state problem; part of the error line. */
export function stateResetHint(dir: string): string {
  return `to start over (replay protection restarts from empty), stop Node-RED and delete ` +
    `${Object.values(STATE_FILES).join(', ')} in ${dir}; keep the audit-*.jsonl files`;
}

/**
 * Holds `register` calls until `release()`: the MQTT connection must not start (and deliver
 * messages) before the stored state is restored. Never released when the restore fails.
 */
class HeldConnection extends MqttConnection {
  private held: Set<string> | undefined = new Set();

  override register(userId: string): void {
    if (this.held) {
      if (this.state !== 'closed') this.held.add(userId);
      return;
    }
    super.register(userId);
  }

  override deregister(userId: string, done: () => void): void {
    if (this.held) {
      this.held.delete(userId);
      this.unsubscribeAll(userId);
      done();
      return;
    }
    super.deregister(userId, done);
  }

  release(): void {
    const users = this.held;
    if (!users) return;
    this.held = undefined;
    for (const user of users) super.register(user);
  }
}

/** Audit data strings are at most 256 UTF-16 units. */
function auditText(value: string): string {
  if (value.length <= 256) return value;
  let cut = value.slice(0, 255);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut + '…';
}


function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : typeof value === 'number' ? String(value) : '';
}

/** Editor numbers arrive as strings; empty means "use the default". */
function integer(value: unknown, name: string, fallback: number, min: number, max: number): number {
  const raw = text(value);
  if (raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

function flag(value: unknown, fallback: boolean): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return fallback;
}

/** The MQTT part alone (validated); throws Error with the offending setting's name. */
export function connectionOptionsFrom(settings: ConfigSettings, credentials: ConfigCredentials, opts: Pick<BuildOptions, 'tls' | 'reconnectPeriodMs'> = {}): MqttConnectionOptions {
  const host = text(settings.broker);
  if (host === '') throw new Error('broker host is empty');
  const protocol = text(settings.protocol) || '4';
  if (protocol !== '4' && protocol !== '5') throw new Error('protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5)');
  const options: MqttConnectionOptions = {
    host,
    port: integer(settings.port, 'port', 1883, 1, 65535),
    protocolVersion: protocol === '5' ? 5 : 4,
    clientId: text(settings.clientid),
    keepaliveSeconds: integer(settings.keepalive, 'keepalive', 60, 0, 65535),
    cleanSession: flag(settings.cleansession, true),
    queueLimit: integer(settings.queueLimit, 'queue limit', DEFAULT_QUEUE_LIMIT, 0, 100000),
  };
  if (credentials.user) options.username = credentials.user;
  if (credentials.password) options.password = credentials.password;
  if (opts.tls) options.tls = opts.tls;
  if (opts.reconnectPeriodMs !== undefined) options.reconnectPeriodMs = opts.reconnectPeriodMs;
  return options;
}

export function buildFromConfig(settings: ConfigSettings, credentials: ConfigCredentials, opts: BuildOptions): ConfigOutcome {
  const strict = flag(settings.strict, true);
  const identityText = typeof credentials.identity === 'string' ? credentials.identity.trim() : '';
  if (identityText === '') return { ok: false, problem: 'no-identity', message: 'no device identity: generate one or paste the bundle from "pqc-iiot identity new"' };

  let connectionOptions: MqttConnectionOptions;
  let limits;
  let keysTopicPrefix: string;
  let throughput: ThroughputOptions;
  try {
    connectionOptions = connectionOptionsFrom(settings, credentials, opts);
    throughput = throughputOptionsFrom(settings);
    // The Trust & limits tab's limits and the compact-mode ones of the Throughput tab; the rest are the defaults.
    limits = resolveLimits({ replayWindow: text(settings.replayWindow), maxEnvelopeBytes: text(settings.maxEnvelopeBytes), ...throughput.limits });
    keysTopicPrefix = text(settings.keysTopicPrefix) || 'pqc/keys/';
  } catch (error) {
    return { ok: false, problem: 'bad-settings', message: (error as Error).message };
  }

  // The identity file says where its secret keys are: in the file (software) or in a token.
  const inToken = isPkcs11IdentityJson(identityText);
  let bundle: IdentityBundle;
  let tokenIdentity: Pkcs11Identity | undefined;
  try {
    if (inToken) {
      tokenIdentity = parsePkcs11IdentityJson(identityText);
      bundle = publicBundleOf(tokenIdentity);
    } else {
      bundle = parseIdentityJson(identityText);
    }
  } catch (error) {
    return { ok: false, problem: 'bad-identity', message: (error as Error).message };
  }

  const caText = text(settings.caPublicKey);
  let caPublicKey;
  if (caText !== '') {
    const parsed = parseCaPublicKeyText(caText);
    if (!parsed.ok) return { ok: false, problem: 'bad-ca', message: `CA public key is not valid (${parsed.reason})` };
    caPublicKey = parsed.value;
  } else if (strict) {
    return { ok: false, problem: 'no-ca', message: 'strict mode needs the CA public key (from "pqc-iiot ca init")' };
  }
  if (strict && !bundle.certificate) {
    return { ok: false, problem: 'no-certificate', message: 'strict mode needs a certificate in the identity ("pqc-iiot ca issue")' };
  }

  if (opts.stateDir === null) {
    return {
      ok: false,
      problem: 'no-state-dir',
      message: 'Node-RED has no user directory (settings.userDir): the replay and sequence state cannot be stored, so this config node does not start',
    };
  }

  let provider: SecurityProvider;
  if (tokenIdentity) {
    try {
      provider = openPkcs11Provider(tokenIdentity, {
        pin: typeof credentials.pkcs11Pin === 'string' ? credentials.pkcs11Pin : '',
        module: text(settings.pkcs11Module),
        token: text(settings.pkcs11Token),
        keyLabel: text(settings.pkcs11KeyLabel),
      });
    } catch (error) {
      if (error instanceof Pkcs11ProviderError) return { ok: false, problem: pkcs11Problem(error.code), message: error.message };
      return { ok: false, problem: 'pkcs11-error', message: 'the PKCS#11 token could not be opened' };
    }
  } else {
    provider = new SoftwareProvider(bundle);
  }
  let session: SecureSession;
  let connection: HeldConnection;
  try {
    session = new SecureSession({
      provider, caPublicKey, strict, limits, keysTopicPrefix,
      batch: throughput.batch, verifiedRoots: throughput.verifiedRoots, budget: throughput.budget, compactBatch: throughput.compactBatch,
    });
    connection = new HeldConnection(connectionOptions);
  } catch (error) {
    provider.close();
    return { ok: false, problem: 'bad-settings', message: (error as Error).message };
  }
  return assemble({
    provider, session, connection, identity: identityPublicInfo(bundle), audit: flag(settings.audit, true), cryptoWorkers: throughput.cryptoWorkers, opts,
  });
}

/**
 * Joins session, connection and endpoint, and starts the asynchronous restore. Sends wait for
 * it (a sequence number must not be taken before the stored reservation is known); the
 * connection is held until it succeeded.
 */
function assemble(parts: {
  provider: SecurityProvider; session: SecureSession; connection: HeldConnection; identity: IdentityPublicInfo; audit: boolean;
  cryptoWorkers: CryptoWorkersChoice; opts: BuildOptions;
}): ConfigOutcome {
  const { provider, session, connection, opts } = parts;
  const clock = opts.clock ?? Date.now;
  const log = opts.log ?? (() => undefined);
  // Process-wide (lib/io/crypto-workers.ts): held from here until close().
  let releaseCryptoWorkers: (() => void) | undefined;
  if (parts.cryptoWorkers === 'off') {
    releaseCryptoWorkers = holdCryptoWorkersOff();
    log('info', 'worker threads off for the whole Node-RED process while this config node is deployed: post-quantum work runs on the main thread');
  }
  const stateDir = typeof opts.stateDir === 'string' ? path.resolve(opts.stateDir) : undefined;
  let store: StateStore | undefined;
  let audit: AuditLog | undefined;
  let auditTimer: NodeJS.Timeout | undefined;
  let closing = false;
  /** Last key epoch seen per peer, to tell a rotation from a first trust. */
  const epochs = new Map<string, number>();

  let openGate!: () => void;
  let failGate!: (error: Error) => void;
  const gate = new Promise<void>((resolve, reject) => {
    openGate = resolve;
    failGate = reject;
  });
  gate.catch(() => undefined);

  const record = (what: Promise<unknown> | undefined): void => {
    void what?.catch(() => undefined);
  };
  const auditRejected = (reason: Reason, data: Record<string, string>): void => {
    if (!audit || QUIET_REASONS.has(reason)) return;
    record(audit.rejected(reason, data));
  };

  // The endpoint sees the session through this: sends wait for the restore, and rejected
  // envelopes are audited (the endpoint reports them to the nodes, not as events). The wrappers
  // and bound methods are made once: the endpoint reaches for them with every message.
  const wrappers: Record<string, unknown> = {
    sealDirect: (async (...args) => {
      await gate;
      return session.sealDirect(...args);
    }) satisfies SecureSession['sealDirect'],
    sealTopic: (async (...args) => {
      await gate;
      return session.sealTopic(...args);
    }) satisfies SecureSession['sealTopic'],
    open: (async (topic, payload, now) => {
      const result = await session.open(topic, payload, now);
      if (!result.ok && audit && !QUIET_REASONS.has(result.reason)) {
        const sender = claimedSender(payload, session.limits);
        auditRejected(result.reason, sender === undefined ? { topic: auditText(topic) } : { topic: auditText(topic), peer: sender });
      }
      return result;
    }) satisfies SecureSession['open'],
  };
  const bound = new Map<PropertyKey, unknown>();
  const endpointSession = new Proxy(session, {
    get(target, prop) {
      if (typeof prop === 'string' && Object.hasOwn(wrappers, prop)) return wrappers[prop];
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let method = bound.get(prop);
      if (method === undefined) {
        method = (value as (...a: unknown[]) => unknown).bind(target);
        bound.set(prop, method);
      }
      return method;
    },
  });

  const flushQuietly = (): void => {
    if (!store) return;
    store.flush().catch((error: unknown) => log('warn', `state not saved: ${(error as Error).message}`));
  };

  const endpoint = new SecureEndpoint({
    session: endpointSession,
    connection,
    ownerId: opts.ownerId,
    clock: opts.clock,
    durable: stateDir === undefined ? undefined : () => (store ? store.flush() : gate),
  });

  endpoint.on('peer', (peer) => {
    flushQuietly();
    const previous = epochs.get(peer.deviceId);
    epochs.set(peer.deviceId, peer.keyEpoch);
    if (!audit) return;
    if (previous !== undefined && peer.keyEpoch > previous) {
      record(audit.record('rotated', { peer: peer.deviceId, fromEpoch: previous, toEpoch: peer.keyEpoch, keyId: peer.keyId }));
    } else {
      record(audit.record('peer-trusted', { peer: peer.deviceId, epoch: peer.keyEpoch, keyId: peer.keyId }));
    }
  });
  endpoint.on('revocation', (r) => {
    flushQuietly();
    const seq = r.seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(r.seq) : r.seq.toString();
    record(audit?.record('revoked', { seq, added: r.added.length, untrusted: r.untrusted.length, selfRevoked: r.selfRevoked }));
  });
  endpoint.on('announcement-rejected', ({ topic, reason }) => auditRejected(reason, { topic: auditText(topic) }));
  endpoint.on('revocation-rejected', ({ topic, reason }) => auditRejected(reason, { topic: auditText(topic) }));
  endpoint.on('key-message-rejected', ({ topic, reason }) => auditRejected(reason, { topic: auditText(topic) }));
  endpoint.on('manifest-rejected', ({ topic, reason }) => auditRejected(reason, { topic: auditText(topic) }));
  endpoint.start();

  const fail = (problem: StateProblem, message: string): StartState => {
    failGate(new Error(`${message} (this config node does not run until the state is reset)`));
    // Never connects: no message can be accepted against a state that is not trusted.
    void connection.close();
    return { ok: false, problem, message };
  };

  const start = async (): Promise<StartState> => {
    if (stateDir === undefined) {
      for (const p of session.listPeers()) epochs.set(p.deviceId, p.keyEpoch);
      openGate();
      connection.release();
      return { ok: true, persistent: false, fresh: true, restored: undefined };
    }
    try {
      store = await StateStore.open({ dir: stateDir, provider, counterNamespace: opts.ownerId, fsync: opts.fsync });
    } catch (error) {
      return fail('state-unreadable', `state folder ${stateDir} cannot be used: ${(error as Error).message}`);
    }
    if (parts.audit) {
      const file = path.join(stateDir, `audit-${provider.keyEpoch}.jsonl`);
      try {
        audit = await AuditLog.open({
          file, provider, now: clock, onError: (error) => log('warn', `audit log ${file}: ${error.message}; no further entries are written`),
        });
        log('info', `audit log ${file}: ${provider.nonExportable
          ? 'evidence-grade (the signing key cannot be exported)'
          : 'best-effort (software key: whoever can read the key could rewrite the log)'}`);
        if (audit.resume.kind === 'new-segment') log('warn', `audit log ${file} ended in a broken line (${audit.resume.reason}); a new segment was started`);
        auditTimer = setInterval(() => audit?.tick(), opts.auditTickMs ?? DEFAULT_AUDIT_TICK_MS);
        auditTimer.unref();
      } catch (error) {
        log('warn', `audit log ${file} could not be opened (${(error as Error).message}); continuing without it`);
      }
    }
    const restored = await restoreInto(store, session, clock());
    if (!restored.ok) {
      if (restored.problem === 'state-rollback') {
        const l = restored.load;
        await audit?.record('state-rollback', {
          file: path.basename(l?.file ?? ''), part: l?.part ?? null, stored: l?.stored ?? null, expected: l?.expected ?? null,
          protection: store.rollbackProtection,
        });
      } else {
        await audit?.rejected('bad-field', { what: 'stored state', file: path.basename(restored.load?.file ?? '') });
      }
      return fail(restored.problem, restored.message);
    }
    const report = restored.report;
    for (const p of session.listPeers()) epochs.set(p.deviceId, p.keyEpoch);
    const dropped = report.dropped.map((d) => `${d.deviceId} (${d.reason})`).join(', ');
    if (restored.retiredEpoch !== undefined) {
      log('info', `identity rotated: the state of key epoch ${restored.retiredEpoch} was set aside (state-*.json.retired-epoch-${restored.retiredEpoch}); the new key starts fresh`);
    }
    log('info', restored.fresh
      ? `no stored state in ${stateDir}: starting fresh (rollback detection: ${store.rollbackProtection})`
      : `restored state from ${stateDir}: ${report.peers} trusted peer(s), revocation sequence ${report.revocationSeq}` +
        (dropped ? `; dropped: ${dropped}` : '') + ` (generations ${restored.generations.trust}/${restored.generations.counters}, ` +
        `rollback detection: ${store.rollbackProtection})`);
    if (closing) return { ok: true, persistent: true, fresh: restored.fresh, restored: report };
    openGate();
    connection.release();
    return { ok: true, persistent: true, fresh: restored.fresh, restored: report };
  };

  const ready = start().catch((error: unknown): StartState => fail('state-unreadable', `state could not be restored: ${(error as Error).message}`));

  return {
    ok: true,
    connection,
    endpoint,
    session,
    identity: parts.identity,
    ready,
    stateDir,
    get store() {
      return store;
    },
    get audit() {
      return audit;
    },
    get auditMode() {
      return audit ? (provider.nonExportable ? 'evidence-grade' : 'best-effort') : 'off';
    },
    async close() {
      closing = true;
      // Sends still waiting for the restore fail now (a no-op once the gate is open).
      failGate(new Error('the pqc-config node was closed'));
      try {
        endpoint.stop();
        await connection.close();
        await ready;
        clearInterval(auditTimer);
        try {
          await store?.close();
        } catch (error) {
          log('warn', `state not saved on close: ${(error as Error).message}`);
        }
        await audit?.close();
        provider.close();
      } finally {
        // However the close went, this node no longer asks for anything process-wide.
        releaseCryptoWorkers?.();
      }
    },
  };
}

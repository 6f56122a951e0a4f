/**
 * Turns a `pqc-config` node's settings (strings and booleans as the editor stores them) and its
 * credentials into a connection, a session and the endpoint joining them — or into one named
 * problem the nodes show as a red status. Nothing here imports node-red, so it is tested alone.
 * Errors and problems never contain secrets: the identity parser's messages are secret-free.
 */
import { resolveLimits } from '../limits';
import { parseIdentityJson, identityPublicInfo, type IdentityPublicInfo } from '../session/identity';
import { SoftwareProvider } from '../session/provider';
import { SecureSession } from '../session/session';
import { parseCaPublicKeyText } from '../wire/ca-key';
import { SecureEndpoint } from './endpoint';
import { DEFAULT_QUEUE_LIMIT, MqttConnection, type MqttConnectionOptions, type TlsOptions } from './mqtt-connection';

/** Properties of the config node as saved in flows.json (all public). */
export interface ConfigSettings {
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
}

/** Credentials of the config node (never in flows.json in clear, never logged). */
export interface ConfigCredentials {
  user?: string;
  password?: string;
  identity?: string;
}

/** Why a config node cannot secure anything; each has a status text in the locales. */
export type ConfigProblem = 'no-identity' | 'bad-identity' | 'no-ca' | 'bad-ca' | 'no-certificate' | 'bad-settings';

export type ConfigOutcome =
  | { ok: true; connection: MqttConnection; endpoint: SecureEndpoint; session: SecureSession; identity: IdentityPublicInfo; close(): Promise<void> }
  | { ok: false; problem: ConfigProblem; message: string };

export interface BuildOptions {
  ownerId: string;
  tls?: TlsOptions;
  clock?: () => number;
  /** Tests shorten the reconnect period; the editor does not expose it. */
  reconnectPeriodMs?: number;
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
  try {
    connectionOptions = connectionOptionsFrom(settings, credentials, opts);
    limits = resolveLimits({ replayWindow: text(settings.replayWindow), maxEnvelopeBytes: text(settings.maxEnvelopeBytes) });
    keysTopicPrefix = text(settings.keysTopicPrefix) || 'pqc/keys/';
  } catch (error) {
    return { ok: false, problem: 'bad-settings', message: (error as Error).message };
  }

  let bundle;
  try {
    bundle = parseIdentityJson(identityText);
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

  const provider = new SoftwareProvider(bundle);
  let session: SecureSession;
  let connection: MqttConnection;
  try {
    session = new SecureSession({ provider, caPublicKey, strict, limits, keysTopicPrefix });
    connection = new MqttConnection(connectionOptions);
  } catch (error) {
    provider.close();
    return { ok: false, problem: 'bad-settings', message: (error as Error).message };
  }
  const endpoint = new SecureEndpoint({ session, connection, ownerId: opts.ownerId, clock: opts.clock });
  endpoint.start();
  return {
    ok: true,
    connection,
    endpoint,
    session,
    identity: identityPublicInfo(bundle),
    async close() {
      endpoint.stop();
      await connection.close();
      provider.close();
    },
  };
}

/**
 * `pqc-iiot ca revoke`: the operator's side of distributed revocation (I7). Each call issues
 * the next cumulative, CA-signed update (seq + 1, every key revoked so far plus the new one),
 * bound to the revocation topic, and optionally publishes it retained at QoS 1 so late joiners
 * get it from the broker. docs/PROTOCOL.md §2.6 and §6.3.
 *
 * The CA directory keeps the last issued update as revocations.bin (authoritative) and a
 * readable revocations.json (never read back). The state for the next update is rebuilt by
 * decoding revocations.bin and verifying it under the CA key, exactly as a receiver would, so
 * an edited file is refused instead of being extended.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_LIMITS, DEVICE_ID_PATTERN, fingerprintOf, isValidTopicName, toHex, type CaKeyPair } from '../index';
import { MqttConnection, type MqttConnectionOptions } from '../io/mqtt-connection';
import { DEFAULT_REVOCATION_TOPIC } from '../session/session';
import { EMPTY_REVOCATIONS, applyRevocation, isRevoked, issueRevocation, type RevocationState } from '../trust/revocation';
import { ALL_KEYS, decodeRevocation } from '../wire/revocation';
import { stringOption } from './args';
import { loadCa } from './ca';
import {
  CliError, EXIT, displayPath, nowOf, quoteValue, readFileChecked, resolvePath, usageError, writeFileAtomic, writeLines,
  type CliIo, type Command,
} from './common';

export const REVOCATIONS_FILE = 'revocations.bin';
export const REVOCATIONS_JSON = 'revocations.json';
export const REVOCATIONS_FORMAT = 'pqc-iiot-revocations/1';
const PUBLIC_FILE_MODE = 0o644;
const DEFAULT_TIMEOUT_S = 10;
const MAX_TIMEOUT_S = 600;

export const caRevoke: Command = {
  spec: {
    command: 'ca revoke',
    summary: 'Revoke a device key (or all its keys): issue the next signed, cumulative revocation update.',
    options: [
      { name: 'dir', value: 'DIR', required: true, description: `CA directory; keeps the last update in ${REVOCATIONS_FILE} (+ ${REVOCATIONS_JSON})` },
      { name: 'id', value: 'DEVICE_ID', required: true, description: 'device whose key is revoked' },
      { name: 'key-id', value: 'HEX', description: 'the key id (32 hex digits) to revoke; default: every key of the device' },
      {
        name: 'topic', value: 'TOPIC',
        description: `revocation topic the update is bound to (default: the one DIR already uses, else ${DEFAULT_REVOCATION_TOPIC})`,
      },
      { name: 'broker', value: 'URL', description: 'publish the update retained at QoS 1: mqtt://[user:pass@]host[:port] or mqtts://…' },
      { name: 'out', value: 'FILE', description: 'also write the update bytes to FILE (e.g. for mosquitto_pub -r -f FILE)' },
      { name: 'timeout', value: 'S', description: `seconds to wait for the broker (default ${DEFAULT_TIMEOUT_S})` },
    ],
    notes: [
      'Revocation is permanent: receivers never accept the revoked key again, and a later update\n' +
        'cannot drop it. Revoking a key that is already revoked issues nothing (with --broker, the\n' +
        'current update is published again). Key ids are printed by "pqc-iiot identity new" and\n' +
        '"pqc-iiot inspect".',
    ],
  },
  async run(args, io) {
    const deviceId = stringOption(args, 'id')!;
    if (!DEVICE_ID_PATTERN.test(deviceId)) {
      throw usageError(`invalid device id ${quoteValue(deviceId)}: use 1 to 128 characters of A-Z a-z 0-9 _ . -`);
    }
    const keyId = parseKeyId(stringOption(args, 'key-id'));
    const topicArg = stringOption(args, 'topic');
    if (topicArg !== undefined && (!isValidTopicName(topicArg) || Buffer.byteLength(topicArg, 'utf8') > DEFAULT_LIMITS.maxTopicBytes)) {
      throw usageError(`--topic ${quoteValue(topicArg)} is not an MQTT topic name (no wildcards, at most ${DEFAULT_LIMITS.maxTopicBytes} bytes)`);
    }
    const brokerArg = stringOption(args, 'broker');
    const broker = brokerArg === undefined ? undefined : parseBrokerUrl(brokerArg);
    const timeoutMs = parseTimeout(stringOption(args, 'timeout')) * 1000;
    const outArg = stringOption(args, 'out');
    const out = outArg === undefined ? undefined : resolvePath(io, outArg);
    // Checked before anything is issued: a failure after revocations.bin moved on would leave
    // the update saved but not where the operator asked for it.
    if (out !== undefined && !fs.existsSync(path.dirname(out))) {
      throw new CliError(`--out: directory ${displayPath(io, path.dirname(out))} does not exist`);
    }
    const dir = resolvePath(io, stringOption(args, 'dir')!);

    const ca = loadCa(io, dir);
    const stored = loadRevocations(io, dir, ca);
    const topic = topicArg ?? stored.topic ?? DEFAULT_REVOCATION_TOPIC;
    if (stored.topic !== undefined && stored.topic !== topic) {
      throw new CliError(
        `the revocations in ${displayPath(io, dir)} are bound to topic ${quoteValue(stored.topic)}, not ${quoteValue(topic)}; ` +
          'a CA directory serves one revocation topic (use another CA directory for another topic)',
      );
    }
    const what = keyId === ALL_KEYS ? `every key of ${deviceId}` : `key ${fingerprintOf(keyId)} of ${deviceId}`;

    if (isRevoked(stored.state, deviceId, keyId)) {
      const by = stored.state.revoked.has(`${deviceId}/${toHex(ALL_KEYS)}`) && keyId !== ALL_KEYS ? ` (every key of ${deviceId} is revoked)` : '';
      writeLines(io.stdout, [`${what} is already revoked${by} in update seq ${stored.state.seq}; no new update issued`]);
      if (broker && stored.bytes) await publish(io, broker, topic, stored.bytes, stored.state.seq, timeoutMs, 'published again');
      return EXIT.ok;
    }

    const issuedAt = Math.floor(nowOf(io));
    const issued = issueRevocation(ca, stored.state, [{ deviceId, keyId }], topic, issuedAt);
    // Only bytes that a receiver holding the previous update accepts are ever written.
    const check = applyRevocation(stored.state, issued.bytes, topic, topic, ca.publicKey, DEFAULT_LIMITS);
    if (!check.ok || check.value.added.length !== 1) {
      throw new CliError(`the new update does not verify as the successor of the stored one (${check.ok ? 'nothing added' : check.reason})`);
    }
    const state = check.value.state;

    const binPath = path.join(dir, REVOCATIONS_FILE);
    const jsonPath = path.join(dir, REVOCATIONS_JSON);
    writeFileAtomic(io, binPath, issued.bytes, { mode: PUBLIC_FILE_MODE, overwrite: true, what: 'revocation update' });
    writeFileAtomic(io, jsonPath, revocationsJson(ca, state, topic, issuedAt) + '\n', {
      mode: PUBLIC_FILE_MODE, overwrite: true, what: 'revocation list',
    });
    const lines = [
      `revoked ${what}`,
      `  update:   seq ${state.seq}, ${state.entries.length} revoked ${state.entries.length === 1 ? 'entry' : 'entries'}, topic ${topic}`,
      `  written:  ${displayPath(io, binPath)} (+ ${displayPath(io, jsonPath)})`,
    ];
    if (out !== undefined) {
      writeFileAtomic(io, out, issued.bytes, { mode: PUBLIC_FILE_MODE, overwrite: true, what: 'output file' });
      lines.push(`  copy:     ${displayPath(io, out)}`);
    }
    writeLines(io.stdout, lines);
    if (broker) await publish(io, broker, topic, issued.bytes, state.seq, timeoutMs, 'published');
    else io.stdout.write(`Publish it retained on ${topic} (or run again with --broker URL) so receivers apply it.\n`);
    return EXIT.ok;
  },
};

interface StoredRevocations {
  state: RevocationState;
  topic?: string;
  bytes?: Uint8Array;
}

/** Rebuilds the CA's revocation state from revocations.bin, verified under the CA key. */
export function loadRevocations(io: CliIo, dir: string, ca: CaKeyPair): StoredRevocations {
  const binPath = path.join(dir, REVOCATIONS_FILE);
  const jsonPath = path.join(dir, REVOCATIONS_JSON);
  if (!fs.existsSync(binPath)) {
    // Starting over at seq 0 would issue updates every receiver refuses as a rollback, and would
    // forget the keys revoked so far: a missing .bin next to its .json is an error, not a fresh start.
    if (fs.existsSync(jsonPath)) {
      throw new CliError(
        `${displayPath(io, binPath)} is missing but ${displayPath(io, jsonPath)} exists; restore ${REVOCATIONS_FILE} from a backup ` +
          '(or capture the retained update from the revocation topic) before revoking more keys',
      );
    }
    return { state: EMPTY_REVOCATIONS };
  }
  const bytes = new Uint8Array(readFileChecked(io, binPath, 'revocation update'));
  const decoded = decodeRevocation(bytes, DEFAULT_LIMITS);
  if (!decoded.ok) {
    throw new CliError(`${displayPath(io, binPath)} is damaged (${decoded.reason}); refusing to issue an update on top of it`);
  }
  const topic = decoded.value.topic;
  const applied = applyRevocation(EMPTY_REVOCATIONS, bytes, topic, topic, ca.publicKey, DEFAULT_LIMITS);
  if (!applied.ok) {
    throw new CliError(
      `${displayPath(io, binPath)} does not verify under this CA's key (${applied.reason}); it was altered or comes from ` +
        'another CA: refusing to issue an update on top of it',
    );
  }
  return { state: applied.value.state, topic, bytes };
}

function revocationsJson(ca: CaKeyPair, state: RevocationState, topic: string, issuedAt: number): string {
  return JSON.stringify({
    format: REVOCATIONS_FORMAT,
    note: `for reading only; ${REVOCATIONS_FILE} is the signed update and the only file the CLI reads`,
    topic,
    seq: Number(state.seq),
    issuedAt: new Date(issuedAt).toISOString(),
    caKeyId: toHex(ca.publicKey.keyId),
    entries: state.entries.map((e) => ({
      deviceId: e.deviceId,
      keyId: toHex(e.keyId),
      ...(toHex(e.keyId) === toHex(ALL_KEYS) ? { allKeys: true } : {}),
    })),
  }, null, 2);
}

function parseKeyId(raw: string | undefined): Uint8Array {
  if (raw === undefined) return ALL_KEYS;
  // Fingerprints are printed grouped by four ("1a2b:3c4d:…"); accept them as printed.
  const hex = raw.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw usageError(`--key-id must be 32 hex digits (a 16-byte key id), not ${quoteValue(raw)}`);
  const bytes = new Uint8Array(Buffer.from(hex, 'hex'));
  // Sixteen zero bytes already mean "every key"; reuse the constant so messages say so.
  return bytes.every((b) => b === 0) ? ALL_KEYS : bytes;
}

function parseTimeout(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_TIMEOUT_S;
  const s = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(s) || s < 1 || s > MAX_TIMEOUT_S) throw usageError(`--timeout must be a whole number of seconds from 1 to ${MAX_TIMEOUT_S}, not ${quoteValue(raw)}`);
  return s;
}

export interface BrokerTarget {
  readonly options: MqttConnectionOptions;
  /** The URL without credentials, for messages. */
  readonly shown: string;
}

export function parseBrokerUrl(raw: string): BrokerTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError('--broker must be a URL such as mqtt://host:1883 or mqtts://host:8883');
  }
  const tls = url.protocol === 'mqtts:';
  if (url.protocol !== 'mqtt:' && !tls) throw usageError(`--broker: unsupported scheme "${url.protocol.replace(/:$/, '')}" (use mqtt or mqtts)`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw usageError('--broker takes only scheme, host and port (no path or query)');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw usageError('--broker has no host');
  const port = url.port === '' ? (tls ? 8883 : 1883) : Number(url.port);
  const options: MqttConnectionOptions = {
    host,
    port,
    connectTimeoutMs: 10_000,
    reconnectPeriodMs: 1000,
    queueLimit: 1,
    ...(tls ? { tls: {} } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
  return { options, shown: `${url.protocol}//${url.host}` };
}

/** Publishes retained at QoS 1 and waits for PUBACK; a connection error ends the attempt at once. */
async function publish(io: CliIo, broker: BrokerTarget, topic: string, bytes: Uint8Array, seq: bigint, timeoutMs: number, verb: string): Promise<void> {
  const conn = new MqttConnection({ ...broker.options, connectTimeoutMs: Math.min(timeoutMs, broker.options.connectTimeoutMs ?? timeoutMs) });
  let timer: NodeJS.Timeout | undefined;
  let failConnect: ((error: Error) => void) | undefined;
  const failed = new Promise<never>((_resolve, reject) => {
    failConnect = reject;
    timer = setTimeout(() => reject(new Error(`no answer from the broker within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  conn.on('warning', (message) => {
    // Before the broker acknowledged, a warning is a connection failure (refused, DNS, TLS, auth).
    failConnect?.(new Error(message));
  });
  try {
    conn.register('pqc-iiot-cli');
    await Promise.race([conn.publish(topic, bytes, { qos: 1, retain: true }), failed]);
  } catch (err) {
    throw new CliError(
      `update seq ${seq} is saved in the CA directory but was not published to ${broker.shown}: ` +
        `${err instanceof Error ? err.message : String(err)}. Run the command again to publish it, ` +
        `or publish ${REVOCATIONS_FILE} retained on ${topic} yourself`,
    );
  } finally {
    clearTimeout(timer);
    failConnect = undefined;
    // close() rejects anything still queued; nobody waits for that any more.
    await conn.close();
  }
  io.stdout.write(`${verb} retained (QoS 1) on ${topic} at ${broker.shown}\n`);
}

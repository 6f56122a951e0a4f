/**
 * Node-RED message shapes for the secure in/out nodes, as pure functions: which topic, QoS,
 * retain flag and recipients a `msg` resolves to (node settings win over msg, as in core
 * `mqtt out`), and the messages `pqc-secure-in` emits. No silent coercion: a bad value is an
 * error the flow sees through done(err).
 */
import { REASONS } from '../result';
import { isValidTopicFilter, isValidTopicName } from '../trust/topics';
import { isValidDeviceId } from '../wire/fields';
import type { PqcInfo, Rejection, VerifiedMessage } from './endpoint';
import type { QoS } from './mqtt-connection';
import { bytesToPayload, isDatatype, payloadToBytes, type Datatype } from './payload';
import { DEFAULT_KEY_STRATEGY, checkStrategy, type KeyStrategy } from '../session/topic-keys';

export interface OutSettings {
  /** Empty: take msg.topic. */
  topic: string;
  /** Undefined: take msg.qos (default 0). */
  qos?: QoS;
  /** Undefined: take msg.retain (default false). */
  retain?: boolean;
  /** Empty: take msg.recipients; none there either selects topic mode. */
  recipients: string[];
  /** Topic mode: when the topic key is replaced. */
  strategy: KeyStrategy;
  /** Topic mode: compact envelopes with one signature message per batch (§4.8) instead of one signature per envelope. */
  compact: boolean;
}

export interface OutRequest {
  topic: string;
  data: Buffer;
  qos: QoS;
  retain: boolean;
  /** Empty: topic mode (one envelope for every authorized subscriber). */
  recipients: string[];
  strategy: KeyStrategy;
  /** Topic mode only (ignored with recipients): see OutSettings.compact. */
  compact: boolean;
}

/** Editor values of "Signatures": each envelope verifiable alone (default), or compact (§4.8). */
export const SIGNATURE_MODES = ['each', 'compact'] as const;

export const STRATEGY_KINDS = ['seconds', 'packets', 'bytes', 'ephemeral', 'schedule'] as const;

/**
 * Editor values: strategy kind, its threshold (seconds, packets or bytes), and for the schedule
 * the interval in seconds and the epoch as an ISO date (empty: 1970-01-01T00:00:00Z).
 */
export function strategyFrom(config: { keyStrategy?: unknown; keyThreshold?: unknown; keyEpoch?: unknown }): KeyStrategy {
  const kind = config.keyStrategy === undefined || config.keyStrategy === '' ? DEFAULT_KEY_STRATEGY.kind : config.keyStrategy;
  if (typeof kind !== 'string' || !(STRATEGY_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`key strategy must be one of ${STRATEGY_KINDS.join(', ')}`);
  }
  if (kind === 'ephemeral') return { kind };
  const raw = config.keyThreshold === undefined || config.keyThreshold === '' ? undefined : Number(config.keyThreshold);
  if (kind === 'seconds' && raw === undefined) return DEFAULT_KEY_STRATEGY;
  if (raw === undefined || !Number.isSafeInteger(raw) || raw < 1) throw new Error(`key ${kind} threshold must be a positive integer`);
  if (kind === 'schedule') {
    const epochText = typeof config.keyEpoch === 'string' ? config.keyEpoch.trim() : '';
    const epochMs = epochText === '' ? 0 : Date.parse(epochText);
    if (!Number.isFinite(epochMs) || epochMs < 0) throw new Error('key schedule epoch must be a date such as 2026-01-01T00:00:00Z');
    return checkStrategy({ kind, epochMs, intervalMs: raw * 1000 });
  }
  return checkStrategy({ kind: kind as 'seconds' | 'packets' | 'bytes', count: raw });
}

/** Editor values: qos "" | "0" | "1" | "2", retain "" | "true" | "false", recipients "a, b". */
export function outSettingsFrom(config: {
  topic?: unknown; qos?: unknown; retain?: unknown; recipients?: unknown; keyStrategy?: unknown; keyThreshold?: unknown; keyEpoch?: unknown;
  signatures?: unknown;
}): OutSettings {
  const signatures = config.signatures === undefined || config.signatures === '' ? 'each' : config.signatures;
  if (typeof signatures !== 'string' || !(SIGNATURE_MODES as readonly string[]).includes(signatures)) {
    throw new Error(`signatures must be one of ${SIGNATURE_MODES.join(', ')}`);
  }
  const settings: OutSettings = {
    topic: typeof config.topic === 'string' ? config.topic.trim() : '',
    recipients: parseRecipients(config.recipients, 'recipients'),
    strategy: strategyFrom(config),
    compact: signatures === 'compact',
  };
  if (settings.topic !== '' && !isValidTopicName(settings.topic)) throw new Error(`topic "${settings.topic}" is not a valid MQTT topic (no wildcards)`);
  const qos = config.qos === undefined || config.qos === '' ? undefined : Number(config.qos);
  if (qos !== undefined) {
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new Error('QoS must be 0, 1 or 2');
    settings.qos = qos;
  }
  if (config.retain === true || config.retain === 'true') settings.retain = true;
  else if (config.retain === false || config.retain === 'false') settings.retain = false;
  return settings;
}

/** A comma-separated string or an array of device ids; duplicates removed, order kept. */
export function parseRecipients(value: unknown, what: string): string[] {
  let list: unknown[];
  if (value === undefined || value === null || value === '') return [];
  if (typeof value === 'string') list = value.split(',');
  else if (Array.isArray(value)) list = value;
  else throw new Error(`${what} must be a comma-separated string or an array of device ids`);
  const ids: string[] = [];
  for (const item of list) {
    const id = typeof item === 'string' ? item.trim() : item;
    if (id === '') continue;
    if (!isValidDeviceId(id)) throw new Error(`${what}: ${JSON.stringify(id)} is not a valid device id`);
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

export function outRequestFrom(settings: OutSettings, msg: Record<string, unknown>): OutRequest {
  const topic = settings.topic !== '' ? settings.topic : msg.topic;
  if (typeof topic !== 'string' || !isValidTopicName(topic)) {
    throw new Error(settings.topic === '' && (topic === undefined || topic === '') ? 'no topic: set it on the node or in msg.topic' : 'msg.topic is not a valid MQTT topic (no wildcards)');
  }
  let qos: QoS = 0;
  if (settings.qos !== undefined) {
    qos = settings.qos;
  } else if (msg.qos !== undefined) {
    const n = Number(msg.qos);
    if (n !== 0 && n !== 1 && n !== 2) throw new Error('msg.qos must be 0, 1 or 2');
    qos = n;
  }
  let retain = false;
  if (settings.retain !== undefined) retain = settings.retain;
  else if (msg.retain !== undefined) retain = msg.retain === true || msg.retain === 'true';
  const recipients = settings.recipients.length > 0 ? settings.recipients : parseRecipients(msg.recipients, 'msg.recipients');
  // msg.rotateKey = true replaces the topic key before this message (e.g. after an incident).
  const strategy: KeyStrategy = msg.rotateKey === true ? { kind: 'ephemeral' } : settings.strategy;
  const compact = settings.compact && recipients.length === 0;
  // Its manifest is not retained: a retained compact envelope would fail `unsigned` at every late joiner.
  if (compact && retain) throw new Error('compact signatures cannot be retained (the batch manifest is not); set Retain to false or Signatures to each message');
  return { topic, data: payloadToBytes(msg.payload), qos, retain, recipients, strategy, compact };
}

export interface InSettings {
  filter: string;
  qos: QoS;
  datatype: Datatype;
  rejectionsOutput: boolean;
}

export function inSettingsFrom(config: { topic?: unknown; qos?: unknown; datatype?: unknown; rejections?: unknown }): InSettings {
  const filter = typeof config.topic === 'string' ? config.topic.trim() : '';
  if (!isValidTopicFilter(filter)) throw new Error(filter === '' ? 'topic filter is empty' : `topic filter "${filter}" is not valid`);
  const qos = config.qos === undefined || config.qos === '' ? 2 : Number(config.qos);
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new Error('QoS must be 0, 1 or 2');
  const datatype = config.datatype === undefined || config.datatype === '' ? 'auto-detect' : config.datatype;
  if (!isDatatype(datatype)) throw new Error('datatype must be auto-detect, buffer, utf8 or json');
  return { filter, qos, datatype, rejectionsOutput: config.rejections === true || config.rejections === 'true' };
}

export interface VerifiedMsg {
  [key: string]: unknown;
  payload: unknown;
  topic: string;
  qos: QoS;
  retain: boolean;
  pqc: PqcInfo;
}

export type VerifiedMsgResult = { ok: true; msg: VerifiedMsg } | { ok: false; error: string; msg: VerifiedMsg };

/** On a datatype failure (json), `msg` carries the text so a Catch node can see what came. */
export function verifiedMsg(message: VerifiedMessage, datatype: Datatype): VerifiedMsgResult {
  const base = { topic: message.topic, qos: message.qos, retain: message.retain, pqc: message.pqc };
  const decoded = bytesToPayload(message.data, datatype);
  if (decoded.ok) return { ok: true, msg: { payload: decoded.value, ...base } };
  return { ok: false, error: decoded.error, msg: { payload: message.data.toString('utf8'), ...base } };
}

export function rejectionMsg(rejection: Rejection): { payload: Rejection & { description: string }; topic: string } {
  return { payload: { ...rejection, description: REASONS[rejection.reason] }, topic: rejection.topic };
}

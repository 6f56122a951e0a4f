/**
 * Topic mode (docs/PROTOCOL.md §4.5–4.6, §6.4): one message encryption key (MEK) per
 * (publisher, data topic), wrapped with ML-KEM for every authorized subscriber, rotated by a
 * MasQiTT-style strategy and at once when membership changes. Pure: keys and time come in.
 */
import { AES_KEY_BYTES, type KemAlgorithm } from '../crypto/algorithms';
import { offloadEncapsulate } from '../crypto/worker-pool';
import type { KeyObject } from 'node:crypto';
import { LABELS, aesGcmOpen, aesGcmSeal, domainDigest, hkdf, prepareAesKey } from '../crypto/symmetric';
import type { KeyWrap } from '../wire/topic-key';
import { ProviderError } from './provider';

/** When a publisher replaces its topic key (MasQiTT's strategies). */
export type KeyStrategy =
  | { readonly kind: 'ephemeral' }
  | { readonly kind: 'packets'; readonly count: number }
  | { readonly kind: 'bytes'; readonly count: number }
  | { readonly kind: 'seconds'; readonly count: number }
  | { readonly kind: 'schedule'; readonly epochMs: number; readonly intervalMs: number };

/** Default: persistent key, rotated hourly (and whenever a subscriber joins or leaves). */
export const DEFAULT_KEY_STRATEGY: KeyStrategy = Object.freeze({ kind: 'seconds', count: 3600 });

/** Hard cap per key whatever the strategy: keeps random 96-bit nonces far from collisions. */
export const MAX_PACKETS_PER_KEY = 1 << 20;

/** Checks a strategy given by a user (node setting or msg); throws a clear local error. */
export function checkStrategy(s: KeyStrategy): KeyStrategy {
  const positive = (n: unknown, what: string): void => {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new Error(`key rotation ${what} must be a positive integer`);
  };
  switch (s?.kind) {
    case 'ephemeral':
      return s;
    case 'packets':
    case 'bytes':
    case 'seconds':
      positive(s.count, s.kind);
      return s;
    case 'schedule':
      if (!Number.isSafeInteger(s.epochMs) || s.epochMs < 0) throw new Error('key schedule epoch must be a time in ms');
      positive(s.intervalMs, 'interval (ms)');
      return s;
    default:
      throw new Error('key strategy must be ephemeral, packets, bytes, seconds or schedule');
  }
}

export interface PublisherTopicKey {
  readonly serial: bigint;
  /** The data key of this topic key (§4.5), derived once. */
  readonly dataKey: KeyObject;
  readonly createdAt: number;
  readonly notAfter: number;
  /** "device/keyid" of every subscriber the key was wrapped for. */
  readonly members: ReadonlySet<string>;
  packets: number;
  bytes: number;
}

/** Next schedule boundary strictly after `now`. */
export function scheduleEnd(s: { epochMs: number; intervalMs: number }, now: number): number {
  const k = Math.floor((now - s.epochMs) / s.intervalMs) + 1;
  return s.epochMs + k * s.intervalMs;
}

export function needsRotation(
  key: PublisherTopicKey | undefined,
  strategy: KeyStrategy,
  members: ReadonlySet<string>,
  now: number,
  dataBytes: number,
): boolean {
  if (!key) return true;
  // The same set object (the publisher's cached membership) means nothing changed.
  if (key.members !== members) {
    if (key.members.size !== members.size) return true;
    for (const m of members) if (!key.members.has(m)) return true;
  }
  if (key.packets >= MAX_PACKETS_PER_KEY) return true;
  switch (strategy.kind) {
    case 'ephemeral':
      return true;
    case 'packets':
      return key.packets >= strategy.count;
    case 'bytes':
      return key.packets > 0 && key.bytes + dataBytes > strategy.count;
    case 'seconds':
      return now - key.createdAt >= strategy.count * 1000;
    case 'schedule':
      return now >= key.notAfter;
  }
}

const KEK_INFO = new TextEncoder().encode(LABELS.topicKek);
const DATA_INFO = new TextEncoder().encode(LABELS.topicData);
const ZERO_NONCE = new Uint8Array(12);

function u64Bytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
}

function wrapAad(publisherId: string, topic: string, serial: bigint, recipientId: string, recipientKeyId: Uint8Array): Uint8Array {
  return domainDigest(LABELS.topicWrapAad, [
    publisherId, topic, u64Bytes(serial), recipientId, recipientKeyId,
  ]);
}

export interface WrapRecipient {
  deviceId: string;
  keyId: Uint8Array;
  kemAlgorithm: KemAlgorithm;
  kemPublicKey: Uint8Array;
}

/**
 * kek = HKDF-SHA256(ML-KEM shared secret, salt = empty, info = "pqc-iiot:topic-kek:v1");
 * wrapped = AES-256-GCM(kek, nonce = 0^12, MEK, aad). The nonce can be fixed: every kek comes
 * from a fresh encapsulation and encrypts exactly one key.
 */
export async function wrapTopicKey(
  mek: Uint8Array, recipient: WrapRecipient, publisherId: string, topic: string, serial: bigint, random?: Uint8Array,
): Promise<KeyWrap> {
  // Off the main thread when it would run in JavaScript.
  const { capsule, sharedSecret } = await offloadEncapsulate(recipient.kemAlgorithm, recipient.kemPublicKey, random);
  const kek = hkdf(sharedSecret, new Uint8Array(0), KEK_INFO, AES_KEY_BYTES);
  try {
    const wrappedKey = aesGcmSeal(kek, ZERO_NONCE, mek, wrapAad(publisherId, topic, serial, recipient.deviceId, recipient.keyId));
    return { recipientId: recipient.deviceId, recipientKeyId: recipient.keyId, kemAlgorithm: recipient.kemAlgorithm, capsule, wrappedKey };
  } finally {
    kek.fill(0);
    sharedSecret.fill(0);
  }
}

export async function unwrapTopicKey(
  wrap: KeyWrap, publisherId: string, topic: string, serial: bigint, decapsulate: (capsule: Uint8Array) => Promise<Uint8Array>,
): Promise<Uint8Array | undefined> {
  let sharedSecret: Uint8Array;
  try {
    sharedSecret = await decapsulate(wrap.capsule);
  } catch (error) {
    // Our own provider failing (token removed) is not a verdict about the key message.
    if (error instanceof ProviderError) throw error;
    return undefined;
  }
  const kek = hkdf(sharedSecret, new Uint8Array(0), KEK_INFO, AES_KEY_BYTES);
  try {
    return aesGcmOpen(kek, ZERO_NONCE, wrap.wrappedKey, wrapAad(publisherId, topic, serial, wrap.recipientId, wrap.recipientKeyId));
  } finally {
    kek.fill(0);
    sharedSecret.fill(0);
  }
}

/**
 * The data key of a topic key: HKDF-SHA256(K, salt = empty, info = "pqc-iiot:topic-data:v1").
 * Derived once per key, not per message: each message has its own random nonce, and a key
 * carries at most MAX_PACKETS_PER_KEY messages.
 */
export function deriveTopicDataKey(mek: Uint8Array): Uint8Array {
  return hkdf(mek, new Uint8Array(0), DATA_INFO, AES_KEY_BYTES);
}

/** The data key ready for AES-GCM; the raw bytes are wiped once the key object holds them. */
export function topicDataKey(mek: Uint8Array): KeyObject {
  const raw = deriveTopicDataKey(mek);
  try {
    return prepareAesKey(raw);
  } finally {
    raw.fill(0);
  }
}

/** First four bytes of every compact-mode nonce: never the start of a nonce of a key wrap (0^12). */
export const COMPACT_NONCE_PREFIX = 0x00000001;

/**
 * The AES-GCM nonce of a compact envelope (§4.8): u32 0x00000001 ‖ u64 seq. Not on the wire.
 * Unique under a data key because a data key belongs to one publisher and that publisher never
 * reuses a sequence number (§5); normal envelopes under the same key use random nonces, which
 * meet this fixed prefix with probability 2^-32 and a given sequence number with 2^-96.
 */
export function compactNonce(seq: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  view.setUint32(0, COMPACT_NONCE_PREFIX, false);
  view.setBigUint64(4, seq, false);
  return nonce;
}

export interface SubscriberTopicKey {
  readonly serial: bigint;
  /** The data key (§4.5); undefined when the authentic key message holds no wrap for this device (not a member). */
  readonly dataKey: KeyObject | undefined;
  readonly notAfter: number;
  /** When a newer key replaced this one (it still opens messages for the grace period). */
  supersededAt?: number;
}

/**
 * A subscriber's keys: per (publisher, topic) the current key and the one before it, at most
 * `maxEntries` pairs (least recently updated dropped first).
 */
export class TopicKeyCache {
  private readonly entries = new Map<string, { current: SubscriberTopicKey; previous?: SubscriberTopicKey }>();

  constructor(private readonly maxEntries: number) {}

  static id(publisherId: string, topic: string): string {
    return `${publisherId}\u0000${topic}`;
  }

  latestSerial(publisherId: string, topic: string): bigint | undefined {
    return this.entries.get(TopicKeyCache.id(publisherId, topic))?.current.serial;
  }

  /** Whether an insertion of a new (publisher, topic) would have to evict another one. */
  isFull(publisherId: string, topic: string): boolean {
    return !this.entries.has(TopicKeyCache.id(publisherId, topic)) && this.entries.size >= this.maxEntries;
  }

  put(publisherId: string, topic: string, key: SubscriberTopicKey, now: number): void {
    const id = TopicKeyCache.id(publisherId, topic);
    const old = this.entries.get(id);
    if (old) {
      old.current.supersededAt = now;
      this.entries.delete(id);
    } else if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.wipe(oldest);
    }
    this.entries.set(id, { current: key, previous: old?.current });
  }

  /**
   * The key for `serial`, or why there is none: not arrived yet, superseded beyond its grace,
   * or excluded (its key message was for other subscribers only).
   */
  find(
    publisherId: string, topic: string, serial: bigint, now: number, graceMs: number,
  ): (SubscriberTopicKey & { dataKey: KeyObject }) | 'unknown' | 'superseded' | 'excluded' {
    const e = this.entries.get(TopicKeyCache.id(publisherId, topic));
    if (!e || serial > e.current.serial) return 'unknown';
    const key = serial === e.current.serial ? e.current
      : e.previous && serial === e.previous.serial && now - (e.previous.supersededAt ?? now) <= graceMs ? e.previous
      : undefined;
    if (!key) return 'superseded';
    return key.dataKey ? (key as SubscriberTopicKey & { dataKey: KeyObject }) : 'excluded';
  }

  /** Drops every key of a publisher (revoked or untrusted). */
  dropPublisher(publisherId: string): void {
    for (const id of [...this.entries.keys()]) if (id.startsWith(`${publisherId}\u0000`)) this.wipe(id);
  }

  /** Key objects keep their bytes in native memory until collected: dropping them is all we can do. */
  private wipe(id: string): void {
    this.entries.delete(id);
  }
}

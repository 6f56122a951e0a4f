/**
 * Size and count limits for untrusted input (I5), in one frozen table with the reason for each
 * value. Every limit is configurable per session (SessionOptions.limits); these are the defaults,
 * and LIMIT_BOUNDS the accepted ranges. See docs/PROTOCOL.md §7.
 */

export interface Limits {
  /** Whole key announcement: header + two public keys + certificate + signature. */
  readonly maxAnnouncementBytes: number;
  /** Whole certificate: two public keys, topic filters and a CA signature. */
  readonly maxCertificateBytes: number;
  /** Whole data envelope (capsule + ciphertext + signature). */
  readonly maxEnvelopeBytes: number;
  /** Topic filters one certificate may carry. */
  readonly maxTopicFilters: number;
  /** Bytes of one topic or topic filter (UTF-8). */
  readonly maxTopicBytes: number;
  /** Trusted peers one receiver keeps; new peers beyond it are refused (state insertion bound). */
  readonly maxPeers: number;
  /** Whole revocation update (cumulative list of revoked keys). */
  readonly maxRevocationBytes: number;
  /** Whole topic key message (one ML-KEM wrap of about 1.2 KB per subscriber). */
  readonly maxKeyMessageBytes: number;
  /** (publisher, topic) keys a subscriber keeps. */
  readonly maxTopicKeys: number;
  /** Verified topic-mode messages held while their key message has not arrived yet. */
  readonly maxPendingMessages: number;
  /** How long such a message is held before it is rejected with `no-key` (ms). */
  readonly pendingKeyWaitMs: number;
  /** How long the previous topic key still opens in-flight messages after a rotation (ms). */
  readonly topicKeyGraceMs: number;
  /** Whole batch manifest of compact mode (§2.11): up to 255 digests and a signature. */
  readonly maxManifestBytes: number;
  /** Compact envelopes held while their batch manifest has not verified yet (§4.8). */
  readonly maxCompactPending: number;
  /** How long such an envelope is held before it is rejected with `unsigned` (ms). */
  readonly compactWaitMs: number;
  /** Sliding replay window width in sequence numbers (I4). */
  readonly replayWindow: number;
  /** Accepted clock skew for envelope timestamps in ms; 0 turns the check off. */
  readonly maxClockSkewMs: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  // ML-KEM-1024 pk (1568) + ML-DSA-65 pk (1952) twice (announcement + certificate), an ML-DSA-65
  // device signature (3309), a CA signature (3309) and 32 topic filters fit well below this.
  maxAnnouncementBytes: 32 * 1024,
  // Two public keys (≤ 3520), CA signature (≤ 3309), filters (32 × ≤ 1024 in theory; typical < 1 KiB).
  maxCertificateBytes: 16 * 1024,
  // Industrial telemetry is small; 1 MiB leaves room for images or files while bounding memory.
  maxEnvelopeBytes: 1024 * 1024,
  // Enough for any realistic device role; keeps matching cost per message bounded.
  maxTopicFilters: 32,
  // MQTT allows 65535; real topics stay far below, and every byte is hashed per message.
  maxTopicBytes: 1024,
  // Bounds memory spent on announcements an attacker could spray on pqc/keys/#.
  maxPeers: 1024,
  // About 14,000 revoked keys (18–146 bytes each) plus a signature; far beyond a plant's fleet churn.
  maxRevocationBytes: 256 * 1024,
  // About 850 subscribers per topic; beyond that, split topics or use a key service.
  maxKeyMessageBytes: 1024 * 1024,
  // Bounds memory an attacker can fill with key messages for invented topics.
  maxTopicKeys: 4096,
  // Bounds memory held for messages that arrive before their key (MQTT orders per topic only).
  maxPendingMessages: 256,
  // A key message normally arrives within milliseconds of its first data message.
  pendingKeyWaitMs: 5000,
  // Covers in-flight messages and QoS 1 redelivery around a rotation.
  topicKeyGraceMs: 30_000,
  // 255 digests (8160 bytes), the header and an ML-DSA-65 signature (3309) fit with room to spare.
  maxManifestBytes: 16 * 1024,
  // Every compact envelope waits for its manifest (which follows its batch): a few full batches
  // of several senders; each hold is one decrypted reading.
  maxCompactPending: 1024,
  // A manifest follows the last envelope of its batch within the sender's batch delay.
  compactWaitMs: 2000,
  // Seed 004 (I4): 64-bit bitmap.
  replayWindow: 64,
  // Off by default: many field devices have no trusted clock; replay windows do not need time.
  maxClockSkewMs: 0,
});

/** Accepted range [min, max] of each limit (integers); editors validate against the same table. */
export const LIMIT_BOUNDS: Readonly<Record<keyof Limits, readonly [number, number]>> = Object.freeze({
  maxAnnouncementBytes: [1024, 1024 * 1024],
  maxCertificateBytes: [1024, 256 * 1024],
  maxEnvelopeBytes: [256, 256 * 1024 * 1024],
  maxTopicFilters: [1, 1024],
  maxTopicBytes: [1, 65535],
  maxPeers: [1, 1_000_000],
  maxRevocationBytes: [1024, 16 * 1024 * 1024],
  maxKeyMessageBytes: [4096, 64 * 1024 * 1024],
  maxTopicKeys: [1, 1_000_000],
  maxPendingMessages: [0, 100_000],
  pendingKeyWaitMs: [0, 600_000],
  topicKeyGraceMs: [0, 24 * 3600 * 1000],
  maxManifestBytes: [1024, 1024 * 1024],
  maxCompactPending: [0, 100_000],
  compactWaitMs: [0, 600_000],
  replayWindow: [1, 4096],
  maxClockSkewMs: [0, 365 * 24 * 3600 * 1000],
});
for (const bounds of Object.values(LIMIT_BOUNDS)) Object.freeze(bounds);

/** Merges overrides into the defaults; an out-of-range or non-integer value is a local error. */
export function resolveLimits(overrides: Partial<Record<keyof Limits, unknown>> = {}): Limits {
  const out: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, raw] of Object.entries(overrides)) {
    if (!(key in LIMIT_BOUNDS)) throw new Error(`unknown limit "${key}"`);
    if (raw === undefined || raw === null || raw === '') continue;
    const value = typeof raw === 'string' ? Number(raw) : raw;
    const [min, max] = LIMIT_BOUNDS[key as keyof Limits];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new Error(`limit "${key}" must be an integer from ${min} to ${max}`);
    }
    out[key] = value;
  }
  return Object.freeze(out) as unknown as Limits;
}

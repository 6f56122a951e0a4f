/**
 * Compact topic envelope (docs/PROTOCOL.md §2.10, §4.8): a topic-mode message without sender key
 * fields, timestamp, nonce or auth trailer, for thin links. It is authenticated by its sender's
 * signed batch manifest (§2.11), which lists the I3 message digest of every envelope of a batch:
 *   message-digest = framed("pqc-iiot:mqtt-msg:v1", sender id, topic, whole envelope)
 * The AES-GCM nonce is not on the wire: it is derived from the sequence number (§4.8).
 */
import { GCM_TAG_BYTES } from '../crypto/algorithms';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { ok, type Result } from '../result';
import { decodeAll, deviceId, encode, sized, struct, u64, type StructValue } from './fields';
import { header } from './header';

/** Most ciphertext one compact envelope carries (u16 length): 65535 bytes, tag included. */
export const MAX_COMPACT_CIPHERTEXT_BYTES = 0xffff;

/** Every byte before the ciphertext: bound into the AES-GCM associated data with the topic. */
const headerLayout = struct({
  header: header('compactEnvelope'),
  senderId: deviceId,
  keySerial: u64,
  seq: u64,
});

const envelopeLayout = struct({
  ...headerLayout.fields,
  ciphertext: sized(2, MAX_COMPACT_CIPHERTEXT_BYTES, GCM_TAG_BYTES),
});

export type CompactEnvelopeHeader = Omit<StructValue<typeof headerLayout.fields>, 'header'>;

export interface DecodedCompactEnvelope extends CompactEnvelopeHeader {
  /** AES-256-GCM ciphertext ‖ 16-byte tag. */
  readonly ciphertext: Uint8Array;
  /** Header bytes (everything before the ciphertext field). */
  readonly headerBytes: Uint8Array;
}

export function encodeCompactEnvelopeHeader(fields: CompactEnvelopeHeader): Uint8Array {
  return encode(headerLayout, { ...fields, header: 'compactEnvelope' });
}

/** header bytes ‖ u16 length ‖ ciphertext. Throws (local misuse) on a ciphertext that does not fit. */
export function encodeCompactEnvelope(headerBytes: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const tail = encode(envelopeLayout.fields.ciphertext, ciphertext);
  const out = new Uint8Array(headerBytes.length + tail.length);
  out.set(headerBytes, 0);
  out.set(tail, headerBytes.length);
  return out;
}

export function decodeCompactEnvelope(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedCompactEnvelope> {
  const r = decodeAll(envelopeLayout, bytes, limits.maxEnvelopeBytes);
  if (!r.ok) return r;
  const v = r.value;
  const headerLength = bytes.length - 2 - v.ciphertext.length;
  return ok({ senderId: v.senderId, keySerial: v.keySerial, seq: v.seq, ciphertext: v.ciphertext, headerBytes: bytes.subarray(0, headerLength) });
}

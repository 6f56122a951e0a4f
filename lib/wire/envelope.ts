/**
 * Direct-mode data envelope: one recipient, a fresh ML-KEM capsule per message (seed 000's
 * encrypted data packet), extended as seed 004 requires: sender id and key (I0, I7 pre-decrypt
 * key checks), recipient key, sequence and timestamp in the signed header (I4 before any
 * decapsulation), and a detached signature over
 *   SHA-256 framed("pqc-iiot:mqtt-msg:v1", sender id, topic, encrypted blob)   (I3)
 * where the encrypted blob is every byte before the authentication trailer (§2.7).
 * docs/PROTOCOL.md §2.4.
 */
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, KEM_ALGORITHMS, MAX_CAPSULE_BYTES } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { authBytes, envelopeAuth, type EnvelopeAuth } from './auth';
import { kemAlgorithm, keyId, sigAlgorithm, signatureFits } from './common';
import { Writer, decodeAll, deviceId, encode, fixed, sized, struct, u32, u64, type StructValue } from './fields';
import { header } from './header';

/** Everything up to the nonce: also the AES-GCM associated data (with the topic). */
const headerLayout = struct({
  header: header('directEnvelope'),
  senderId: deviceId,
  senderKeyEpoch: u32,
  senderKeyId: keyId,
  sigAlgorithm,
  recipientId: deviceId,
  recipientKeyId: keyId,
  kemAlgorithm,
  seq: u64,
  timestamp: u64,
  capsule: sized(2, MAX_CAPSULE_BYTES, 1),
});

const blobLayout = struct({
  ...headerLayout.fields,
  nonce: fixed(GCM_NONCE_BYTES),
  ciphertext: sized(4, 0xffffffff, GCM_TAG_BYTES),
});

const envelopeLayout = struct({ ...blobLayout.fields, auth: envelopeAuth });

export type EnvelopeHeader = Omit<StructValue<typeof headerLayout.fields>, 'header'>;

export interface DecodedEnvelope extends EnvelopeHeader {
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly auth: EnvelopeAuth;
  /** Header bytes (through the capsule): bound into the AES-GCM associated data. */
  readonly headerBytes: Uint8Array;
  /** Every byte before the authentication trailer: the "encrypted blob" of I3. */
  readonly blob: Uint8Array;
}

export function encodeEnvelopeHeader(fields: EnvelopeHeader): Uint8Array {
  return encode(headerLayout, { ...fields, header: 'directEnvelope' });
}

/** header ‖ nonce ‖ u32 len ‖ ciphertext: the encrypted blob the signature covers. */
export function encodeEnvelopeBlob(headerBytes: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerBytes.length + nonce.length + 4 + ciphertext.length);
  out.set(headerBytes, 0);
  out.set(nonce, headerBytes.length);
  new DataView(out.buffer).setUint32(headerBytes.length + nonce.length, ciphertext.length, false);
  out.set(ciphertext, headerBytes.length + nonce.length + 4);
  return out;
}

export function encodeEnvelope(blob: Uint8Array, auth: EnvelopeAuth): Uint8Array {
  const out = new Uint8Array(blob.length + authBytes(auth));
  out.set(blob, 0);
  const w = new Writer(out, blob.length);
  envelopeAuth.encode(w, auth);
  if (w.length !== out.length) throw new RangeError('auth trailer size mismatch');
  return out;
}

/** I3: what the sender signs. */
export function messageDigest(senderId: string, topic: string, blob: Uint8Array): Uint8Array {
  return domainDigest(LABELS.message, [senderId, topic, blob]);
}

/** AES-GCM associated data: binds topic and the whole header to the ciphertext. */
export function envelopeAad(topic: string, headerBytes: Uint8Array): Uint8Array {
  return domainDigest(LABELS.directAad, [topic, headerBytes]);
}

export function decodeDirectEnvelope(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedEnvelope> {
  const r = decodeAll(envelopeLayout, bytes, limits.maxEnvelopeBytes);
  if (!r.ok) return r;
  const { header: _h, ...v } = r.value;
  if (v.capsule.length !== KEM_ALGORITHMS[v.kemAlgorithm].cipherText) return fail('bad-length', 'capsule length');
  if (!signatureFits(v.sigAlgorithm, v.auth.signature)) return fail('bad-length', 'signature length');
  const blob = bytes.subarray(0, bytes.length - authBytes(v.auth));
  const headerLength = blob.length - GCM_NONCE_BYTES - 4 - v.ciphertext.length;
  return ok({ ...v, blob, headerBytes: bytes.subarray(0, headerLength) });
}

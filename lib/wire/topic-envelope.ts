/**
 * Topic-mode data envelope: encrypted under the publisher's current topic key (§2.8) instead of
 * a per-message capsule, so one envelope serves every authorized subscriber. Sender, key,
 * sequence and timestamp stay in the signed header; the auth trailer (§2.7) covers
 *   framed("pqc-iiot:mqtt-msg:v1", sender id, topic, encrypted blob)   (I3).
 * docs/PROTOCOL.md §2.9.
 */
import { GCM_NONCE_BYTES, GCM_TAG_BYTES } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { authBytes, envelopeAuth, type EnvelopeAuth } from './auth';
import { keyId, sigAlgorithm, signatureFits } from './common';
import { decodeAll, deviceId, encode, fixed, sized, struct, u32, u64, type StructValue } from './fields';
import { header } from './header';

const headerLayout = struct({
  header: header('topicEnvelope'),
  senderId: deviceId,
  senderKeyEpoch: u32,
  senderKeyId: keyId,
  sigAlgorithm,
  keySerial: u64,
  seq: u64,
  timestamp: u64,
});

const envelopeLayout = struct({
  ...headerLayout.fields,
  nonce: fixed(GCM_NONCE_BYTES),
  ciphertext: sized(4, 0xffffffff, GCM_TAG_BYTES),
  auth: envelopeAuth,
});

export type TopicEnvelopeHeader = Omit<StructValue<typeof headerLayout.fields>, 'header'>;

export interface DecodedTopicEnvelope extends TopicEnvelopeHeader {
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly auth: EnvelopeAuth;
  readonly headerBytes: Uint8Array;
  readonly blob: Uint8Array;
}

export function encodeTopicEnvelopeHeader(fields: TopicEnvelopeHeader): Uint8Array {
  return encode(headerLayout, { ...fields, header: 'topicEnvelope' });
}

/** AES-GCM associated data: binds the topic and the whole header to the ciphertext. */
export function topicEnvelopeAad(topic: string, headerBytes: Uint8Array): Uint8Array {
  return domainDigest(LABELS.topicAad, [topic, headerBytes]);
}

export function decodeTopicEnvelope(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedTopicEnvelope> {
  const r = decodeAll(envelopeLayout, bytes, limits.maxEnvelopeBytes);
  if (!r.ok) return r;
  const v = r.value;
  if (!signatureFits(v.sigAlgorithm, v.auth.signature)) return fail('bad-length', 'signature length');
  const blob = bytes.subarray(0, bytes.length - authBytes(v.auth));
  const headerLength = blob.length - GCM_NONCE_BYTES - 4 - v.ciphertext.length;
  // Built field by field: an object spread per message costs more than the rest of the decoding.
  return ok({
    senderId: v.senderId, senderKeyEpoch: v.senderKeyEpoch, senderKeyId: v.senderKeyId, sigAlgorithm: v.sigAlgorithm,
    keySerial: v.keySerial, seq: v.seq, timestamp: v.timestamp, nonce: v.nonce, ciphertext: v.ciphertext, auth: v.auth,
    blob, headerBytes: bytes.subarray(0, headerLength),
  });
}

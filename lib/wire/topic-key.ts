/**
 * Topic key message (MasQiTT's MEK packet, post-quantum and signed): a publisher's message
 * encryption key for one data topic, wrapped with ML-KEM for each authorized subscriber,
 * published retained on `{topic_keys_prefix}{publisher_id}/{data topic}`. docs/PROTOCOL.md §2.8.
 */
import { GCM_TAG_BYTES, MAX_CAPSULE_BYTES, KEM_ALGORITHMS } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { isValidTopicName } from '../trust/topics';
import { appendSignature, kemAlgorithm, keyId, sigAlgorithm, signature, signatureFits, signedPart } from './common';
import { countedList, decodeAll, deviceId, encode, fixed, sized, struct, text16, u32, u64, type StructValue } from './fields';
import { header } from './header';

/** AES-256-GCM of the 32-byte topic key: ciphertext ‖ tag. */
export const WRAPPED_KEY_BYTES = 32 + GCM_TAG_BYTES;

const wrapLayout = struct({
  recipientId: deviceId,
  recipientKeyId: keyId,
  kemAlgorithm,
  capsule: sized(2, MAX_CAPSULE_BYTES, 1),
  wrappedKey: fixed(WRAPPED_KEY_BYTES),
});

export type KeyWrap = StructValue<typeof wrapLayout.fields>;

/** u16 count, then the wraps; smallest wrap: id (2) + key id (16) + alg (1) + capsule (2 + 1) + key (48). */
const wrapList = countedList(wrapLayout, 2, 70);

const bodyLayout = struct({
  header: header('topicKey'),
  publisherId: deviceId,
  publisherKeyEpoch: u32,
  publisherKeyId: keyId,
  sigAlgorithm,
  topic: text16(65535),
  keySerial: u64,
  /** ms since epoch after which the key is not used (schedule strategy); 0 = no fixed end. */
  notAfter: u64,
  issuedAt: u64,
  wraps: wrapList,
});

const keyMessageLayout = struct({ ...bodyLayout.fields, signature });

export type TopicKeyFields = Omit<StructValue<typeof bodyLayout.fields>, 'header'>;

export interface DecodedTopicKey extends TopicKeyFields {
  readonly signature: Uint8Array;
  readonly signedBytes: Uint8Array;
}

export function encodeTopicKeyBody(fields: TopicKeyFields): Uint8Array {
  return encode(bodyLayout, { ...fields, header: 'topicKey' });
}

export function encodeTopicKey(body: Uint8Array, sig: Uint8Array): Uint8Array {
  return appendSignature(body, sig);
}

/** What the publisher signs: bound to its id and to the MQTT topic of the key message. */
export function topicKeyDigest(publisherId: string, keyTopic: string, body: Uint8Array): Uint8Array {
  return domainDigest(LABELS.topicKey, [publisherId, keyTopic, body]);
}

export function decodeTopicKey(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedTopicKey> {
  const r = decodeAll(keyMessageLayout, bytes, limits.maxKeyMessageBytes);
  if (!r.ok) return r;
  const { header: _h, ...v } = r.value;
  if (!signatureFits(v.sigAlgorithm, v.signature)) return fail('bad-length', 'signature length');
  if (!isValidTopicName(v.topic, limits.maxTopicBytes)) return fail('bad-field', 'data topic');
  for (const w of v.wraps) {
    if (w.capsule.length !== KEM_ALGORITHMS[w.kemAlgorithm].cipherText) return fail('bad-length', 'capsule length');
  }
  return ok({ ...v, signedBytes: signedPart(bytes, v.signature) });
}

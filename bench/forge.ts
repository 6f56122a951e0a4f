/**
 * Forged topic envelopes for the flood scenario: well-formed, naming the real publisher, its key
 * and a fresh sequence number, with random ciphertext and a random signature — what an attacker
 * on the broker can make from one envelope it saw. Receivers must refuse them cheaply (§6.4, §6.7).
 */
import { randomBytes } from 'node:crypto';
import { encodeEnvelope, encodeEnvelopeBlob } from '../lib/wire/envelope';
import { decodeTopicEnvelope, encodeTopicEnvelopeHeader } from '../lib/wire/topic-envelope';

export function forgeTopicEnvelope(template: Uint8Array, seq: bigint): Uint8Array {
  const d = decodeTopicEnvelope(template);
  if (!d.ok) throw new Error(`template is not a topic envelope (${d.reason})`);
  const v = d.value;
  const header = encodeTopicEnvelopeHeader({
    senderId: v.senderId,
    senderKeyEpoch: v.senderKeyEpoch,
    senderKeyId: v.senderKeyId,
    sigAlgorithm: v.sigAlgorithm,
    keySerial: v.keySerial,
    seq,
    timestamp: v.timestamp,
  });
  const blob = encodeEnvelopeBlob(header, new Uint8Array(randomBytes(12)), new Uint8Array(randomBytes(v.ciphertext.length)));
  return encodeEnvelope(blob, { kind: 'signature', signature: new Uint8Array(randomBytes(v.auth.signature.length)) });
}

/**
 * Building and opening direct-mode envelopes (docs/PROTOCOL.md §4). Pure apart from the crypto
 * calls; the signing and decapsulating keys stay behind callbacks (the SecurityProvider).
 *
 * Message key: HKDF-SHA256(ikm = ML-KEM shared secret, salt = empty,
 *                          info = "pqc-iiot:direct-key:v1", 32 bytes)
 * AES-256-GCM with a random 12-byte nonce; associated data = SHA-256 framed(
 *   "pqc-iiot:direct-aad:v1", topic, header bytes).
 */
import { AES_KEY_BYTES, type KemAlgorithm, type SigAlgorithm } from '../crypto/algorithms';
import { offloadEncapsulate } from '../crypto/worker-pool';
import { LABELS, aesGcmOpen, aesGcmSeal, hkdf, randomNonce } from '../crypto/symmetric';
import type { EnvelopeAuth } from '../wire/auth';
import {
  encodeEnvelope, encodeEnvelopeBlob, encodeEnvelopeHeader, envelopeAad, messageDigest, type DecodedEnvelope,
} from '../wire/envelope';
import { ProviderError } from './provider';

export interface DirectSealInput {
  topic: string;
  data: Uint8Array;
  sender: { deviceId: string; keyEpoch: number; keyId: Uint8Array; sigAlgorithm: SigAlgorithm };
  recipient: { deviceId: string; keyId: Uint8Array; kemAlgorithm: KemAlgorithm; kemPublicKey: Uint8Array };
  seq: bigint;
  timestamp: number;
  sign: (digest: Uint8Array) => Promise<Uint8Array>;
  /** Builds the whole auth trailer instead of `sign` (batch signing, §4.7). */
  authenticate?: (digest: Uint8Array) => Promise<EnvelopeAuth>;
  /** Fixed randomness for test vectors only. */
  random?: { encapsulation?: Uint8Array; nonce?: Uint8Array };
}

const KEY_INFO = new TextEncoder().encode(LABELS.directKey);

export function deriveMessageKey(sharedSecret: Uint8Array): Uint8Array {
  return hkdf(sharedSecret, new Uint8Array(0), KEY_INFO, AES_KEY_BYTES);
}

export async function sealDirectEnvelope(input: DirectSealInput): Promise<Uint8Array> {
  // Off the main thread when it would run in JavaScript.
  const { capsule, sharedSecret } = await offloadEncapsulate(input.recipient.kemAlgorithm, input.recipient.kemPublicKey, input.random?.encapsulation);
  const key = deriveMessageKey(sharedSecret);
  try {
    const headerBytes = encodeEnvelopeHeader({
      senderId: input.sender.deviceId,
      senderKeyEpoch: input.sender.keyEpoch,
      senderKeyId: input.sender.keyId,
      sigAlgorithm: input.sender.sigAlgorithm,
      recipientId: input.recipient.deviceId,
      recipientKeyId: input.recipient.keyId,
      kemAlgorithm: input.recipient.kemAlgorithm,
      seq: input.seq,
      timestamp: BigInt(input.timestamp),
      capsule,
    });
    const nonce = input.random?.nonce ?? randomNonce();
    const ciphertext = aesGcmSeal(key, nonce, input.data, envelopeAad(input.topic, headerBytes));
    const blob = encodeEnvelopeBlob(headerBytes, nonce, ciphertext);
    const digest = messageDigest(input.sender.deviceId, input.topic, blob);
    const auth: EnvelopeAuth = input.authenticate ? await input.authenticate(digest) : { kind: 'signature', signature: await input.sign(digest) };
    return encodeEnvelope(blob, auth);
  } finally {
    key.fill(0);
    sharedSecret.fill(0);
  }
}

/** Decapsulates and decrypts; undefined when either fails. The signature is checked before. */
export async function openDirectCiphertext(
  envelope: DecodedEnvelope,
  topic: string,
  decapsulate: (capsule: Uint8Array) => Promise<Uint8Array>,
): Promise<Uint8Array | undefined> {
  let sharedSecret: Uint8Array;
  try {
    // ML-KEM decapsulation never fails on a well-sized capsule (implicit rejection): a forged
    // capsule yields a pseudorandom secret, and AES-GCM authentication then fails.
    sharedSecret = await decapsulate(envelope.capsule);
  } catch (error) {
    // Our own provider failing (token removed) is not a verdict about the message.
    if (error instanceof ProviderError) throw error;
    return undefined;
  }
  const key = deriveMessageKey(sharedSecret);
  try {
    return aesGcmOpen(key, envelope.nonce, envelope.ciphertext, envelopeAad(topic, envelope.headerBytes));
  } finally {
    key.fill(0);
    sharedSecret.fill(0);
  }
}

/**
 * Fields shared by several structures: algorithm bytes, public keys, key ids, signatures, and
 * the key-id derivation. docs/PROTOCOL.md §2–3.
 */
import {
  KEM_ALGORITHMS, KEY_ID_BYTES, MAX_KEM_PUBLIC_KEY_BYTES, MAX_SIGNATURE_BYTES, MAX_SIG_PUBLIC_KEY_BYTES,
  SIG_ALGORITHMS, kemById, sigById, type KemAlgorithm, type SigAlgorithm,
} from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { deviceId, fixed, sized, u32, u8, type Field } from './fields';

function algorithmField<A extends string>(name: string, ids: Record<A, { id: number }>, byId: (id: number) => A | undefined): Field<A> {
  return {
    name,
    encode(w, value) {
      const entry = ids[value];
      if (entry === undefined) throw new RangeError(`unknown ${name} ${String(value)}`);
      u8.encode(w, entry.id);
    },
    decode(r) {
      const id = u8.decode(r);
      if (id === undefined) return undefined;
      return byId(id) ?? r.fail('unknown-algorithm');
    },
  };
}

export const kemAlgorithm = algorithmField<KemAlgorithm>('kem-algorithm', KEM_ALGORITHMS, kemById);
export const sigAlgorithm = algorithmField<SigAlgorithm>('sig-algorithm', SIG_ALGORITHMS, sigById);
export const kemPublicKey = sized(2, MAX_KEM_PUBLIC_KEY_BYTES, 1);
export const sigPublicKey = sized(2, MAX_SIG_PUBLIC_KEY_BYTES, 1);
export const keyId = fixed(KEY_ID_BYTES);
export const signature = sized(2, MAX_SIGNATURE_BYTES, 1);

/** True when a public key has exactly its algorithm's length (checked after decoding). */
export function kemKeyFits(alg: KemAlgorithm, pk: Uint8Array): boolean {
  return pk.length === KEM_ALGORITHMS[alg].publicKey;
}

export function sigKeyFits(alg: SigAlgorithm, pk: Uint8Array): boolean {
  return pk.length === SIG_ALGORITHMS[alg].publicKey;
}

export function signatureFits(alg: SigAlgorithm, sig: Uint8Array): boolean {
  const max = SIG_ALGORITHMS[alg].maxSignature;
  // ML-DSA signatures have one fixed length; Falcon's are variable up to the maximum.
  return alg === 'Falcon-512' ? sig.length >= 1 && sig.length <= max : sig.length === max;
}

/**
 * Key id: the first 16 bytes of
 *   SHA-256 framed("pqc-iiot:key-id:v1", [kem alg id], kem pk, [sig alg id], sig pk).
 * It names one (KEM key, signature key) pair; revocation and rollback checks use it.
 */
export function deriveKeyId(kemAlg: KemAlgorithm, kemPk: Uint8Array, sigAlg: SigAlgorithm, sigPk: Uint8Array): Uint8Array {
  return domainDigest(LABELS.keyId, [
    Uint8Array.of(KEM_ALGORITHMS[kemAlg].id), kemPk, Uint8Array.of(SIG_ALGORITHMS[sigAlg].id), sigPk,
  ]).slice(0, KEY_ID_BYTES);
}

/** Appends a u16-length-prefixed signature to the bytes it covers. */
export function appendSignature(body: Uint8Array, sig: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 2 + sig.length);
  out.set(body, 0);
  out[body.length] = sig.length >> 8;
  out[body.length + 1] = sig.length & 0xff;
  out.set(sig, body.length + 2);
  return out;
}

/** The bytes before a trailing u16-length-prefixed signature: what that signature covers. */
export function signedPart(bytes: Uint8Array, sig: Uint8Array): Uint8Array {
  return bytes.subarray(0, bytes.length - 2 - sig.length);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** The key-binding fields that open both certificates and announcements, in this order. */
export const deviceKeyFields = {
  deviceId,
  keyEpoch: u32,
  keyId,
  kemAlgorithm,
  kemPublicKey,
  sigAlgorithm,
  sigPublicKey,
} as const;

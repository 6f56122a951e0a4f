/**
 * Algorithm identifiers (one byte each on the wire) and their fixed sizes.
 * docs/PROTOCOL.md §3. Symmetric parts are fixed for protocol version 1: AES-256-GCM,
 * HKDF-SHA256, SHA-256.
 */

export const KEM_ALGORITHMS = Object.freeze({
  'ML-KEM-768': { id: 0x01, publicKey: 1184, secretKey: 2400, cipherText: 1088, seed: 64 },
  'ML-KEM-1024': { id: 0x02, publicKey: 1568, secretKey: 3168, cipherText: 1568, seed: 64 },
} as const);

export const SIG_ALGORITHMS = Object.freeze({
  // Falcon signatures are variable-length (unpadded, about 655 bytes, at most 666).
  'Falcon-512': { id: 0x01, publicKey: 897, secretKey: 1281, maxSignature: 666, seed: 48 },
  'ML-DSA-44': { id: 0x02, publicKey: 1312, secretKey: 2560, maxSignature: 2420, seed: 32 },
  'ML-DSA-65': { id: 0x03, publicKey: 1952, secretKey: 4032, maxSignature: 3309, seed: 32 },
} as const);

export type KemAlgorithm = keyof typeof KEM_ALGORITHMS;
export type SigAlgorithm = keyof typeof SIG_ALGORITHMS;

export const DEFAULT_KEM: KemAlgorithm = 'ML-KEM-768';
export const DEFAULT_SIG: SigAlgorithm = 'Falcon-512';
/** CA default: ML-DSA-44 is standardised (FIPS 204) and keys are generated in milliseconds. */
export const DEFAULT_CA_SIG: SigAlgorithm = 'ML-DSA-44';

/** Largest signature any algorithm produces; bounds every signature field before lookup. */
export const MAX_SIGNATURE_BYTES = 3309;
export const MAX_KEM_PUBLIC_KEY_BYTES = 1568;
export const MAX_SIG_PUBLIC_KEY_BYTES = 1952;
export const MAX_CAPSULE_BYTES = 1568;

export const AES_KEY_BYTES = 32;
export const GCM_NONCE_BYTES = 12;
export const GCM_TAG_BYTES = 16;
export const KEY_ID_BYTES = 16;

export function kemById(id: number): KemAlgorithm | undefined {
  return (Object.keys(KEM_ALGORITHMS) as KemAlgorithm[]).find((k) => KEM_ALGORITHMS[k].id === id);
}

export function sigById(id: number): SigAlgorithm | undefined {
  return (Object.keys(SIG_ALGORITHMS) as SigAlgorithm[]).find((k) => SIG_ALGORITHMS[k].id === id);
}

export function isKemAlgorithm(name: unknown): name is KemAlgorithm {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(KEM_ALGORITHMS, name);
}

export function isSigAlgorithm(name: unknown): name is SigAlgorithm {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(SIG_ALGORITHMS, name);
}

/** Accepts "falcon-512", "Falcon-512", "ml_dsa_44"… as users type them; undefined if unknown. */
export function parseKemName(name: string): KemAlgorithm | undefined {
  const n = name.toUpperCase().replace(/_/g, '-');
  return (Object.keys(KEM_ALGORITHMS) as KemAlgorithm[]).find((k) => k.toUpperCase() === n);
}

export function parseSigName(name: string): SigAlgorithm | undefined {
  const n = name.toUpperCase().replace(/_/g, '-');
  return (Object.keys(SIG_ALGORITHMS) as SigAlgorithm[]).find((k) => k.toUpperCase() === n);
}

/**
 * Post-quantum primitives behind one interface, so a native node:crypto backend can replace
 * @noble/post-quantum with byte-identical results. docs/PROTOCOL.md §3.
 * Randomness can be passed in (seeds, encapsulation message, signing randomness) so that test
 * vectors are deterministic; production calls leave it out.
 */
import { ml_kem768, ml_kem1024 } from '@noble/post-quantum/ml-kem.js';
import { ml_dsa44, ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { falcon512 } from '@noble/post-quantum/falcon.js';
import type { KemAlgorithm, SigAlgorithm } from './algorithms';
import { nativeBackend } from './native';

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export interface CryptoBackend {
  readonly name: string;
  kemKeygen(alg: KemAlgorithm, seed?: Uint8Array): KeyPair;
  /** `random` is the 32-byte encapsulation message (deterministic vectors only). */
  encapsulate(alg: KemAlgorithm, publicKey: Uint8Array, random?: Uint8Array): { capsule: Uint8Array; sharedSecret: Uint8Array };
  decapsulate(alg: KemAlgorithm, capsule: Uint8Array, secretKey: Uint8Array): Uint8Array;
  sigKeygen(alg: SigAlgorithm, seed?: Uint8Array): KeyPair;
  /** `random` fixes the signing randomness (deterministic vectors only). */
  sign(alg: SigAlgorithm, message: Uint8Array, secretKey: Uint8Array, random?: Uint8Array): Uint8Array;
  /** Never throws on a peer's bytes: a malformed signature is simply `false`. */
  verify(alg: SigAlgorithm, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** Falcon's signing hook; noble's `sign` type does not list it. */
type FalconSignOptions = Parameters<typeof falcon512.sign>[2];

const KEMS = { 'ML-KEM-768': ml_kem768, 'ML-KEM-1024': ml_kem1024 } as const;
const DSAS = { 'ML-DSA-44': ml_dsa44, 'ML-DSA-65': ml_dsa65 } as const;

export const nobleBackend: CryptoBackend = Object.freeze({
  name: 'noble',
  kemKeygen(alg: KemAlgorithm, seed?: Uint8Array): KeyPair {
    return KEMS[alg].keygen(seed);
  },
  encapsulate(alg: KemAlgorithm, publicKey: Uint8Array, random?: Uint8Array) {
    const { cipherText, sharedSecret } = KEMS[alg].encapsulate(publicKey, random);
    return { capsule: cipherText, sharedSecret };
  },
  decapsulate(alg: KemAlgorithm, capsule: Uint8Array, secretKey: Uint8Array): Uint8Array {
    return KEMS[alg].decapsulate(capsule, secretKey);
  },
  sigKeygen(alg: SigAlgorithm, seed?: Uint8Array): KeyPair {
    return alg === 'Falcon-512' ? falcon512.keygen(seed) : DSAS[alg].keygen(seed);
  },
  sign(alg: SigAlgorithm, message: Uint8Array, secretKey: Uint8Array, random?: Uint8Array): Uint8Array {
    if (alg === 'Falcon-512') {
      return random === undefined
        ? falcon512.sign(message, secretKey)
        : falcon512.sign(message, secretKey, { random: (n = 48) => expand(random, n) } as FalconSignOptions);
    }
    return random === undefined
      ? DSAS[alg].sign(message, secretKey)
      : DSAS[alg].sign(message, secretKey, { extraEntropy: expand(random, 32) });
  },
  verify(alg: SigAlgorithm, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      return alg === 'Falcon-512'
        ? falcon512.verify(signature, message, publicKey)
        : DSAS[alg].verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
});

/** Deterministic randomness of the requested length from a fixed test input. */
function expand(random: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = random[i % random.length] ^ (i >> 8);
  return out;
}

let active: CryptoBackend | undefined;

/** The backend the protocol core uses: node:crypto's when the running Node has it, else noble. */
export function cryptoBackend(): CryptoBackend {
  // Chosen on first use, not at load: native.ts imports this module, so while either loads the
  // other may still be incomplete.
  active ??= nativeBackend ?? nobleBackend;
  return active;
}

/** Which implementation runs, for the config node to show once (e.g. 'noble'). */
export function cryptoBackendName(): string {
  return cryptoBackend().name;
}

/** For tests that run the same assertions against several backends. */
export function useCryptoBackend(backend: CryptoBackend): void {
  active = backend;
}

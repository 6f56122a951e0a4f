/**
 * ML-KEM and ML-DSA through node:crypto (OpenSSL 3.5, Node ≥ 24.7), about ten times faster than
 * JS, with byte-identical results to the noble backend. docs/PROTOCOL.md §3; DESIGN §6.
 *
 * Keys cross this interface in the encodings the project stores (noble's): FIPS 203 / FIPS 204
 * raw public keys, *expanded* secret keys (ML-KEM dk 2400/3168 bytes, ML-DSA sk 2560/4032
 * bytes), and keygen seeds (ML-KEM d‖z 64 bytes, ML-DSA ξ 32 bytes). node:crypto has no raw
 * export for an expanded secret key, so keys move through DER: PKCS#8 with the ML-KEM/ML-DSA
 * private-key CHOICE of the IETF LAMPS drafts (seed [0], expandedKey OCTET STRING, or both),
 * which OpenSSL 3.5 both reads and writes, and SubjectPublicKeyInfo for public keys. Importing
 * an expanded key makes OpenSSL check it for consistency; a corrupted stored key then throws here
 * where noble might compute with it.
 *
 * Delegated to noble: Falcon-512 (not in OpenSSL), and every call that passes `random`, since
 * node:crypto cannot take the ML-KEM encapsulation message m nor the ML-DSA signing randomness
 * rnd (OpenSSL has test-only parameters for both, Node does not expose them), and the
 * deterministic vectors need exactly those bytes.
 *
 * This module imports backend.ts, and backend.ts imports this one to pick the default backend:
 * `nobleBackend` is therefore only read inside calls, never while this module loads.
 */
import * as nodeCrypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KEM_ALGORITHMS, SIG_ALGORITHMS, type KemAlgorithm, type SigAlgorithm } from './algorithms';
import { nobleBackend, type CryptoBackend, type KeyPair } from './backend';

type NativeAlgorithm = KemAlgorithm | Exclude<SigAlgorithm, 'Falcon-512'>;

/** DER AlgorithmIdentifier bodies (OID only, parameters absent), NIST CSOR arcs. */
const OIDS: Readonly<Record<NativeAlgorithm, string>> = Object.freeze({
  'ML-KEM-768': '608648016503040402', // 2.16.840.1.101.3.4.4.2
  'ML-KEM-1024': '608648016503040403', // 2.16.840.1.101.3.4.4.3
  'ML-DSA-44': '608648016503040311', // 2.16.840.1.101.3.4.3.17
  'ML-DSA-65': '608648016503040312', // 2.16.840.1.101.3.4.3.18
});

const SIZES: Readonly<Record<NativeAlgorithm, { publicKey: number; secretKey: number; seed: number }>> = Object.freeze({
  'ML-KEM-768': KEM_ALGORITHMS['ML-KEM-768'],
  'ML-KEM-1024': KEM_ALGORITHMS['ML-KEM-1024'],
  'ML-DSA-44': SIG_ALGORITHMS['ML-DSA-44'],
  'ML-DSA-65': SIG_ALGORITHMS['ML-DSA-65'],
});

/** ML-DSA signatures have one fixed length; anything else is rejected before OpenSSL sees it. */
const SIGNATURE_BYTES: Readonly<Record<Exclude<SigAlgorithm, 'Falcon-512'>, number>> = Object.freeze({
  'ML-DSA-44': SIG_ALGORITHMS['ML-DSA-44'].maxSignature,
  'ML-DSA-65': SIG_ALGORITHMS['ML-DSA-65'].maxSignature,
});

const CAPSULE_BYTES: Readonly<Record<KemAlgorithm, number>> = Object.freeze({
  'ML-KEM-768': KEM_ALGORITHMS['ML-KEM-768'].cipherText,
  'ML-KEM-1024': KEM_ALGORITHMS['ML-KEM-1024'].cipherText,
});

const TAG = Object.freeze({ INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, OID: 0x06, SEQUENCE: 0x30, SEED: 0x80 });

/** What this backend needs from node:crypto; a parameter so the feature test can be tested. */
export interface NativeCryptoApi {
  createPrivateKey(input: { key: Buffer; format: 'der'; type: 'pkcs8' }): KeyObject;
  createPublicKey(input: KeyObject | { key: Buffer; format: 'der'; type: 'spki' }): KeyObject;
  sign(algorithm: null, data: Uint8Array, key: KeyObject): Buffer;
  verify(algorithm: null, data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean;
  /** Node ≥ 24.7 only; absent from @types/node 20. */
  encapsulate?: (key: KeyObject) => { sharedKey: Buffer; ciphertext: Buffer };
  decapsulate?: (key: KeyObject, ciphertext: Uint8Array) => Buffer;
  randomBytes(size: number): Buffer;
  createHash(algorithm: 'sha256'): { update(data: Uint8Array): { digest(): Buffer } };
}

type KemApi = NativeCryptoApi & Required<Pick<NativeCryptoApi, 'encapsulate' | 'decapsulate'>>;

// --- DER: just the shapes above ------------------------------------------------------------------

function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  if (n > 0xffff) throw new Error('native ML key: DER element too long'); // largest here: about 4.1 kB
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

function algorithmIdentifier(alg: NativeAlgorithm): Buffer {
  return tlv(TAG.SEQUENCE, tlv(TAG.OID, Buffer.from(OIDS[alg], 'hex')));
}

function pkcs8(alg: NativeAlgorithm, privateKeyChoice: Buffer): Buffer {
  return tlv(TAG.SEQUENCE, tlv(TAG.INTEGER, Buffer.from([0])), algorithmIdentifier(alg), tlv(TAG.OCTET_STRING, privateKeyChoice));
}

interface Tlv { tag: number; body: Buffer; }

/** Reads the TLVs that exactly fill `der`; throws on anything else (the input is OpenSSL's own output). */
function readAll(der: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let i = 0;
  while (i < der.length) {
    if (der.length - i < 2) throw new Error('native ML key: truncated DER');
    const tag = der[i];
    let len = der[i + 1];
    let head = 2;
    if (len & 0x80) {
      const k = len & 0x7f;
      if (k < 1 || k > 2 || der.length - i < 2 + k) throw new Error('native ML key: bad DER length');
      len = k === 1 ? der[i + 2] : (der[i + 2] << 8) | der[i + 3];
      head = 2 + k;
    }
    if (der.length - i - head < len) throw new Error('native ML key: truncated DER');
    out.push({ tag, body: der.subarray(i + head, i + head + len) });
    i += head + len;
  }
  return out;
}

/** The TLVs inside `der`, which must be exactly one element of the given tag. */
function readInside(der: Buffer, tag: number, what: string): Tlv[] {
  const items = readAll(der);
  if (items.length !== 1 || items[0].tag !== tag) throw new Error(`native ML key: unexpected ${what} layout`);
  return readAll(items[0].body);
}

function expectShape(items: Tlv[], tags: number[], what: string): void {
  if (items.length !== tags.length || items.some((t, j) => t.tag !== tags[j])) throw new Error(`native ML key: unexpected ${what} layout`);
}

/** The expanded secret key from OpenSSL's PKCS#8: the "both" (seed and key) or "expandedKey" choice. */
function expandedFromPkcs8(alg: NativeAlgorithm, der: Buffer): Uint8Array {
  const fields = readInside(der, TAG.SEQUENCE, 'PKCS#8');
  expectShape(fields, [TAG.INTEGER, TAG.SEQUENCE, TAG.OCTET_STRING], 'PKCS#8');
  if (!fields[1].body.equals(algorithmIdentifier(alg).subarray(2))) throw new Error(`native ML key: not an ${alg} key`);
  const choice = readAll(fields[2].body);
  let expanded: Buffer;
  if (choice.length === 1 && choice[0].tag === TAG.OCTET_STRING) {
    expanded = choice[0].body;
  } else {
    const both = readInside(fields[2].body, TAG.SEQUENCE, 'seed-and-key');
    expectShape(both, [TAG.OCTET_STRING, TAG.OCTET_STRING], 'seed-and-key');
    expanded = both[1].body;
  }
  if (expanded.length !== SIZES[alg].secretKey) throw new Error(`native ML key: ${alg} expanded key has ${expanded.length} bytes`);
  return new Uint8Array(expanded);
}

function rawFromSpki(alg: NativeAlgorithm, der: Buffer): Uint8Array {
  const fields = readInside(der, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  expectShape(fields, [TAG.SEQUENCE, TAG.BIT_STRING], 'SubjectPublicKeyInfo');
  if (!fields[0].body.equals(algorithmIdentifier(alg).subarray(2))) throw new Error(`native ML key: not an ${alg} key`);
  const bits = fields[1].body;
  if (bits[0] !== 0 || bits.length - 1 !== SIZES[alg].publicKey) throw new Error(`native ML key: bad ${alg} public key`);
  return new Uint8Array(bits.subarray(1));
}

function checkBytes(field: string, bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${field}: expected Uint8Array`);
}

function checkLength(field: string, bytes: Uint8Array, n: number): void {
  checkBytes(field, bytes);
  if (bytes.length !== n) throw new Error(`${field}: expected ${n} bytes, got ${bytes.length}`);
}

// --- the backend ---------------------------------------------------------------------------------

/** Prepared public keys by content; bounded, oldest dropped first. Public, so no wiping needed. */
const PUBLIC_KEY_CACHE_ENTRIES = 256;

function makeNativeBackend(api: KemApi, name: string): CryptoBackend {
  const publicKeys = new Map<string, KeyObject>();
  // Keyed by the caller's array, so a dropped identity frees its key; the digest notices an
  // array that was wiped or overwritten since.
  const secretKeys = new WeakMap<Uint8Array, { alg: NativeAlgorithm; digest: Buffer; key: KeyObject }>();

  const digestOf = (b: Uint8Array): Buffer => api.createHash('sha256').update(b).digest();

  function publicKeyObject(alg: NativeAlgorithm, publicKey: Uint8Array): KeyObject {
    checkLength('publicKey', publicKey, SIZES[alg].publicKey);
    const id = `${alg}:${Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64')}`;
    const hit = publicKeys.get(id);
    if (hit) {
      publicKeys.delete(id);
      publicKeys.set(id, hit);
      return hit;
    }
    const key = api.createPublicKey({
      key: tlv(TAG.SEQUENCE, algorithmIdentifier(alg), tlv(TAG.BIT_STRING, Buffer.from([0]), publicKey)), format: 'der', type: 'spki',
    });
    publicKeys.set(id, key);
    if (publicKeys.size > PUBLIC_KEY_CACHE_ENTRIES) {
      const oldest = publicKeys.keys().next();
      if (!oldest.done) publicKeys.delete(oldest.value);
    }
    return key;
  }

  function secretKeyObject(alg: NativeAlgorithm, secretKey: Uint8Array): KeyObject {
    checkLength('secretKey', secretKey, SIZES[alg].secretKey);
    const digest = digestOf(secretKey);
    const hit = secretKeys.get(secretKey);
    if (hit && hit.alg === alg && hit.digest.equals(digest)) return hit.key;
    const der = pkcs8(alg, tlv(TAG.OCTET_STRING, secretKey));
    try {
      const key = api.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      secretKeys.set(secretKey, { alg, digest, key });
      return key;
    } finally {
      der.fill(0);
    }
  }

  function keygen(alg: NativeAlgorithm, seed: Uint8Array | undefined): KeyPair {
    const s = seed ?? api.randomBytes(SIZES[alg].seed);
    checkLength('seed', s, SIZES[alg].seed);
    const seedDer = pkcs8(alg, tlv(TAG.SEED, s));
    let exported: Buffer | undefined;
    try {
      const key = api.createPrivateKey({ key: seedDer, format: 'der', type: 'pkcs8' });
      exported = key.export({ format: 'der', type: 'pkcs8' });
      const secretKey = expandedFromPkcs8(alg, exported);
      const publicKey = rawFromSpki(alg, api.createPublicKey(key).export({ format: 'der', type: 'spki' }));
      secretKeys.set(secretKey, { alg, digest: digestOf(secretKey), key });
      return { publicKey, secretKey };
    } finally {
      seedDer.fill(0);
      exported?.fill(0);
      if (seed === undefined) s.fill(0);
    }
  }

  return Object.freeze({
    name,
    kemKeygen(alg: KemAlgorithm, seed?: Uint8Array): KeyPair {
      return keygen(alg, seed);
    },
    encapsulate(alg: KemAlgorithm, publicKey: Uint8Array, random?: Uint8Array) {
      if (random !== undefined) return nobleBackend.encapsulate(alg, publicKey, random);
      const { ciphertext, sharedKey } = api.encapsulate(publicKeyObject(alg, publicKey));
      try {
        return { capsule: new Uint8Array(ciphertext), sharedSecret: new Uint8Array(sharedKey) };
      } finally {
        sharedKey.fill(0);
      }
    },
    decapsulate(alg: KemAlgorithm, capsule: Uint8Array, secretKey: Uint8Array): Uint8Array {
      checkLength('capsule', capsule, CAPSULE_BYTES[alg]);
      const shared = api.decapsulate(secretKeyObject(alg, secretKey), capsule);
      try {
        return new Uint8Array(shared);
      } finally {
        shared.fill(0);
      }
    },
    sigKeygen(alg: SigAlgorithm, seed?: Uint8Array): KeyPair {
      return alg === 'Falcon-512' ? nobleBackend.sigKeygen(alg, seed) : keygen(alg, seed);
    },
    sign(alg: SigAlgorithm, message: Uint8Array, secretKey: Uint8Array, random?: Uint8Array): Uint8Array {
      if (alg === 'Falcon-512' || random !== undefined) return nobleBackend.sign(alg, message, secretKey, random);
      checkBytes('message', message);
      return new Uint8Array(api.sign(null, message, secretKeyObject(alg, secretKey)));
    },
    verify(alg: SigAlgorithm, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      if (alg === 'Falcon-512') return nobleBackend.verify(alg, signature, message, publicKey);
      try {
        checkLength('signature', signature, SIGNATURE_BYTES[alg]);
        checkBytes('message', message);
        return api.verify(null, message, publicKeyObject(alg, publicKey), signature);
      } catch {
        return false;
      }
    },
  });
}

/**
 * The feature test: a native backend if `api` can do every algorithm here, otherwise undefined.
 * Never looks at version strings. Per algorithm: keygen from a fixed seed, then the operations
 * with a copy of the secret key, so that the import of a stored (expanded) key is tried as well.
 */
export function probeNativeBackend(api: NativeCryptoApi = nodeCrypto as unknown as NativeCryptoApi): CryptoBackend | undefined {
  if (typeof api.encapsulate !== 'function' || typeof api.decapsulate !== 'function') return undefined;
  const openssl = typeof process.versions.openssl === 'string' ? ` (OpenSSL ${process.versions.openssl})` : '';
  const backend = makeNativeBackend(api as KemApi, `node:crypto${openssl} + noble Falcon`);
  try {
    for (const alg of Object.keys(KEM_ALGORITHMS) as KemAlgorithm[]) {
      const kp = backend.kemKeygen(alg, new Uint8Array(SIZES[alg].seed).fill(7));
      const { capsule, sharedSecret } = backend.encapsulate(alg, kp.publicKey);
      if (!Buffer.from(backend.decapsulate(alg, capsule, Uint8Array.from(kp.secretKey))).equals(sharedSecret)) return undefined;
    }
    for (const alg of ['ML-DSA-44', 'ML-DSA-65'] as const) {
      const kp = backend.sigKeygen(alg, new Uint8Array(SIZES[alg].seed).fill(7));
      const message = new Uint8Array([1, 2, 3]);
      if (!backend.verify(alg, backend.sign(alg, message, Uint8Array.from(kp.secretKey)), message, kp.publicKey)) return undefined;
    }
  } catch {
    return undefined;
  }
  return backend;
}

/** node:crypto's ML-KEM/ML-DSA when the running Node has them (Node ≥ 24.7, OpenSSL 3.5). */
export const nativeBackend: CryptoBackend | undefined = probeNativeBackend();

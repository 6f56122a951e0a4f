/**
 * Symmetric primitives from node:crypto (native; noble's table-based AES is not cache-timing
 * safe): SHA-256, HKDF-SHA256, AES-256-GCM, and the domain-separated digest every signature
 * covers. docs/PROTOCOL.md §3–4.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hash, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { AES_KEY_BYTES, GCM_NONCE_BYTES, GCM_TAG_BYTES } from './algorithms';

/** Every label the protocol signs or derives under; one place so none is reused by accident. */
export const LABELS = Object.freeze({
  keyId: 'pqc-iiot:key-id:v1',
  caKeyId: 'pqc-iiot:ca-key-id:v1',
  certificate: 'pqc-iiot:cert:v1',
  announcement: 'pqc-iiot:announce:v1',
  message: 'pqc-iiot:mqtt-msg:v1',
  revocation: 'pqc-iiot:revocation:v1',
  audit: 'pqc-iiot:audit:v1',
  stateSeal: 'pqc-iiot:state-seal:v1',
  directKey: 'pqc-iiot:direct-key:v1',
  directAad: 'pqc-iiot:direct-aad:v1',
  topicKey: 'pqc-iiot:topic-key:v1',
  topicKek: 'pqc-iiot:topic-kek:v1',
  topicWrapAad: 'pqc-iiot:topic-wrap:v1',
  topicData: 'pqc-iiot:topic-data:v1',
  topicAad: 'pqc-iiot:topic-aad:v1',
  batchLeaf: 'pqc-iiot:batch-leaf:v1',
  batchNode: 'pqc-iiot:batch-node:v1',
  batchRoot: 'pqc-iiot:batch-root:v1',
  batchManifest: 'pqc-iiot:batch-manifest:v1',
} as const);

export type Label = (typeof LABELS)[keyof typeof LABELS];

/** A plain Uint8Array over a Buffer's bytes, without copying them. */
function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

function sha256Of(data: Uint8Array): Uint8Array {
  // One-shot hashing (node:crypto `hash`, Node ≥ 20.12; engines says ≥ 20.19): no Hash object per call.
  return view(hash('sha256', data, 'buffer'));
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return sha256Of(parts.length === 1 ? parts[0] : Buffer.concat(parts));
}

/** The framed label prefix `u16 len(label) ‖ label` of each label, built once. */
const labelPrefixes = new Map<string, Buffer>();
function labelPrefix(label: Label): Buffer {
  let prefix = labelPrefixes.get(label);
  if (!prefix) {
    const l = Buffer.from(label, 'ascii');
    prefix = Buffer.alloc(2 + l.length);
    prefix.writeUInt16BE(l.length, 0);
    l.copy(prefix, 2);
    labelPrefixes.set(label, prefix);
  }
  return prefix;
}

/**
 * SHA-256 over a domain label and length-framed parts:
 *   u16 len(label) ‖ label ‖ for each part: u32 len(part) ‖ part
 * Framing makes the split between fields unambiguous (no "ab"+"c" = "a"+"bc"). A string part
 * stands for its UTF-8 bytes. The framed bytes are laid out in one buffer and hashed in one
 * call: this runs several times per message.
 */
export function domainDigest(label: Label, parts: readonly (Uint8Array | string)[]): Uint8Array {
  const prefix = labelPrefix(label);
  let size = prefix.length;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    size += 4 + (typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : p.length);
  }
  // Laid out in a scratch buffer reused by every call (hashing is synchronous): no allocation
  // per digest but the digest itself. Only public bytes are framed (wire data, public keys,
  // ids), so what the scratch keeps between calls is no secret.
  if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, 2 * scratch.length));
  prefix.copy(scratch, 0);
  let at = prefix.length;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const n = typeof p === 'string' ? scratch.write(p, at + 4, 'utf8') : (scratch.set(p, at + 4), p.length);
    scratch.writeUInt32BE(n, at);
    at += 4 + n;
  }
  return sha256Of(scratch.subarray(0, size));
}

let scratch = Buffer.allocUnsafeSlow(4096);

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

export function randomKey(): Uint8Array {
  return new Uint8Array(randomBytes(AES_KEY_BYTES));
}

/** Random nonces are drawn from a pool filled in one call, not one system call per message. */
const NONCES_PER_FILL = 256;
let noncePool = Buffer.alloc(0);
let nonceAt = 0;

export function randomNonce(): Uint8Array {
  if (nonceAt + GCM_NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(GCM_NONCE_BYTES * NONCES_PER_FILL);
    nonceAt = 0;
  }
  // A copy: the caller may keep or wipe it, and each pool byte is handed out once.
  const nonce = new Uint8Array(noncePool.subarray(nonceAt, nonceAt + GCM_NONCE_BYTES));
  nonceAt += GCM_NONCE_BYTES;
  return nonce;
}

/** An AES-256 key prepared once for many messages (a topic key): cheaper ciphers per message. */
export type AesKey = Uint8Array | KeyObject;

export function prepareAesKey(key: Uint8Array): KeyObject {
  if (key.length !== AES_KEY_BYTES) throw new RangeError('AES-256-GCM key must be 32 bytes');
  return createSecretKey(key);
}

function aesKeyLength(key: AesKey): number {
  return key instanceof Uint8Array ? key.length : (key.symmetricKeySize ?? 0);
}

/**
 * Ciphers always get a KeyObject: under OpenSSL 3.5 (Node 24) a cipher set up from raw key bytes
 * costs about 11 µs against 3 µs from a KeyObject, and wrapping the bytes takes about 1 µs
 * (Node 20 sets both up in about 3 µs). Either way Node keeps its own copy of the key until the
 * cipher or KeyObject is collected; the caller still wipes its bytes.
 */
function cipherKey(key: AesKey): KeyObject {
  return key instanceof Uint8Array ? createSecretKey(key) : key;
}

/** AES-256-GCM; returns ciphertext ‖ 16-byte tag. */
export function aesGcmSeal(key: AesKey, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (aesKeyLength(key) !== AES_KEY_BYTES) throw new RangeError('AES-256-GCM key must be 32 bytes');
  if (nonce.length !== GCM_NONCE_BYTES) throw new RangeError('GCM nonce must be 12 bytes');
  const c = createCipheriv('aes-256-gcm', cipherKey(key), nonce, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(aad);
  const body = c.update(plaintext);
  c.final();
  return view(Buffer.concat([body, c.getAuthTag()]));
}

/** Opens ciphertext ‖ tag; undefined when authentication fails (never throws on peer bytes). */
export function aesGcmOpen(key: AesKey, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < GCM_TAG_BYTES || nonce.length !== GCM_NONCE_BYTES || aesKeyLength(key) !== AES_KEY_BYTES) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', cipherKey(key), nonce, { authTagLength: GCM_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
    const body = d.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES));
    d.final();
    return view(body);
  } catch {
    return undefined;
  }
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Equal bytes, compared by memcmp: for public data only (hashes, signatures, key ids on the wire),
 * where the time a comparison takes tells nothing; secrets go through constantTimeEqual.
 */
export function publicBytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return constantTimeEqual(a, b);
}

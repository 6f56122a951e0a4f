/**
 * Symmetric primitives from node:crypto (native; noble's table-based AES is not cache-timing
 * safe): SHA-256, HKDF-SHA256, AES-256-GCM, and the domain-separated digest every signature
 * covers. docs/PROTOCOL.md §3–4.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
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
} as const);

export type Label = (typeof LABELS)[keyof typeof LABELS];

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/**
 * SHA-256 over a domain label and length-framed parts:
 *   u16 len(label) ‖ label ‖ for each part: u32 len(part) ‖ part
 * Framing makes the split between fields unambiguous (no "ab"+"c" = "a"+"bc").
 */
export function domainDigest(label: Label, parts: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  const l = Buffer.from(label, 'ascii');
  const len = Buffer.alloc(4);
  len.writeUInt16BE(l.length, 0);
  h.update(len.subarray(0, 2));
  h.update(l);
  for (const p of parts) {
    len.writeUInt32BE(p.length, 0);
    h.update(len);
    h.update(p);
  }
  return new Uint8Array(h.digest());
}

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

export function randomKey(): Uint8Array {
  return new Uint8Array(randomBytes(AES_KEY_BYTES));
}

export function randomNonce(): Uint8Array {
  return new Uint8Array(randomBytes(GCM_NONCE_BYTES));
}

/** AES-256-GCM; returns ciphertext ‖ 16-byte tag. */
export function aesGcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.length !== AES_KEY_BYTES) throw new RangeError('AES-256-GCM key must be 32 bytes');
  if (nonce.length !== GCM_NONCE_BYTES) throw new RangeError('GCM nonce must be 12 bytes');
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(aad);
  const body = c.update(plaintext);
  c.final();
  return new Uint8Array(Buffer.concat([body, c.getAuthTag()]));
}

/** Opens ciphertext ‖ tag; undefined when authentication fails (never throws on peer bytes). */
export function aesGcmOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < GCM_TAG_BYTES || nonce.length !== GCM_NONCE_BYTES || key.length !== AES_KEY_BYTES) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
    const body = d.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES));
    d.final();
    return new Uint8Array(body);
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

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return constantTimeEqual(a, b);
}

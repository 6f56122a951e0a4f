/**
 * Sender authentication trailer of data envelopes (docs/PROTOCOL.md §2.7): one kind byte, then
 * the kind's fields. Every kind authenticates the I3 message digest
 *   framed("pqc-iiot:mqtt-msg:v1", sender id, topic, encrypted blob)
 * where the encrypted blob is every byte before the trailer.
 *
 * - kind 0x01 `signature`: a signature over the message digest itself.
 * - kind 0x02 `batch`: the message digest is one leaf of a Merkle tree over a batch of envelopes
 *   (§4.7); the trailer carries the leaf index, the leaf count, the authentication path (sibling
 *   hashes from the leaf upward, as many as the tree shape gives for that index and count) and the
 *   sender's signature over the batch root digest. Each envelope stays verifiable on its own.
 */
import { signature as signatureField } from './common';
import { u8, type Field } from './fields';

export const AUTH_KINDS = Object.freeze({
  /** A signature over the message digest. */
  signature: 0x01,
  /** A Merkle authentication path to a signed batch root (§4.7). */
  batch: 0x02,
} as const);

/** Bytes of one Merkle hash (SHA-256). */
export const BATCH_HASH_BYTES = 32;
/** Largest batch a leaf count can name (u8); senders default to far less (§4.7). */
export const MAX_BATCH_LEAVES = 255;

export type EnvelopeAuth =
  | { readonly kind: 'signature'; readonly signature: Uint8Array }
  | {
    readonly kind: 'batch';
    /** Position of this envelope's leaf, 0-based, < leafCount. */
    readonly leafIndex: number;
    /** Leaves in the batch, 1..255. */
    readonly leafCount: number;
    /** Sibling hashes from the leaf level up to just below the root. */
    readonly path: readonly Uint8Array[];
    /** Sender signature over the batch root digest (§4.7). */
    readonly signature: Uint8Array;
  };

/**
 * How many hashes the authentication path of leaf `index` in a batch of `count` leaves has: the
 * depth of that leaf in the tree of §4.7 (left subtree = the largest power of two below count).
 */
export function batchPathLength(index: number, count: number): number {
  let depth = 0;
  while (count > 1) {
    const k = largestPowerOfTwoBelow(count);
    if (index < k) {
      count = k;
    } else {
      index -= k;
      count -= k;
    }
    depth++;
  }
  return depth;
}

/** The largest power of two strictly below n (n ≥ 2). */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export const envelopeAuth: Field<EnvelopeAuth> = {
  name: 'auth',
  encode(w, value) {
    u8.encode(w, AUTH_KINDS[value.kind]);
    if (value.kind === 'batch') {
      const { leafIndex, leafCount, path } = value;
      if (!Number.isInteger(leafCount) || leafCount < 1 || leafCount > MAX_BATCH_LEAVES) throw new RangeError(`leaf count ${leafCount}`);
      if (!Number.isInteger(leafIndex) || leafIndex < 0 || leafIndex >= leafCount) throw new RangeError(`leaf index ${leafIndex}`);
      if (path.length !== batchPathLength(leafIndex, leafCount)) throw new RangeError(`path of ${path.length} hashes for leaf ${leafIndex} of ${leafCount}`);
      u8.encode(w, leafIndex);
      u8.encode(w, leafCount);
      for (const h of path) {
        if (!(h instanceof Uint8Array) || h.length !== BATCH_HASH_BYTES) throw new RangeError('path hash must be 32 bytes');
        w.push(h);
      }
    }
    signatureField.encode(w, value.signature);
  },
  decode(r) {
    const kind = u8.decode(r);
    if (kind === undefined) return undefined;
    if (kind === AUTH_KINDS.signature) {
      const signature = signatureField.decode(r);
      return signature === undefined ? undefined : { kind: 'signature', signature };
    }
    if (kind !== AUTH_KINDS.batch) return r.fail('bad-field');
    const leafIndex = u8.decode(r);
    const leafCount = u8.decode(r);
    if (leafIndex === undefined || leafCount === undefined) return undefined;
    if (leafCount < 1 || leafIndex >= leafCount) return r.fail('bad-field');
    const path: Uint8Array[] = [];
    for (let i = batchPathLength(leafIndex, leafCount); i > 0; i--) {
      const h = r.take(BATCH_HASH_BYTES);
      if (h === undefined) return undefined;
      path.push(h);
    }
    const signature = signatureField.decode(r);
    return signature === undefined ? undefined : { kind: 'batch', leafIndex, leafCount, path, signature };
  },
};

/** Size of an encoded trailer, to find where the encrypted blob ends. */
export function authBytes(auth: EnvelopeAuth): number {
  const batch = auth.kind === 'batch' ? 2 + BATCH_HASH_BYTES * auth.path.length : 0;
  return 1 + batch + 2 + auth.signature.length;
}

/**
 * The Merkle tree of batch authentication (docs/PROTOCOL.md §4.7): one signature covers the
 * root of a tree over the I3 message digests of up to 255 envelopes, and each envelope carries
 * the path from its own leaf to that root.
 *
 *   leaf(i)        = framed("pqc-iiot:batch-leaf:v1", [u8 i], message-digest_i)
 *   node(l, r)     = framed("pqc-iiot:batch-node:v1", l, r)
 *   MTH(one leaf)  = that leaf
 *   MTH(D[0..n))   = node(MTH(D[0..k)), MTH(D[k..n)))   k = largest power of two < n
 *   root digest    = framed("pqc-iiot:batch-root:v1", ascii(sender_id), MTH, [u8 n])
 *
 * The shape is RFC 6962's (Certificate Transparency), so the path length of leaf i is fixed by
 * (i, n). Leaves and inner nodes are hashed under different labels, so an inner node can never
 * be presented as a leaf (a shortened path fails), and the leaf binds its own index.
 */
import { LABELS, domainDigest } from '../crypto/symmetric';
import { MAX_BATCH_LEAVES, batchPathLength, largestPowerOfTwoBelow } from '../wire/auth';

export function batchLeaf(index: number, messageDigest: Uint8Array): Uint8Array {
  return domainDigest(LABELS.batchLeaf, [Uint8Array.of(index), messageDigest]);
}

export function batchNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  return domainDigest(LABELS.batchNode, [left, right]);
}

/** What the sender signs for a batch: bound to its id, the root and the leaf count. */
export function batchRootDigest(senderId: string, root: Uint8Array, leafCount: number): Uint8Array {
  return domainDigest(LABELS.batchRoot, [Buffer.from(senderId, 'ascii'), root, Uint8Array.of(leafCount)]);
}

export interface BatchTree {
  root: Uint8Array;
  /** paths[i]: sibling hashes of leaf i, from the leaf level upward. */
  paths: Uint8Array[][];
}

/** The tree over message digests, in the order given (leaf i = digests[i]). */
export function buildBatchTree(messageDigests: readonly Uint8Array[]): BatchTree {
  const n = messageDigests.length;
  if (n < 1 || n > MAX_BATCH_LEAVES) throw new RangeError(`a batch has 1..${MAX_BATCH_LEAVES} leaves, not ${n}`);
  const leaves = messageDigests.map((d, i) => batchLeaf(i, d));
  const paths: Uint8Array[][] = leaves.map(() => []);
  const build = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leaves[lo];
    const k = largestPowerOfTwoBelow(hi - lo);
    const left = build(lo, lo + k);
    const right = build(lo + k, hi);
    for (let i = lo; i < lo + k; i++) paths[i].push(right);
    for (let i = lo + k; i < hi; i++) paths[i].push(left);
    return batchNode(left, right);
  };
  return { root: build(0, n), paths };
}

/**
 * The root that leaf `index` of `count` with this message digest and path leads to; undefined
 * when the index, count or path length do not fit together (the decoder already refuses those).
 */
export function batchRootFromPath(messageDigest: Uint8Array, index: number, count: number, path: readonly Uint8Array[]): Uint8Array | undefined {
  if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH_LEAVES) return undefined;
  if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
  if (path.length !== batchPathLength(index, count)) return undefined;
  const leaf = batchLeaf(index, messageDigest);
  // Top-down over the shape, consuming the path from its top end (the root's other child).
  const climb = (i: number, n: number, top: number): Uint8Array => {
    if (n === 1) return leaf;
    const k = largestPowerOfTwoBelow(n);
    const sibling = path[top - 1];
    return i < k ? batchNode(climb(i, k, top - 1), sibling) : batchNode(sibling, climb(i - k, n - k, top - 1));
  };
  return climb(index, count, path.length);
}

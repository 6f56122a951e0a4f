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
import { LABELS, domainDigest, publicBytesEqual } from '../crypto/symmetric';
import { MAX_BATCH_LEAVES, largestPowerOfTwoBelow } from '../wire/auth';

export function batchLeaf(index: number, messageDigest: Uint8Array): Uint8Array {
  return domainDigest(LABELS.batchLeaf, [Uint8Array.of(index), messageDigest]);
}

export function batchNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  return domainDigest(LABELS.batchNode, [left, right]);
}

/** What the sender signs for a batch: bound to its id, the root and the leaf count. */
export function batchRootDigest(senderId: string, root: Uint8Array, leafCount: number): Uint8Array {
  return domainDigest(LABELS.batchRoot, [senderId, root, Uint8Array.of(leafCount)]);
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

/** A subtree of the batch tree, as its leaf range [lo, hi): one number, lo × 256 + hi. */
export type NodeRange = number;

const rangeOf = (lo: number, hi: number): NodeRange => lo * 256 + hi;

/**
 * Ranges along the path of leaf `index` of `count`, bottom-up: own[j] is the subtree the climb
 * holds before step j (own[0] the leaf), sibling[j] the one path[j] stands for. Undefined for a
 * misfit index/count.
 */
function pathRanges(index: number, count: number): { own: NodeRange[]; sibling: NodeRange[] } | undefined {
  if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH_LEAVES) return undefined;
  if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
  const own: NodeRange[] = [];
  const sibling: NodeRange[] = [];
  let lo = 0;
  let hi = count;
  while (hi - lo > 1) {
    const k = largestPowerOfTwoBelow(hi - lo);
    if (index < lo + k) {
      sibling.push(rangeOf(lo + k, hi));
      hi = lo + k;
    } else {
      sibling.push(rangeOf(lo, lo + k));
      lo += k;
    }
    own.push(rangeOf(lo, hi));
  }
  return { own: own.reverse(), sibling: sibling.reverse() };
}

export interface BatchClimb {
  /** The root this leaf and path lead to; undefined when the climb met the known tree first. */
  root: Uint8Array | undefined;
  /** Every node the climb computed or was given on its way, by range (the root not included). */
  nodes: Array<[NodeRange, Uint8Array]>;
}

/**
 * Climbs from leaf `index` of `count` with this message digest and path to the root. With
 * `known` (the nodes of a tree whose root signature already verified, by range), the climb stops
 * as soon as its own node equals the known node of that range and every remaining path hash
 * equals the known node of its range: from there it would recompute exactly the known nodes up
 * to the known root, so `root` is undefined: the known tree's verdict applies, without the hashes.
 * Undefined when index, count and path length do not fit together (the decoder refuses those).
 */
export function climbBatchPath(
  messageDigest: Uint8Array, index: number, count: number, path: readonly Uint8Array[], known?: ReadonlyMap<NodeRange, Uint8Array>,
): BatchClimb | undefined {
  const ranges = pathRanges(index, count);
  if (!ranges || path.length !== ranges.sibling.length) return undefined;
  const n = path.length;
  // suffixKnown[j]: path[j..n) are all the known nodes of their ranges.
  const suffixKnown: boolean[] = new Array<boolean>(n + 1).fill(false);
  if (known) {
    suffixKnown[n] = true;
    for (let j = n - 1; j >= 0; j--) {
      const k = known.get(ranges.sibling[j]);
      suffixKnown[j] = suffixKnown[j + 1] && k !== undefined && publicBytesEqual(k, path[j]);
      if (!suffixKnown[j]) break;
    }
  }
  const nodes: Array<[NodeRange, Uint8Array]> = [];
  let node = batchLeaf(index, messageDigest);
  let own = rangeOf(index, index + 1);
  for (let j = 0; j <= n; j++) {
    if (known && suffixKnown[j]) {
      const k = known.get(own);
      if (k !== undefined && publicBytesEqual(k, node)) return { root: undefined, nodes };
    }
    if (j === n) break;
    nodes.push([own, node], [ranges.sibling[j], path[j]]);
    const sibling = ranges.sibling[j];
    // The sibling's range tells the side: it lies left of the climb when it starts lower.
    node = Math.floor(sibling / 256) < Math.floor(own / 256) ? batchNode(path[j], node) : batchNode(node, path[j]);
    own = j + 1 < n ? ranges.own[j + 1] : rangeOf(0, count);
  }
  return { root: node, nodes };
}

/**
 * The root that leaf `index` of `count` with this message digest and path leads to; undefined
 * when the index, count or path length do not fit together (the decoder already refuses those).
 */
export function batchRootFromPath(messageDigest: Uint8Array, index: number, count: number, path: readonly Uint8Array[]): Uint8Array | undefined {
  return climbBatchPath(messageDigest, index, count, path)?.root;
}

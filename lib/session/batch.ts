/**
 * Amortized signing (docs/PROTOCOL.md §4.7): the sender collects the message digests of the
 * envelopes it seals within a short window and signs the root of a Merkle tree over them once;
 * the receiver checks each envelope's path to that root and remembers verified roots, so a batch
 * costs one signature and one verification, and every envelope still verifies on its own.
 *
 * When a batch closes (sender): when it holds `maxLeaves` envelopes; or when one turn of the
 * event loop passed without another envelope joining (so a lone message waits only for the
 * envelopes that were already queued behind it, not for a timer); or at the latest `maxDelayMs`
 * after its first envelope. A batch of one is signed directly (auth kind 0x01).
 */
import { publicBytesEqual } from '../crypto/symmetric';
import { ok, type Result } from '../result';
import { MAX_BATCH_LEAVES, type EnvelopeAuth } from '../wire/auth';
import { batchRootDigest, buildBatchTree, type NodeRange } from './batch-tree';

export interface BatchOptions {
  /** Most envelopes under one signature, 1..255; 1 turns batching off (auth kind 0x01 only). */
  readonly maxLeaves: number;
  /** Longest a batch stays open after its first envelope (ms), 0..1000. */
  readonly maxDelayMs: number;
}

export const DEFAULT_BATCH_OPTIONS: BatchOptions = Object.freeze({ maxLeaves: 16, maxDelayMs: 2 });

/** Longest any batch (signatures, §4.7; compact-mode manifests, §4.8) may be set to stay open (ms). */
export const MAX_BATCH_DELAY_MS = 1000;

/** Verified batch roots a receiver remembers (least recently used dropped first). */
export const DEFAULT_VERIFIED_ROOTS = 1024;

/** Trees whose nodes a receiver keeps to shorten later climbs (the batches streaming now). */
const KNOWN_TREES = 32;

/**
 * Merges overrides into `defaults` and checks them (batch signing and compact-mode manifests
 * alike); `what` names the setting in the error. Throws on nonsense.
 */
export function checkedBatchOptions(defaults: BatchOptions, options: Partial<BatchOptions> | undefined, what: string, maxLeaves: number): BatchOptions {
  const out = { ...defaults, ...(options ?? {}) };
  if (!Number.isInteger(out.maxLeaves) || out.maxLeaves < 1 || out.maxLeaves > maxLeaves) {
    throw new Error(`${what} maxLeaves must be an integer from 1 to ${maxLeaves}`);
  }
  if (typeof out.maxDelayMs !== 'number' || !(out.maxDelayMs >= 0 && out.maxDelayMs <= MAX_BATCH_DELAY_MS)) {
    throw new Error(`${what} maxDelayMs must be from 0 to ${MAX_BATCH_DELAY_MS}`);
  }
  return Object.freeze(out);
}

/** Merges overrides into the defaults; `false` (or maxLeaves 1) is "no batching". Throws on nonsense. */
export function resolveBatchOptions(options: Partial<BatchOptions> | false | undefined): BatchOptions | undefined {
  if (options === false) return undefined;
  const out = checkedBatchOptions(DEFAULT_BATCH_OPTIONS, options, 'batch', MAX_BATCH_LEAVES);
  return out.maxLeaves === 1 ? undefined : out;
}

/** Timers behind an interface, so tests can drive batching without real time. */
export interface BatchScheduler {
  /** After the current turn of the event loop (setImmediate). */
  soon(fn: () => void): () => void;
  /** After `ms` milliseconds (setTimeout). */
  after(ms: number, fn: () => void): () => void;
}

export const EVENT_LOOP_SCHEDULER: BatchScheduler = Object.freeze({
  soon(fn: () => void) {
    const h = setImmediate(fn);
    return () => clearImmediate(h);
  },
  after(ms: number, fn: () => void) {
    const h = setTimeout(fn, ms);
    return () => clearTimeout(h);
  },
});

/**
 * The closing rules of a sender's batch, shared by batch signing (§4.7) and compact-mode
 * manifests (§4.8): a batch opens with its first item and closes when it holds `maxLeaves`
 * items, when one turn of the event loop passed without another item joining (unless
 * `quietTurn` is false), or `maxDelayMs` after its first item, whichever comes first.
 *
 * `onClose` receives each closed batch (never empty) and returns its signing work. While the
 * work of an earlier batch is still running, the quiet-turn and delay rules wait: a batch closed
 * then would only queue behind that signature, so it keeps collecting until the work settles (or
 * `maxLeaves`). At a low rate nothing is in progress and nothing waits; under load each signature
 * covers what arrived during the previous one, so the signing work stays bounded however many
 * messages come. The same two rules also wait for items announced with `reserve()` (envelopes
 * still being prepared, e.g. behind an ML-KEM encapsulation on a worker): envelopes sent together
 * then share a batch even when their preparation finishes in different turns.
 */
export class BatchWindow<T> {
  private open: T[] = [];
  private seenAtCheck = 0;
  private cancelSoon: (() => void) | undefined;
  private cancelDeadline: (() => void) | undefined;
  /** Batches handed to `onClose` whose work has not settled yet. */
  private inProgress = 0;
  /** The quiet-turn or delay rule fired while work was in progress: close when it settles. */
  private due = false;
  /** Items announced by `reserve()` that have neither been added nor released yet. */
  private reserved = 0;

  constructor(
    readonly options: BatchOptions,
    private readonly onClose: (batch: T[]) => Promise<unknown>,
    private readonly scheduler: BatchScheduler = EVENT_LOOP_SCHEDULER,
    private readonly rules: { quietTurn?: boolean } = {},
  ) {}

  /**
   * An item is on its way: until it is added (`add(item, true)`) or the reservation released,
   * the quiet-turn and delay rules wait for it (the size rule does not).
   */
  reserve(): void {
    this.reserved++;
  }

  /** The reserved item will not come (its preparation failed). */
  release(): void {
    this.reserved--;
    this.closeIfDue();
  }

  add(item: T, reserved = false): void {
    if (reserved) this.reserved--;
    this.open.push(item);
    if (this.open.length >= this.options.maxLeaves) {
      this.close();
    } else if (this.open.length === 1) {
      this.seenAtCheck = 1;
      // Without a delay the quiet-turn rule always applies: something must close the batch.
      if (this.rules.quietTurn !== false || this.options.maxDelayMs === 0) this.cancelSoon = this.scheduler.soon(this.onTurn);
      if (this.options.maxDelayMs > 0) this.cancelDeadline = this.scheduler.after(this.options.maxDelayMs, this.onDeadline);
    } else {
      this.closeIfDue();
    }
  }

  /** Closes what is open now (for example before shutdown). */
  flush(): void {
    if (this.open.length > 0) this.close();
  }

  private readonly onTurn = (): void => {
    this.cancelSoon = undefined;
    if (this.open.length > this.seenAtCheck) {
      // Items joined during this turn: give the queue behind them one more turn.
      this.seenAtCheck = this.open.length;
      this.cancelSoon = this.scheduler.soon(this.onTurn);
    } else {
      this.closeWhenFree();
    }
  };

  private readonly onDeadline = (): void => {
    this.cancelDeadline = undefined;
    this.closeWhenFree();
  };

  private closeWhenFree(): void {
    if (this.inProgress > 0 || this.reserved > 0) {
      this.due = true;
      return;
    }
    this.close();
  }

  /** A batch whose time came while work or reserved items were pending closes once neither is. */
  private closeIfDue(): void {
    if (this.due && this.inProgress === 0 && this.reserved === 0 && this.open.length > 0) this.close();
  }

  private close(): void {
    this.cancelSoon?.();
    this.cancelDeadline?.();
    this.cancelSoon = undefined;
    this.cancelDeadline = undefined;
    this.due = false;
    const batch = this.open;
    this.open = [];
    if (batch.length === 0) return;
    this.inProgress++;
    const settled = (): void => {
      this.inProgress--;
      // A batch whose time came meanwhile closes now (or once its reserved items are in).
      this.closeIfDue();
    };
    this.onClose(batch).then(settled, settled);
  }
}

/** A place announced in a sender's next batch (`BatchSigner.reserve`); used once or released once. */
export class BatchReservation {
  private held = true;

  constructor(private readonly window: BatchWindow<Waiting>) {}

  /** True (once) when this reservation is for `window` and still held: the item then fills it. */
  takeFor(window: BatchWindow<Waiting>): boolean {
    if (!this.held || window !== this.window) return false;
    this.held = false;
    return true;
  }

  /** Gives the place up; nothing once used or released. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.window.release();
  }
}

interface Waiting {
  digest: Uint8Array;
  resolve: (auth: EnvelopeAuth) => void;
  reject: (error: unknown) => void;
}

/**
 * What a sender's closed batches covered, counted the same way for batch signing (§4.7) and
 * compact-mode manifests (§4.8); each adds its own count of batches under the name of what it
 * produces per batch (signatures, manifests), which is what ThroughputStats readers see.
 */
export interface BatchCoverage {
  /** Envelopes the batches covered. */
  envelopes: number;
  /** Largest batch so far. */
  largest: number;
}

/** Adds one closed batch of `size` envelopes. */
export function coverBatch(coverage: BatchCoverage, size: number): void {
  coverage.envelopes += size;
  if (size > coverage.largest) coverage.largest = size;
}

export interface BatchSignerStats extends BatchCoverage {
  /** Signatures made (one per batch, batches of one included). */
  signatures: number;
}

export class BatchSigner {
  private readonly window: BatchWindow<Waiting>;
  private readonly counters: BatchSignerStats = { signatures: 0, envelopes: 0, largest: 0 };

  constructor(
    private readonly senderId: string,
    private readonly sign: (digest: Uint8Array) => Promise<Uint8Array>,
    readonly options: BatchOptions,
    scheduler: BatchScheduler = EVENT_LOOP_SCHEDULER,
  ) {
    this.window = new BatchWindow(options, (batch) => this.signBatch(batch), scheduler);
  }

  /**
   * Announces an envelope still being prepared, so the batch open when it is ready is the one it
   * was sent with. Hand the reservation to `authenticate`, or `release()` it if no envelope comes.
   */
  reserve(): BatchReservation {
    this.window.reserve();
    return new BatchReservation(this.window);
  }

  /** The trailer for one envelope's message digest, once its batch is signed. */
  authenticate(messageDigest: Uint8Array, reservation?: BatchReservation): Promise<EnvelopeAuth> {
    // A reservation made with another signer (batching was reconfigured meanwhile) is given back there.
    const reserved = reservation?.takeFor(this.window) === true;
    if (!reserved) reservation?.release();
    return new Promise((resolve, reject) => this.window.add({ digest: messageDigest, resolve, reject }, reserved));
  }

  /** Signs what is waiting now (for example before shutdown). */
  flush(): void {
    this.window.flush();
  }

  get stats(): Readonly<BatchSignerStats> {
    return { ...this.counters };
  }

  private async signBatch(batch: Waiting[]): Promise<void> {
    try {
      if (batch.length === 1) {
        const signature = await this.sign(batch[0].digest);
        this.count(1);
        batch[0].resolve({ kind: 'signature', signature });
        return;
      }
      const tree = buildBatchTree(batch.map((w) => w.digest));
      const signature = await this.sign(batchRootDigest(this.senderId, tree.root, batch.length));
      this.count(batch.length);
      batch.forEach((w, i) => w.resolve({ kind: 'batch', leafIndex: i, leafCount: batch.length, path: tree.paths[i], signature }));
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }

  private count(n: number): void {
    this.counters.signatures++;
    coverBatch(this.counters, n);
  }
}

/**
 * Batch roots whose signature verified, per signing key (receiver side). An entry is found by
 * the root digest and holds the key id and the signature that verified: a hit needs the same
 * key, the same root over the same sender id and leaf count, and byte for byte the very
 * signature that verified, so the verdict on an envelope never depends on what was cached
 * before. (Comparing the stored signature instead of hashing it keeps the per-envelope cost to a
 * map lookup and a memcmp.) Only a verified signature enters the cache; concurrent checks of
 * one root with one signature share a single verification.
 */
interface RootEntry {
  keyId: Uint8Array;
  signature: Uint8Array;
}

function sameSigner(e: RootEntry, keyId: Uint8Array, signature: Uint8Array): boolean {
  return publicBytesEqual(e.keyId, keyId) && publicBytesEqual(e.signature, signature);
}

export interface KnownTree extends RootEntry {
  senderId: string;
  rootDigest: Uint8Array;
  nodes: Map<NodeRange, Uint8Array>;
  /** The verdict on the root (shared with the one check of this root and signature). */
  verdict: Promise<Result<true>>;
}

export class VerifiedRoots {
  private readonly entries = new Map<string, RootEntry>();
  /** Nodes of recently verified trees, by signature (see climbBatchPath). */
  private readonly trees = new Map<string, KnownTree>();
  private readonly running = new Map<string, RootEntry & { result: Promise<Result<true>> }>();
  private counters = { hits: 0, verifications: 0 };

  constructor(readonly capacity: number = DEFAULT_VERIFIED_ROOTS) {
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > 1_000_000) throw new Error('verified roots capacity must be 0..1000000');
  }

  /** `verify` runs only when this (key, root, signature) is neither cached nor being checked. */
  async check(keyId: Uint8Array, rootDigest: Uint8Array, signature: Uint8Array, verify: () => Promise<Result<true>>): Promise<Result<true>> {
    const key = Buffer.from(rootDigest.buffer, rootDigest.byteOffset, rootDigest.length).toString('latin1');
    const cached = this.entries.get(key);
    if (cached && sameSigner(cached, keyId, signature)) {
      // Least recently used goes first: move to the end.
      this.entries.delete(key);
      this.entries.set(key, cached);
      this.counters.hits++;
      return ok(true);
    }
    const running = this.running.get(key);
    if (running && sameSigner(running, keyId, signature)) {
      this.counters.hits++;
      return running.result;
    }
    this.counters.verifications++;
    const entry: RootEntry = { keyId: Uint8Array.from(keyId), signature: Uint8Array.from(signature) };
    const result = verify()
      .then((r) => {
        if (r.ok) this.remember(key, entry);
        return r;
      })
      .finally(() => {
        if (this.running.get(key)?.result === result) this.running.delete(key);
      });
    // A second signature over the same root (a forgery, say) is checked on its own, never shared.
    if (!running) this.running.set(key, { ...entry, result });
    return result;
  }

  /**
   * The tree of this batch (this key, sender, signature and leaf count) that a climb may
   * shorten against: its nodes and the verdict on its root — settled when the root verified,
   * still running while its one check runs. Undefined when none (or the cache is off).
   */
  knownTree(keyId: Uint8Array, senderId: string, signature: Uint8Array, leafCount: number): KnownTree | undefined {
    const tree = this.trees.get(VerifiedRoots.treeKey(signature, leafCount));
    return tree && tree.senderId === senderId && sameSigner(tree, keyId, signature) ? tree : undefined;
  }

  /**
   * Records a full climb: its nodes join the tree of its batch only when they lead to that
   * tree's root, so every node of a tree is one the tree's verdict covers. The first climb of a
   * batch makes the tree; a tree whose root fails verification is forgotten.
   */
  track(
    keyId: Uint8Array, senderId: string, signature: Uint8Array, leafCount: number, rootDigest: Uint8Array,
    nodes: ReadonlyArray<[NodeRange, Uint8Array]>, verdict: Promise<Result<true>>,
  ): void {
    if (this.capacity === 0) return;
    const key = VerifiedRoots.treeKey(signature, leafCount);
    let tree = this.trees.get(key);
    if (tree && !(tree.senderId === senderId && sameSigner(tree, keyId, signature) && publicBytesEqual(tree.rootDigest, rootDigest))) return;
    if (!tree) {
      const made: KnownTree = { keyId: Uint8Array.from(keyId), signature: Uint8Array.from(signature), senderId, rootDigest: Uint8Array.from(rootDigest), nodes: new Map(), verdict };
      tree = made;
      this.trees.set(key, made);
      if (this.trees.size > Math.min(this.capacity, KNOWN_TREES)) {
        const oldest = this.trees.keys().next();
        if (!oldest.done) this.trees.delete(oldest.value);
      }
      void verdict.then((r) => {
        if (!r.ok && this.trees.get(key) === made) this.trees.delete(key);
      }, () => {
        if (this.trees.get(key) === made) this.trees.delete(key);
      });
    }
    this.addNodes(tree, nodes);
  }

  /** A climb that met `tree` (from knownTree): a hit on its root, and its nodes join the tree. */
  extend(tree: KnownTree, nodes: ReadonlyArray<[NodeRange, Uint8Array]>): void {
    this.counters.hits++;
    this.addNodes(tree, nodes);
  }

  private addNodes(tree: KnownTree, nodes: ReadonlyArray<[NodeRange, Uint8Array]>): void {
    for (const [range, hash] of nodes) if (!tree.nodes.has(range)) tree.nodes.set(range, Uint8Array.from(hash));
  }

  /** Signatures start with their randomness (Falcon salt, ML-DSA commitment): a short, distinct key; hits compare all bytes. */
  private static treeKey(signature: Uint8Array, leafCount: number): string {
    return `${leafCount}:${Buffer.from(signature.buffer, signature.byteOffset, Math.min(48, signature.length)).toString('latin1')}`;
  }

  private remember(key: string, entry: RootEntry): void {
    if (this.capacity === 0) return;
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get stats(): { hits: number; verifications: number; size: number } {
    return { ...this.counters, size: this.entries.size };
  }

  clear(): void {
    this.entries.clear();
    this.trees.clear();
  }
}

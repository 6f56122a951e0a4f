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
import { sha256 } from '../crypto/symmetric';
import { ok, type Result } from '../result';
import { MAX_BATCH_LEAVES, type EnvelopeAuth } from '../wire/auth';
import { batchRootDigest, buildBatchTree } from './batch-tree';

export interface BatchOptions {
  /** Most envelopes under one signature, 1..255; 1 turns batching off (auth kind 0x01 only). */
  readonly maxLeaves: number;
  /** Longest a batch stays open after its first envelope (ms), 0..1000. */
  readonly maxDelayMs: number;
}

export const DEFAULT_BATCH_OPTIONS: BatchOptions = Object.freeze({ maxLeaves: 16, maxDelayMs: 2 });

/** Verified batch roots a receiver remembers (least recently used dropped first). */
export const DEFAULT_VERIFIED_ROOTS = 1024;

/** Merges overrides into the defaults; `false` (or maxLeaves 1) is "no batching". Throws on nonsense. */
export function resolveBatchOptions(options: Partial<BatchOptions> | false | undefined): BatchOptions | undefined {
  if (options === false) return undefined;
  const out = { ...DEFAULT_BATCH_OPTIONS, ...(options ?? {}) };
  if (!Number.isInteger(out.maxLeaves) || out.maxLeaves < 1 || out.maxLeaves > MAX_BATCH_LEAVES) {
    throw new Error(`batch maxLeaves must be an integer from 1 to ${MAX_BATCH_LEAVES}`);
  }
  if (typeof out.maxDelayMs !== 'number' || !(out.maxDelayMs >= 0 && out.maxDelayMs <= 1000)) {
    throw new Error('batch maxDelayMs must be from 0 to 1000');
  }
  return out.maxLeaves === 1 ? undefined : Object.freeze(out);
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
 * items, when one turn of the event loop passed without another item joining, or `maxDelayMs`
 * after its first item, whichever comes first. `onClose` receives each closed batch (never empty).
 */
export class BatchWindow<T> {
  private open: T[] = [];
  private seenAtCheck = 0;
  private cancelSoon: (() => void) | undefined;
  private cancelDeadline: (() => void) | undefined;

  constructor(
    readonly options: BatchOptions,
    private readonly onClose: (batch: T[]) => void,
    private readonly scheduler: BatchScheduler = EVENT_LOOP_SCHEDULER,
  ) {}

  add(item: T): void {
    this.open.push(item);
    if (this.open.length >= this.options.maxLeaves) {
      this.close();
    } else if (this.open.length === 1) {
      this.seenAtCheck = 1;
      this.cancelSoon = this.scheduler.soon(this.onTurn);
      if (this.options.maxDelayMs > 0) this.cancelDeadline = this.scheduler.after(this.options.maxDelayMs, () => this.close());
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
      this.close();
    }
  };

  private close(): void {
    this.cancelSoon?.();
    this.cancelDeadline?.();
    this.cancelSoon = undefined;
    this.cancelDeadline = undefined;
    const batch = this.open;
    this.open = [];
    if (batch.length > 0) this.onClose(batch);
  }
}

interface Waiting {
  digest: Uint8Array;
  resolve: (auth: EnvelopeAuth) => void;
  reject: (error: unknown) => void;
}

export interface BatchSignerStats {
  /** Signatures made (one per batch, batches of one included). */
  signatures: number;
  /** Envelopes authenticated. */
  envelopes: number;
  /** Largest batch so far. */
  largest: number;
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
    this.window = new BatchWindow(options, (batch) => void this.signBatch(batch), scheduler);
  }

  /** The trailer for one envelope's message digest, once its batch is signed. */
  authenticate(messageDigest: Uint8Array): Promise<EnvelopeAuth> {
    return new Promise((resolve, reject) => this.window.add({ digest: messageDigest, resolve, reject }));
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
    this.counters.envelopes += n;
    if (n > this.counters.largest) this.counters.largest = n;
  }
}

/**
 * Batch roots whose signature verified, per signing key (receiver side). The entry is the
 * SHA-256 of (key id ‖ root digest ‖ signature): a hit needs the same key, the same root over the
 * same sender id and leaf count, and the very signature that verified, so the verdict on an
 * envelope never depends on what was cached before. Only a verified signature enters the cache;
 * concurrent checks of one root share a single verification.
 */
export class VerifiedRoots {
  private readonly entries = new Map<string, true>();
  private readonly running = new Map<string, Promise<Result<true>>>();
  private counters = { hits: 0, verifications: 0 };

  constructor(readonly capacity: number = DEFAULT_VERIFIED_ROOTS) {
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > 1_000_000) throw new Error('verified roots capacity must be 0..1000000');
  }

  /** `verify` runs only when this (key, root, signature) is neither cached nor being checked. */
  async check(keyId: Uint8Array, rootDigest: Uint8Array, signature: Uint8Array, verify: () => Promise<Result<true>>): Promise<Result<true>> {
    const key = Buffer.from(sha256(keyId, rootDigest, signature)).toString('base64');
    if (this.entries.has(key)) {
      // Least recently used goes first: move to the end.
      this.entries.delete(key);
      this.entries.set(key, true);
      this.counters.hits++;
      return ok(true);
    }
    const running = this.running.get(key);
    if (running) {
      this.counters.hits++;
      return running;
    }
    this.counters.verifications++;
    const result = verify()
      .then((r) => {
        if (r.ok) this.remember(key);
        return r;
      })
      .finally(() => this.running.delete(key));
    this.running.set(key, result);
    return result;
  }

  private remember(key: string): void {
    if (this.capacity === 0) return;
    this.entries.set(key, true);
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
  }
}

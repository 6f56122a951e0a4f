/**
 * Off-main-thread post-quantum crypto: a pool of worker threads (one per core by default) that
 * signs, verifies, encapsulates and decapsulates, so a JavaScript signature (5–16 ms with @noble)
 * or a burst of ML-KEM encapsulations (about 0.5 ms each) does not block Node-RED's event loop.
 * DESIGN §7; docs/PROTOCOL.md §3.
 *
 * `offloadSign` / `offloadVerify` / `offloadEncapsulate` / `offloadDecapsulate` are what the
 * protocol core calls: they
 * use the shared pool when the operation would otherwise run in JavaScript on the main thread
 * (the noble backend, or Falcon-512 under the native backend) and compute inline otherwise — the
 * native node:crypto operations take a fraction of a millisecond, less than a round trip to a
 * worker. A test backend installed with `useCryptoBackend` is always called inline, so counting
 * backends see every operation. If the pool cannot run (worker script missing, workers dying
 * at start), the operation runs inline: results never depend on where they were computed.
 *
 * Workers are unref'd while idle, so an idle pool never keeps the process alive; a worker that
 * dies is replaced and its unfinished jobs are given to another worker (at most twice).
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { KEM_ALGORITHMS, type KemAlgorithm, type SigAlgorithm } from './algorithms';
import { cryptoBackend, nobleBackend } from './backend';
import { nativeBackend } from './native';

export type WorkerOp = 'sign' | 'verify' | 'encapsulate' | 'decapsulate';

export interface WorkerRequest {
  id: number;
  op: WorkerOp;
  backend: 'noble' | 'native';
  alg: string;
  a: Uint8Array;
  b: Uint8Array;
  c?: Uint8Array;
}

export type WorkerResponse =
  | { id: number; ok: true; bytes?: Uint8Array; valid?: boolean }
  | { id: number; ok: false; error: string };

interface Job {
  request: WorkerRequest;
  attempts: number;
  resolve: (r: WorkerResponse & { ok: true }) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  answered: boolean;
  referenced: boolean;
}

export interface PoolStats {
  size: number;
  dispatched: number;
  completed: number;
  crashes: number;
  inFlight: number;
}

export interface PoolOptions {
  /** Worker threads; default one per core (os.availableParallelism()). */
  size?: number;
  /** Compiled worker script; default crypto-worker.js next to this file. */
  script?: string;
}

/** Consecutive workers that die before answering anything before the pool gives up. */
const MAX_START_FAILURES = 3;
const MAX_ATTEMPTS = 3;

export class CryptoWorkerPool {
  readonly size: number;
  private readonly script: string;
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;
  private startFailures = 0;
  private broken: Error | undefined;
  private counters = { dispatched: 0, completed: 0, crashes: 0 };

  constructor(options: PoolOptions = {}) {
    const size = options.size ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1 || size > 256) throw new Error('pool size must be an integer from 1 to 256');
    this.size = size;
    this.script = options.script ?? join(__dirname, 'crypto-worker.js');
  }

  sign(alg: SigAlgorithm, message: Uint8Array, secretKey: Uint8Array, backend: WorkerRequest['backend'] = 'noble'): Promise<Uint8Array> {
    return this.run({ op: 'sign', backend, alg, a: Uint8Array.from(message), b: Uint8Array.from(secretKey) }).then((r) => r.bytes ?? new Uint8Array(0));
  }

  verify(alg: SigAlgorithm, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, backend: WorkerRequest['backend'] = 'noble'): Promise<boolean> {
    return this.run({ op: 'verify', backend, alg, a: Uint8Array.from(signature), b: Uint8Array.from(message), c: Uint8Array.from(publicKey) })
      .then((r) => r.valid === true);
  }

  /** The worker answers capsule ‖ shared secret; the capsule length is the algorithm's. */
  encapsulate(alg: KemAlgorithm, publicKey: Uint8Array, backend: WorkerRequest['backend'] = 'noble'): Promise<{ capsule: Uint8Array; sharedSecret: Uint8Array }> {
    return this.run({ op: 'encapsulate', backend, alg, a: Uint8Array.from(publicKey), b: new Uint8Array(0) }).then((r) => {
      const bytes = r.bytes ?? new Uint8Array(0);
      const split = KEM_ALGORITHMS[alg].cipherText;
      if (bytes.length <= split) throw new Error('crypto worker: short encapsulation');
      const out = { capsule: bytes.slice(0, split), sharedSecret: bytes.slice(split) };
      bytes.fill(0); // the shared secret lives on only in the copy handed back
      return out;
    });
  }

  decapsulate(alg: KemAlgorithm, capsule: Uint8Array, secretKey: Uint8Array, backend: WorkerRequest['backend'] = 'noble'): Promise<Uint8Array> {
    return this.run({ op: 'decapsulate', backend, alg, a: Uint8Array.from(capsule), b: Uint8Array.from(secretKey) }).then((r) => r.bytes ?? new Uint8Array(0));
  }

  get stats(): PoolStats {
    return { size: this.size, ...this.counters, inFlight: this.slots.reduce((n, s) => n + s.jobs.size, 0) };
  }

  /** Worker thread ids, for tests that need to kill one. */
  get threads(): Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Stops every worker; unfinished jobs are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const s of slots) {
      for (const job of s.jobs.values()) job.reject(new Error('crypto pool closed'));
      s.jobs.clear();
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private run(partial: Omit<WorkerRequest, 'id'>): Promise<WorkerResponse & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('crypto pool closed'));
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      const job: Job = { request: { ...partial, id: this.nextId++ }, attempts: 0, resolve, reject };
      this.dispatch(job);
    });
  }

  private dispatch(job: Job): void {
    if (this.closed || this.broken) {
      job.reject(this.broken ?? new Error('crypto pool closed'));
      return;
    }
    job.attempts++;
    while (this.slots.length < this.size) this.slots.push(this.spawn());
    // Least loaded worker first.
    let slot = this.slots[0];
    for (const s of this.slots) if (s.jobs.size < slot.jobs.size) slot = s;
    slot.jobs.set(job.request.id, job);
    this.reference(slot);
    this.counters.dispatched++;
    slot.worker.postMessage(job.request);
  }

  private spawn(): Slot {
    const worker = new Worker(this.script);
    const slot: Slot = { worker, jobs: new Map(), answered: false, referenced: true };
    worker.on('message', (m: WorkerResponse) => {
      slot.answered = true;
      this.startFailures = 0;
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      this.counters.completed++;
      if (m.ok) job.resolve(m);
      else job.reject(new Error(`crypto worker: ${m.error}`));
      this.reference(slot);
    });
    // 'error' is followed by 'exit'; the exit handler does the recovery.
    worker.on('error', () => undefined);
    worker.on('exit', () => this.lost(slot));
    worker.unref();
    slot.referenced = false;
    return slot;
  }

  /** A worker ended (crash, terminate): replace it and hand its jobs to the others. */
  private lost(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return; // closed, or already handled
    this.slots.splice(i, 1);
    this.counters.crashes++;
    if (!slot.answered && ++this.startFailures >= MAX_START_FAILURES) {
      this.broken = new Error('crypto workers do not start');
    }
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    for (const job of jobs) {
      if (job.attempts >= MAX_ATTEMPTS) job.reject(new Error('crypto worker crashed'));
      else this.dispatch(job);
    }
  }

  /** A busy worker keeps the process alive (its caller awaits it); an idle one does not. */
  private reference(slot: Slot): void {
    const busy = slot.jobs.size > 0;
    if (busy && !slot.referenced) slot.worker.ref();
    if (!busy && slot.referenced) slot.worker.unref();
    slot.referenced = busy;
  }
}

// --- the shared pool and the offload policy ----------------------------------------------------

export type OffloadMode = 'auto' | 'always' | 'never';

let mode: OffloadMode = process.env.PQC_IIOT_CRYPTO_WORKERS === '0' ? 'never' : 'auto';
let shared: CryptoWorkerPool | undefined;

/**
 * 'auto' (default): offload what would run in JavaScript (noble; Falcon-512 under native).
 * 'always': offload every operation of the noble or native backend. 'never': compute inline.
 * The environment variable PQC_IIOT_CRYPTO_WORKERS=0 starts in 'never'.
 */
export function setCryptoOffload(next: OffloadMode): void {
  if (next !== 'auto' && next !== 'always' && next !== 'never') throw new Error(`unknown offload mode ${String(next)}`);
  mode = next;
}

export function cryptoOffload(): OffloadMode {
  return mode;
}

/** The process-wide pool, created on first use. */
export function sharedCryptoPool(): CryptoWorkerPool {
  shared ??= new CryptoWorkerPool();
  return shared;
}

/** Stops the shared pool (a new one starts on next use). */
export async function closeSharedCryptoPool(): Promise<void> {
  const p = shared;
  shared = undefined;
  await p?.close();
}

/** Which worker backend would compute `alg` for the active backend, or undefined to stay inline. */
function offloadBackend(alg: SigAlgorithm | KemAlgorithm): WorkerRequest['backend'] | undefined {
  if (mode === 'never') return undefined;
  const active = cryptoBackend();
  if (active === nobleBackend) return 'noble';
  if (active === nativeBackend && nativeBackend !== undefined) {
    if (mode === 'always') return 'native';
    return alg === 'Falcon-512' ? 'noble' : undefined;
  }
  return undefined;
}

/**
 * `onPool` on the shared pool when `alg` would run in JavaScript here, else (or when the pool is
 * unusable: compute here rather than fail the message) `inline`.
 */
async function offloaded<T>(
  alg: SigAlgorithm | KemAlgorithm, onPool: (pool: CryptoWorkerPool, backend: WorkerRequest['backend']) => Promise<T>, inline: () => T,
): Promise<T> {
  const where = offloadBackend(alg);
  if (where) {
    try {
      return await onPool(sharedCryptoPool(), where);
    } catch {
      // fall through
    }
  }
  return inline();
}

export function offloadSign(alg: SigAlgorithm, message: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array> {
  return offloaded(alg, (pool, where) => pool.sign(alg, message, secretKey, where), () => cryptoBackend().sign(alg, message, secretKey));
}

/** Never throws on a peer's bytes: a malformed signature is `false`. */
export function offloadVerify(alg: SigAlgorithm, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  return offloaded(
    alg, (pool, where) => pool.verify(alg, signature, message, publicKey, where), () => cryptoBackend().verify(alg, signature, message, publicKey),
  );
}

/** `random` (fixed encapsulation randomness, test vectors only) is always computed inline. */
export async function offloadEncapsulate(alg: KemAlgorithm, publicKey: Uint8Array, random?: Uint8Array): Promise<{ capsule: Uint8Array; sharedSecret: Uint8Array }> {
  if (random) return cryptoBackend().encapsulate(alg, publicKey, random);
  return offloaded(alg, (pool, where) => pool.encapsulate(alg, publicKey, where), () => cryptoBackend().encapsulate(alg, publicKey));
}

export function offloadDecapsulate(alg: KemAlgorithm, capsule: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array> {
  return offloaded(alg, (pool, where) => pool.decapsulate(alg, capsule, secretKey, where), () => cryptoBackend().decapsulate(alg, capsule, secretKey));
}

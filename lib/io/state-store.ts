/**
 * Durable session state (docs/PROTOCOL.md §5.1): the adapter that keeps a SecureSession's trust
 * and counter snapshots in one folder per config node, so that after `kill -9` at any moment
 * (a) no message released before the crash is accepted again, (b) no send sequence number is
 * reused, and (c) an older copy of a state file is refused (`state-rollback`) instead of trusted.
 *
 * Files (all written by one StateStore; at most one per folder per process):
 *
 *   state-trust.json       part "trust", sealed under label "state-trust"
 *   state-counters.json    part "counters", sealed under label "state-counters"
 *   state-generation.json  generation marker, sealed under label "state-generation"
 *                          (software provider only; a hardware provider keeps monotonic counters)
 *
 * Each file is a small JSON wrapper naming the part and the key that sealed it (public, for
 * error messages) around `provider.seal(json)`: the sealed JSON repeats those fields and carries
 * the part's generation, so the file is confidential and any edit fails to unseal.
 *
 * Writing: snapshot (synchronously, so it matches `stateVersion`), seal, write a temp file,
 * fsync, rename over the old file, fsync the folder — the batch is durable and released here —
 * then raise the generation marker (same way) or the provider's counter, before the next write
 * starts. A crash between the two leaves a file one generation ahead of the marker, which is
 * accepted; a file behind the marker is a rolled-back copy.
 *
 * Group commit: `flush()` resolves once everything the session changed before the call is on
 * disk. Calls made while a write runs are all satisfied by the next single write, so the cost
 * is one write per batch of messages, not one per message; it resolves at once when nothing
 * changed. A failed write rejects its callers (the endpoint then withholds their messages) and
 * the next flush tries again.
 *
 * Limits of rollback detection with the software provider: the marker detects an older copy of
 * a state file restored on its own (or a deleted state file). Restoring all three files from the
 * same older copy (a full backup or VM snapshot), or deleting the whole folder, is not
 * detectable without storage the attacker cannot roll back: that is what the hardware
 * provider's monotonic counters are for.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SecurityProvider } from '../session/provider';
import type { CounterSnapshot, RestoreReport, SecureSession, TrustSnapshot } from '../session/session';
import { toHex } from '../wire/common';

export const STATE_FILE_FORMAT = 'pqc-iiot-state-file/1';

export type StatePart = 'trust' | 'counters';
const PARTS: readonly StatePart[] = ['trust', 'counters'];

/** File names inside the state folder; deleting them (and only them) resets the state. */
export const STATE_FILES = Object.freeze({
  trust: 'state-trust.json',
  counters: 'state-counters.json',
  marker: 'state-generation.json',
});

/** Labels given to provider.seal: one per file, so one file cannot be passed off as another. */
export const STATE_LABELS = Object.freeze({
  trust: 'state-trust',
  counters: 'state-counters',
  marker: 'state-generation',
});

/** Files larger than this are refused before reading (a counters file with 10^5 senders is ~10 MB). */
export const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;

export type StoreProvider = Pick<SecurityProvider, 'deviceId' | 'keyEpoch' | 'keyId' | 'seal' | 'unseal' | 'counters'>;

/** What the store reads from the session it saves. */
export type StateSource = Pick<SecureSession, 'stateVersion' | 'snapshotTrust' | 'snapshotCounters'>;

export interface Generations {
  trust: number;
  counters: number;
}

export interface StateStoreOptions {
  /** The folder (created with mode 0700 if missing). */
  readonly dir: string;
  readonly provider: StoreProvider;
  /** fsync files and the folder (default true; false only for benchmarks). */
  readonly fsync?: boolean;
  /** Distinguishes hardware counter names when one identity serves several config nodes. */
  readonly counterNamespace?: string;
  /** ms since the epoch, written into files for diagnostics only. */
  readonly now?: () => number;
}

export type StateProblem = 'state-unreadable' | 'state-rollback';

export type StateLoad =
  | {
      readonly ok: true;
      /** True when the folder held no state (first start, or the state files were deleted). */
      readonly fresh: boolean;
      readonly trust: TrustSnapshot | undefined;
      readonly counters: CounterSnapshot | undefined;
      /** Generations of the files read (0 = never written). */
      readonly generations: Generations;
      /** Where the expected generations came from. */
      readonly source: 'marker' | 'hardware';
      /**
       * Set when the folder held the state of this device's previous key epoch (the identity was
       * rotated): those files were set aside as `*.retired-epoch-N` and the new key starts fresh.
       */
      readonly retiredEpoch?: number;
    }
  | {
      readonly ok: false;
      readonly problem: StateProblem;
      /** One line for the log; public data only. */
      readonly message: string;
      readonly file: string;
      /** For state-rollback: the generation found and the one expected. */
      readonly stored?: number;
      readonly expected?: number;
      readonly part?: StatePart;
    };

/** Folders opened by a store in this process: two writers on one folder would undo each other. */
const openDirs = new Set<string>();

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody waits for must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function sameVersion(a: Generations, b: Generations): boolean {
  return a.trust === b.trust && a.counters === b.counters;
}

export class StateStore {
  readonly dir: string;
  private readonly provider: StoreProvider;
  private readonly fsync: boolean;
  private readonly now: () => number;
  private readonly counterNames: Readonly<Record<StatePart, string>>;
  private readonly keyIdHex: string;
  private source: StateSource | undefined;
  /** stateVersion of the session at the last successful write (or at attach). */
  private saved: Generations = { trust: 0, counters: 0 };
  /** Generation of each part as last written (or read). */
  private generations: Generations = { trust: 0, counters: 0 };
  /** Generations the marker / hardware counters hold. */
  private committed: Generations = { trust: 0, counters: 0 };
  private loaded = false;
  private inFlight: { version: Generations; done: Deferred } | undefined;
  private queued: Deferred | undefined;
  private closed = false;
  private writeCount = 0;
  /** The marker / counter update running, if any; one at a time, coalesced. */
  private markerRunning: Promise<void> | undefined;
  private markerAgain = false;
  /** Set when raising the marker failed: the next write retries it first and fails with it. */
  private markerError: Error | undefined;
  /** The folder, open for fsync (one handle for the store's life: one step per fsync). */
  private readonly dirHandle: fs.promises.FileHandle;

  private constructor(opts: StateStoreOptions, dir: string, dirHandle: fs.promises.FileHandle) {
    this.dir = dir;
    this.dirHandle = dirHandle;
    this.provider = opts.provider;
    this.fsync = opts.fsync !== false;
    this.now = opts.now ?? Date.now;
    this.keyIdHex = toHex(opts.provider.keyId);
    // Counter names: 1..64 of [A-Za-z0-9_.-] (PKCS#11 provider); bound to the key and the folder.
    const ns = createHash('sha256').update(opts.counterNamespace ?? '').digest('hex').slice(0, 16);
    const name = (part: StatePart): string => `state-${part}.${this.keyIdHex.slice(0, 16)}.${ns}`;
    this.counterNames = { trust: name('trust'), counters: name('counters') };
  }

  /** Creates the folder if needed and claims it for this process. */
  static async open(opts: StateStoreOptions): Promise<StateStore> {
    const dir = path.resolve(opts.dir);
    if (openDirs.has(dir)) throw new Error(`state folder ${dir} is already in use by another config node in this process`);
    openDirs.add(dir);
    try {
      await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
      const stat = await fs.promises.stat(dir);
      if (!stat.isDirectory()) throw new Error(`${dir} is not a folder`);
      // Temp files of a write that a crash interrupted: the renamed files are the truth.
      for (const name of await fs.promises.readdir(dir)) {
        if (/^state-[a-z]+\.json\.tmp$/.test(name)) await fs.promises.rm(path.join(dir, name), { force: true });
      }
      return new StateStore(opts, dir, await fs.promises.open(dir, 'r'));
    } catch (error) {
      openDirs.delete(dir);
      throw error;
    }
  }

  /** "hardware counters" or "software marker": how rollback is detected. */
  get rollbackProtection(): 'hardware counters' | 'software marker' {
    return this.provider.counters ? 'hardware counters' : 'software marker';
  }

  /** Writes made so far (each may cover many flush calls). */
  get writes(): number {
    return this.writeCount;
  }

  /**
   * Reads and checks the stored state: every file must unseal under this identity, and no part
   * may be older than its generation marker (or hardware counter). Nothing is applied here.
   */
  async load(): Promise<StateLoad> {
    if (this.closed) throw new Error('state store is closed');
    const retiredEpoch = await this.retireRotatedState();
    const files: Partial<Record<StatePart, { generation: number; state: unknown }>> = {};
    for (const part of PARTS) {
      const r = await this.readSealed(STATE_FILES[part], STATE_LABELS[part], part);
      if (r === undefined) continue;
      if ('problem' in r) return r;
      const generation = r.body.generation;
      if (!Number.isSafeInteger(generation) || (generation as number) < 1 || r.body.state === null || typeof r.body.state !== 'object') {
        return this.unreadable(STATE_FILES[part], 'holds malformed content');
      }
      files[part] = { generation: generation as number, state: r.body.state };
    }
    const stored: Generations = { trust: files.trust?.generation ?? 0, counters: files.counters?.generation ?? 0 };

    let expected: Generations;
    let source: 'marker' | 'hardware';
    if (this.provider.counters) {
      source = 'hardware';
      expected = { trust: 0, counters: 0 };
      for (const part of PARTS) {
        const value = await this.provider.counters.read(this.counterNames[part]);
        expected[part] = value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
      }
    } else {
      source = 'marker';
      const m = await this.readSealed(STATE_FILES.marker, STATE_LABELS.marker, 'marker');
      if (m !== undefined && 'problem' in m) return m;
      if (m === undefined) {
        if (files.trust || files.counters) {
          return this.rollback(STATE_FILES.marker, 'the generation marker is missing while state files exist (deleted, or files copied in from elsewhere)');
        }
        expected = { trust: 0, counters: 0 };
      } else {
        const g = m.body.generations as Record<string, unknown> | null;
        if (!g || typeof g !== 'object' || !isGeneration(g.trust) || !isGeneration(g.counters)) {
          return this.unreadable(STATE_FILES.marker, 'holds malformed content');
        }
        expected = { trust: g.trust, counters: g.counters };
      }
    }

    for (const part of PARTS) {
      if (stored[part] < expected[part]) {
        const what = stored[part] === 0 ? `is missing` : `is generation ${stored[part]}`;
        return {
          ok: false,
          problem: 'state-rollback',
          file: path.join(this.dir, STATE_FILES[part]),
          part,
          stored: stored[part],
          expected: expected[part],
          message: `state rollback: ${STATE_FILES[part]} ${what}, but the ${source === 'hardware' ? 'hardware counter' : 'generation marker'} ` +
            `says ${expected[part]} (an older copy was put back, or the file was deleted)`,
        };
      }
    }

    this.generations = stored;
    this.committed = expected;
    this.loaded = true;
    // A crash between a state write and the marker leaves the marker behind: catch it up now.
    // On a first start the marker is written before any state file, so that a crash during the
    // first write can never look like a deleted marker.
    const noMarker = source === 'marker' && !files.trust && !files.counters;
    if (noMarker || !sameVersion(stored, expected)) await this.commitGenerations(noMarker);
    return {
      ok: true,
      ...(retiredEpoch !== undefined ? { retiredEpoch } : {}),
      fresh: !files.trust && !files.counters,
      trust: files.trust?.state as TrustSnapshot | undefined,
      counters: files.counters?.state as CounterSnapshot | undefined,
      generations: { ...stored },
      source,
    };
  }

  /**
   * Starts saving `source` (after it was restored): its current state counts as saved, so
   * `flush()` writes only what changes from now on.
   */
  attach(source: StateSource): void {
    if (!this.loaded) throw new Error('state store: load() before attach()');
    this.source = source;
    const v = source.stateVersion;
    this.saved = { trust: v.trust, counters: v.counters };
  }

  /**
   * Resolves once every change the session made before this call is durable. Coalesces: while
   * a write runs, all callers with newer changes share the next single write.
   */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('state store is closed'));
    const source = this.source;
    if (!source) return Promise.reject(new Error('state store: nothing attached yet'));
    const v = source.stateVersion;
    if (!this.inFlight) {
      if (sameVersion(v, this.saved)) return Promise.resolve();
      return this.startWrite();
    }
    // Everything up to the in-flight snapshot is covered by that write.
    if (sameVersion(v, this.inFlight.version)) return this.inFlight.done.promise;
    this.queued ??= deferred();
    return this.queued.promise;
  }

  /** Writes what is left, then refuses further flushes and releases the folder. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.source) await this.flush();
      // A queued batch may still be running after the flush above resolved.
      while (this.inFlight) await this.inFlight.done.promise.catch(() => undefined);
      await this.settleMarker();
    } finally {
      this.closed = true;
      openDirs.delete(this.dir);
      await this.dirHandle.close().catch(() => undefined);
    }
  }

  private startWrite(): Promise<void> {
    const source = this.source!;
    // Snapshot now, synchronously: exactly the state `version` describes.
    const v = source.stateVersion;
    const version = { trust: v.trust, counters: v.counters };
    const parts: Array<[StatePart, unknown]> = [];
    if (version.trust !== this.saved.trust) parts.push(['trust', source.snapshotTrust()]);
    if (version.counters !== this.saved.counters) parts.push(['counters', source.snapshotCounters()]);
    const done = deferred();
    this.inFlight = { version, done };
    this.writeParts(parts).then(
      () => {
        this.saved = version;
        this.writeCount++;
        done.resolve();
      },
      (error: unknown) => done.reject(error instanceof Error ? error : new Error(String(error))),
    ).finally(() => {
      this.inFlight = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next) {
        if (this.closed) next.reject(new Error('state store is closed'));
        else this.startWrite().then(next.resolve, next.reject);
      }
    });
    return done.promise;
  }

  private async writeParts(parts: Array<[StatePart, unknown]>): Promise<void> {
    // A marker update that failed is retried first; if it fails again, so does this write.
    if (this.markerError && !this.markerRunning) await this.settleMarker();
    const written: Partial<Generations> = {};
    const closing: Array<Promise<void>> = [];
    // Both parts at once; all settled before failing, so no temp file is still being written
    // when the next attempt starts.
    const results = await Promise.allSettled(parts.map(async ([part, state]) => {
      const generation = this.generations[part] + 1;
      const bytes = await this.sealFile(part, STATE_LABELS[part], { generation, writtenAt: this.now(), state });
      closing.push((await this.writeAtomic(STATE_FILES[part], bytes)).closed);
      written[part] = generation;
    }));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(closing);
      throw failed.reason;
    }
    if (this.fsync) await this.dirHandle.sync();
    await Promise.all(closing);
    for (const part of PARTS) if (written[part] !== undefined) this.generations[part] = written[part];
    // The batch is released now that its files are durable; the marker follows, off the
    // critical path. It never gets ahead of the files (it takes the generations written so
    // far); a crash before it catches up leaves files ahead of it, which load() accepts.
    this.scheduleMarker();
  }

  /** Starts raising the marker to the current generations, or asks the running update to repeat. */
  private scheduleMarker(): void {
    if (this.markerRunning) {
      this.markerAgain = true;
      return;
    }
    this.markerRunning = (async () => {
      do {
        this.markerAgain = false;
        await this.commitGenerations();
      } while (this.markerAgain);
    })().then(
      () => {
        this.markerError = undefined;
      },
      (error: unknown) => {
        this.markerError = error instanceof Error ? error : new Error(String(error));
      },
    ).finally(() => {
      this.markerRunning = undefined;
    });
  }

  /**
   * Resolves once the marker (or hardware counters) caught up with the files written so far;
   * rejects with the error if raising it failed (the next write retries it). For diagnostics.
   */
  async markerSettled(): Promise<void> {
    while (this.markerRunning) await this.markerRunning;
    if (this.markerError) throw this.markerError;
  }

  /** Waits for the marker to match the files; retries once after a failure and throws if it fails. */
  private async settleMarker(): Promise<void> {
    while (this.markerRunning) await this.markerRunning;
    if (this.markerError || !sameVersion(this.generations, this.committed)) {
      await this.commitGenerations();
      this.markerError = undefined;
    }
  }

  /** Raises the marker (or hardware counters) to the generations now on disk. */
  private async commitGenerations(force = false): Promise<void> {
    const target = { ...this.generations };
    if (!force && sameVersion(target, this.committed)) return;
    if (this.provider.counters) {
      for (const part of PARTS) {
        if (target[part] > this.committed[part]) await this.provider.counters.advance(this.counterNames[part], BigInt(target[part]));
      }
    } else {
      const bytes = await this.sealFile('marker', STATE_LABELS.marker, { generations: target, writtenAt: this.now() });
      const { closed } = await this.writeAtomic(STATE_FILES.marker, bytes);
      if (this.fsync) await this.dirHandle.sync();
      await closed;
    }
    this.committed = target;
  }

  private async sealFile(part: StatePart | 'marker', label: string, body: Record<string, unknown>): Promise<Buffer> {
    const p = this.provider;
    const inner = { format: STATE_FILE_FORMAT, part, deviceId: p.deviceId, keyEpoch: p.keyEpoch, keyId: this.keyIdHex, ...body };
    const sealed = await p.seal(new TextEncoder().encode(JSON.stringify(inner)), label);
    const outer = {
      format: STATE_FILE_FORMAT, part, deviceId: p.deviceId, keyEpoch: p.keyEpoch, keyId: this.keyIdHex,
      sealed: Buffer.from(sealed).toString('base64'),
    };
    return Buffer.from(JSON.stringify(outer) + '\n', 'utf8');
  }

  /**
   * Temp file, write, fsync, rename over `name`: the caller fsyncs the folder. Resolves after
   * the rename with the closing of the temp handle still running (off the critical path).
   */
  private async writeAtomic(name: string, bytes: Uint8Array): Promise<{ closed: Promise<void> }> {
    const file = path.join(this.dir, name);
    const tmp = `${file}.tmp`;
    const handle = await fs.promises.open(tmp, 'w', 0o600);
    try {
      for (let offset = 0; offset < bytes.length;) {
        const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
        if (bytesWritten <= 0) throw new Error('state file write made no progress');
        offset += bytesWritten;
      }
      if (this.fsync) await handle.sync();
      await fs.promises.rename(tmp, file);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return { closed: handle.close() };
  }

  /**
   * After a key rotation the folder holds state sealed by the previous key, which the new key
   * cannot open. It is set aside (renamed, kept for forensics) and the new key starts fresh when
   * every state file names this device and an older key epoch. That loses nothing a replay could
   * use: traffic sealed for the old key, direct or topic-mode, cannot be opened by the new key,
   * and new sequence numbers start above the old ones (time-based start, docs/PROTOCOL.md §5).
   * Anything else that does not match (another device, same epoch with another key, a newer
   * epoch) is left in place for load() to refuse as unreadable.
   */
  private async retireRotatedState(): Promise<number | undefined> {
    const p = this.provider;
    const present: Array<{ name: string; epoch: number }> = [];
    for (const name of Object.values(STATE_FILES)) {
      let outer: Record<string, unknown>;
      try {
        outer = JSON.parse(await fs.promises.readFile(path.join(this.dir, name), 'utf8')) as Record<string, unknown>;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        return undefined;
      }
      const epoch = outer?.keyEpoch;
      if (outer?.deviceId !== p.deviceId || outer.keyId === this.keyIdHex || !Number.isSafeInteger(epoch) || (epoch as number) >= p.keyEpoch) {
        return undefined;
      }
      present.push({ name, epoch: epoch as number });
    }
    if (present.length === 0 || new Set(present.map((f) => f.epoch)).size !== 1) return undefined;
    const epoch = present[0].epoch;
    for (const f of present) {
      await fs.promises.rename(path.join(this.dir, f.name), path.join(this.dir, `${f.name}.retired-epoch-${epoch}`));
    }
    if (this.fsync) await this.dirHandle.sync();
    return epoch;
  }

  /** undefined when the file does not exist; a problem when it cannot be trusted. */
  private async readSealed(
    name: string, label: string, part: StatePart | 'marker',
  ): Promise<{ body: Record<string, unknown> } | Extract<StateLoad, { ok: false }> | undefined> {
    const file = path.join(this.dir, name);
    let raw: Buffer;
    try {
      const stat = await fs.promises.stat(file);
      if (!stat.isFile()) return this.unreadable(name, 'is not a regular file');
      if (stat.size > MAX_STATE_FILE_BYTES) return this.unreadable(name, `is larger than ${MAX_STATE_FILE_BYTES} bytes`);
      raw = await fs.promises.readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return this.unreadable(name, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    let outer: Record<string, unknown>;
    try {
      outer = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return this.unreadable(name, 'is not JSON (damaged or edited)');
    }
    if (!outer || typeof outer !== 'object' || outer.format !== STATE_FILE_FORMAT || outer.part !== part || typeof outer.sealed !== 'string') {
      return this.unreadable(name, 'is not a state file of this format');
    }
    const p = this.provider;
    if (outer.deviceId !== p.deviceId || outer.keyId !== this.keyIdHex) {
      return this.unreadable(
        name,
        `was sealed by ${publicName(outer.deviceId)} key epoch ${publicName(outer.keyEpoch)} (key ${publicName(outer.keyId).slice(0, 16)}), ` +
          `not by this identity (${p.deviceId}, key epoch ${p.keyEpoch}, key ${this.keyIdHex.slice(0, 16)}); after changing or rotating the identity the old state cannot be read`,
      );
    }
    const sealed = Buffer.from(outer.sealed, 'base64');
    const plain = await p.unseal(new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength), label);
    if (plain === undefined) return this.unreadable(name, 'does not authenticate under this identity (edited, damaged or swapped)');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain)) as Record<string, unknown>;
    } catch {
      return this.unreadable(name, 'holds sealed content that is not JSON');
    }
    if (
      !body || typeof body !== 'object' || body.format !== STATE_FILE_FORMAT || body.part !== part ||
      body.deviceId !== p.deviceId || body.keyId !== this.keyIdHex
    ) {
      return this.unreadable(name, 'holds sealed content that does not match its name');
    }
    return { body };
  }

  private unreadable(name: string, why: string): Extract<StateLoad, { ok: false }> {
    return { ok: false, problem: 'state-unreadable', file: path.join(this.dir, name), message: `state unreadable: ${name} ${why}` };
  }

  private rollback(name: string, why: string): Extract<StateLoad, { ok: false }> {
    return { ok: false, problem: 'state-rollback', file: path.join(this.dir, name), message: `state rollback: ${why}` };
  }
}

function isGeneration(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A value from an unauthenticated header, made safe for one log line. */
function publicName(v: unknown): string {
  const s = typeof v === 'string' || typeof v === 'number' ? String(v) : '?';
  return s.replace(/[^A-Za-z0-9_.-]/g, '?').slice(0, 64);
}

export type RestoreOutcome =
  | { ok: true; fresh: boolean; report: RestoreReport; generations: Generations; source: 'marker' | 'hardware'; retiredEpoch?: number }
  | { ok: false; problem: StateProblem; message: string; load?: Extract<StateLoad, { ok: false }> };

/**
 * load → session.restore → attach: what a config node does before it connects. A refused
 * restore (state of another device or format) is `state-unreadable`; nothing is half-applied
 * because the session is fresh and is not used when this fails.
 */
export async function restoreInto(store: StateStore, session: SecureSession, clockNow: number): Promise<RestoreOutcome> {
  const load = await store.load();
  if (!load.ok) return { ok: false, problem: load.problem, message: load.message, load };
  const r = await session.restore(load.trust, load.counters, clockNow);
  if (!r.ok) {
    return { ok: false, problem: 'state-unreadable', message: `state unreadable: the stored state was refused (${r.reason}${r.detail ? `: ${r.detail}` : ''})` };
  }
  store.attach(session);
  return {
    ok: true, fresh: load.fresh, report: r.value, generations: load.generations, source: load.source,
    ...(load.retiredEpoch !== undefined ? { retiredEpoch: load.retiredEpoch } : {}),
  };
}

/**
 * The audit log file (I6): the adapter around lib/trust/audit.ts. It appends one signed,
 * chained entry per security event to a JSONL file, one write per entry through a handle opened
 * in append mode, optionally fsynced. docs/PROTOCOL.md §12 (audit log).
 *
 * - Resume: on open it reads only the file's last line and checks it under the device key; the
 *   chain continues from it. A broken last line (cut off, edited, signed by another key) is
 *   never continued silently: a new segment starts (seq 0, genesis prev) with a `log-resumed`
 *   entry naming the broken line, so `pqc-iiot audit verify` still points at it.
 * - Appends are serialized: entries reach the file in the order `record` was called.
 * - Cost control: every entry costs a post-quantum signature, so `rejected` events are limited
 *   per reason (default 10 per minute); the rest are only counted and summed up in one
 *   `rejected-suppressed` entry when the window ends. The write queue is bounded too.
 * - Only public fields are written (ids, reasons, counters, topics); `record` never receives
 *   payloads or keys, and the data checks refuse nested values and long strings.
 *
 * One AuditLog per file: two writers on the same file would interleave two chains.
 */
import fs from 'node:fs';
import { isReason } from '../result';
import {
  AUDIT_GENESIS, AUDIT_LIMITS, assertAuditData, buildEntry, checkAuditLine, lineHash, type AuditData, type AuditEventName,
  type AuditFailureReason, type AuditSigner,
} from '../trust/audit';
import type { SecurityProvider } from '../session/provider';

export interface AuditLogOptions {
  readonly file: string;
  /** Signs the entries; its public key is used to check the last line on open. */
  readonly provider: AuditSigner & Pick<SecurityProvider, 'sigPublicKey'>;
  /** ms since the Unix epoch; tests pass a fixed clock. Default Date.now. */
  readonly now?: () => number;
  /** fsync after every entry (durable against power loss, slower). Default false. */
  readonly fsync?: boolean;
  /** `rejected` entries written per reason and window; the rest are counted. Default 10. */
  readonly rejectedPerWindow?: number;
  /** Length of the rate-limit window in ms. Default 60000. */
  readonly rejectedWindowMs?: number;
  /** Entries waiting to be signed and written; more are counted as dropped. Default 256. */
  readonly maxPending?: number;
  /** Called once when writing fails; later records resolve 'failed'. */
  readonly onError?: (error: Error) => void;
  /** File mode when the file is created. Default 0600. */
  readonly mode?: number;
}

export const AUDIT_LOG_DEFAULTS = Object.freeze({
  rejectedPerWindow: 10,
  rejectedWindowMs: 60_000,
  maxPending: 256,
  mode: 0o600,
});

/** What happened to one `record` call; `record` never rejects (a node must not crash on it). */
export type AuditRecordOutcome = 'written' | 'suppressed' | 'dropped' | 'failed' | 'closed';

/** How the log was resumed on open. */
export type AuditResume =
  | { readonly kind: 'new' }
  | { readonly kind: 'continued'; readonly seq: number }
  | {
      readonly kind: 'new-segment';
      readonly reason: AuditFailureReason;
      /** 1-based line number and byte offset of the broken last line. */
      readonly line: number;
      readonly offset: number;
    };

interface Window {
  start: number;
  written: number;
  suppressed: number;
}

export class AuditLog {
  private readonly provider: AuditLogOptions['provider'];
  private readonly now: () => number;
  private readonly fsync: boolean;
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly maxPending: number;
  private readonly onError: ((error: Error) => void) | undefined;
  private readonly windows = new Map<string, Window>();
  private handle: fs.promises.FileHandle | undefined;
  private seq: number;
  private prev: string;
  /** Bytes to write before the next entry: "\n" when the file ended in a cut-off line. */
  private prefix: Uint8Array;
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private dropped = 0;
  private error: Error | undefined;
  private closing = false;
  readonly resume: AuditResume;

  private constructor(opts: AuditLogOptions, handle: fs.promises.FileHandle, start: { seq: number; prev: string; prefix: Uint8Array; resume: AuditResume }) {
    this.provider = opts.provider;
    this.now = opts.now ?? Date.now;
    this.fsync = opts.fsync === true;
    this.perWindow = positiveInt(opts.rejectedPerWindow, AUDIT_LOG_DEFAULTS.rejectedPerWindow, 'rejectedPerWindow', 0);
    this.windowMs = positiveInt(opts.rejectedWindowMs, AUDIT_LOG_DEFAULTS.rejectedWindowMs, 'rejectedWindowMs', 1);
    this.maxPending = positiveInt(opts.maxPending, AUDIT_LOG_DEFAULTS.maxPending, 'maxPending', 1);
    this.onError = opts.onError;
    this.handle = handle;
    this.seq = start.seq;
    this.prev = start.prev;
    this.prefix = start.prefix;
    this.resume = start.resume;
  }

  /**
   * Opens (or creates) the log and resumes its chain. When the last line is broken the
   * `log-resumed` entry is written before this resolves.
   */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const key = { deviceId: opts.provider.deviceId, sigAlgorithm: opts.provider.sigAlgorithm, publicKey: opts.provider.sigPublicKey };
    const start = await readTail(opts.file, key);
    const handle = await fs.promises.open(opts.file, 'a', opts.mode ?? AUDIT_LOG_DEFAULTS.mode);
    let log: AuditLog;
    try {
      log = new AuditLog(opts, handle, start);
    } catch (err) {
      await handle.close();
      throw err;
    }
    if (start.resume.kind === 'new-segment') {
      const outcome = await log.enqueue('log-resumed', {
        reason: start.resume.reason, line: start.resume.line, offset: start.resume.offset, sha256: start.brokenHash ?? null,
      }, log.clock());
      if (outcome !== 'written') {
        await log.close();
        throw log.error ?? new Error('audit log: could not record the resumed segment');
      }
    }
    return log;
  }

  /** Next entry number and the hash it will chain to (for status displays and tests). */
  get head(): { seq: number; prev: string } {
    return { seq: this.seq, prev: this.prev };
  }

  /** Entries queued and not yet written. */
  get pendingCount(): number {
    return this.pending;
  }

  /**
   * Records one event. `rejected` events need `data.reason` (a reason code) and are rate-limited
   * per reason. Throws only on malformed data (a programming error); otherwise resolves with
   * what happened once the entry is written (or not).
   */
  record(event: AuditEventName, data: AuditData = {}): Promise<AuditRecordOutcome> {
    assertAuditData(data);
    if (this.closing) return Promise.resolve('closed');
    if (this.error) return Promise.resolve('failed');
    const ts = this.clock();
    this.flushWindows(ts, false);
    if (event === 'rejected') {
      const reason = data.reason;
      if (!isReason(reason)) throw new TypeError('audit: a "rejected" event needs data.reason, a reason code');
      let w = this.windows.get(reason);
      if (w === undefined) {
        w = { start: ts, written: 0, suppressed: 0 };
        this.windows.set(reason, w);
      }
      if (w.written >= this.perWindow) {
        // Counted only: no signature, no queue entry, no disk.
        w.suppressed++;
        return Promise.resolve('suppressed');
      }
      w.written++;
    }
    return this.enqueue(event, data, ts);
  }

  /** Convenience for `record('rejected', { reason, ...data })`. */
  rejected(reason: string, data: AuditData = {}): Promise<AuditRecordOutcome> {
    return this.record('rejected', { ...data, reason });
  }

  /**
   * Writes the summaries of rate-limit windows that have ended. `record` does this itself;
   * an owner with a timer may call it so a summary does not wait for the next event.
   */
  tick(): void {
    if (this.closing || this.error) return;
    this.flushWindows(this.clock(), false);
  }

  /** Resolves when everything recorded so far is written (or failed). */
  async flush(): Promise<void> {
    await this.tail;
  }

  /** Writes pending summaries, waits for the queue and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await this.tail;
      return;
    }
    if (!this.error) this.flushWindows(this.clock(), true);
    this.closing = true;
    await this.tail;
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  /** Whole non-negative ms: a fake or adjusted clock must not make entries unwritable. */
  private clock(): number {
    const t = Math.floor(Number(this.now()));
    return Number.isSafeInteger(t) && t > 0 ? t : 0;
  }

  /** Queues summaries for windows that ended before `now` (all of them when closing). */
  private flushWindows(now: number, all: boolean): void {
    for (const [reason, w] of this.windows) {
      // A clock that goes back keeps the window open rather than granting a new budget.
      if (!all && now < w.start + this.windowMs) continue;
      this.windows.delete(reason);
      if (w.suppressed > 0) {
        void this.enqueue('rejected-suppressed', { reason, suppressed: w.suppressed, from: w.start, to: w.start + this.windowMs }, now, true);
      }
    }
  }

  private enqueue(event: AuditEventName, data: AuditData, ts: number, summary = false): Promise<AuditRecordOutcome> {
    if (this.error) return Promise.resolve('failed');
    // Summaries may exceed the bound by the (closed) number of reason codes; events may not.
    if (!summary && this.pending >= this.maxPending) {
      this.dropped++;
      return Promise.resolve('dropped');
    }
    if (this.dropped > 0 && this.pending < this.maxPending) {
      const count = this.dropped;
      this.dropped = 0;
      this.chain('events-dropped', { count }, ts);
    }
    return this.chain(event, data, ts);
  }

  private chain(event: AuditEventName, data: AuditData, ts: number): Promise<AuditRecordOutcome> {
    this.pending++;
    const run = this.tail.then(() => this.writeEntry(event, data, ts));
    this.tail = run;
    return run.finally(() => {
      this.pending--;
    });
  }

  private async writeEntry(event: AuditEventName, data: AuditData, ts: number): Promise<AuditRecordOutcome> {
    if (this.error) return 'failed';
    const handle = this.handle;
    if (handle === undefined) return 'closed';
    try {
      const built = await buildEntry({ seq: this.seq, ts, event, data, prev: this.prev }, this.provider);
      const bytes = this.prefix.length === 0 ? built.bytes : Buffer.concat([this.prefix, built.bytes]);
      await writeAll(handle, bytes);
      if (this.fsync) await handle.sync();
      this.prefix = new Uint8Array(0);
      this.seq++;
      this.prev = built.hash;
      return 'written';
    } catch (err) {
      // The file may now end in part of a line: stop here; reopening starts a new segment.
      this.error = err instanceof Error ? err : new Error(String(err));
      try {
        this.onError?.(this.error);
      } catch {
        // The owner's handler must not break the queue.
      }
      return 'failed';
    }
  }
}

async function writeAll(handle: fs.promises.FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    if (bytesWritten <= 0) throw new Error('audit log: write made no progress');
    offset += bytesWritten;
  }
}

interface TailState {
  seq: number;
  prev: string;
  prefix: Uint8Array;
  resume: AuditResume;
  brokenHash?: string;
}

/** Reads the last line of the file (at most the line limit) and decides where the chain goes on. */
async function readTail(file: string, key: Parameters<typeof checkAuditLine>[1]): Promise<TailState> {
  const fresh: TailState = { seq: 0, prev: AUDIT_GENESIS, prefix: new Uint8Array(0), resume: { kind: 'new' } };
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fresh;
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error('audit log: not a regular file');
    const size = stat.size;
    if (size === 0) return fresh;
    // The last line plus its newline and the newline before it.
    const want = Math.min(size, AUDIT_LIMITS.maxLineBytes + 2);
    const tail = Buffer.alloc(want);
    await readExactly(handle, tail, size - want);
    const endsWithNewline = tail[tail.length - 1] === 0x0a;
    const body = endsWithNewline ? tail.subarray(0, tail.length - 1) : tail;
    const nl = body.lastIndexOf(0x0a);
    const lineStartInTail = nl + 1;
    const offset = size - want + lineStartInTail;
    const line = body.subarray(lineStartInTail);
    let reason: AuditFailureReason | undefined;
    if (nl === -1 && size > want) reason = 'too-large';
    else if (!endsWithNewline) reason = 'truncated';
    else {
      const check = checkAuditLine(line, key);
      if (check.ok) return { seq: check.entry.seq + 1, prev: check.hash, prefix: new Uint8Array(0), resume: { kind: 'continued', seq: check.entry.seq } };
      reason = check.reason;
    }
    const lineNumber = (await countNewlines(handle, offset)) + 1;
    return {
      seq: 0,
      prev: AUDIT_GENESIS,
      prefix: endsWithNewline ? new Uint8Array(0) : Uint8Array.of(0x0a),
      resume: { kind: 'new-segment', reason, line: lineNumber, offset },
      brokenHash: lineHash(line),
    };
  } finally {
    await handle.close();
  }
}

async function readExactly(handle: fs.promises.FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new Error('audit log: file shrank while being read');
    done += bytesRead;
  }
}

/** Newlines before `end`: the broken line's number, for the `log-resumed` entry. */
async function countNewlines(handle: fs.promises.FileHandle, end: number): Promise<number> {
  const buf = Buffer.alloc(64 * 1024);
  let count = 0;
  for (let pos = 0; pos < end; ) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, end - pos), pos);
    if (bytesRead === 0) break;
    for (let i = 0; i < bytesRead; i++) if (buf[i] === 0x0a) count++;
    pos += bytesRead;
  }
  return count;
}

function positiveInt(value: number | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`audit log: ${name} must be an integer ≥ ${min}`);
  return value;
}

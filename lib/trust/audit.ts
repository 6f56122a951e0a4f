/**
 * Signed audit log (I6): the pure core, no file access. One entry per line (JSONL), each line
 * chained to the SHA-256 of the line before it and signed with the device signature key through
 * the SecurityProvider, so an attacker with write access to the file can neither edit, delete,
 * reorder nor insert an entry without the verifier pointing at the line (a plain hash chain
 * would not do: the attacker could recompute it). docs/PROTOCOL.md §12 (audit log).
 *
 * Line format (bytes, UTF-8, exactly this key order, no white space, one "\n" after each line):
 *
 *   {"v":1,"seq":S,"ts":T,"event":E,"data":{D},"prev":P,"sig":G}
 *
 *   S  entry number: 0 for the first line of a log (or of a new segment), then +1 per line
 *   T  ms since the Unix epoch when the event was recorded (informational, not checked)
 *   E  event name, JSON string matching [a-z][a-z0-9-]{0,31}
 *   D  public fields of the event: keys matching [A-Za-z][A-Za-z0-9_]{0,31} in ascending
 *      code-unit order, values a JSON string (≤ 256 UTF-16 units), safe integer, true/false or null
 *   P  lowercase hex SHA-256 of the previous line's bytes (without its "\n"); 64 zeros for seq 0
 *   G  standard base64 (with padding) of the device signature over
 *        framed("pqc-iiot:audit:v1", ascii(device_id), body)
 *      where body is the line up to the P value's closing quote followed by "}", i.e. the same
 *      JSON without the "sig" member.
 *
 * Strings are written as JSON.stringify writes them; a line that is not byte-identical to the
 * canonical form of its own values is `not-canonical`, so every entry has exactly one valid
 * encoding and hashing the line equals hashing its canonical bytes.
 */
import { SIG_ALGORITHMS, isSigAlgorithm, type SigAlgorithm } from '../crypto/algorithms';
import { cryptoBackend } from '../crypto/backend';
import { LABELS, domainDigest, sha256 } from '../crypto/symmetric';
import type { SecurityProvider } from '../session/provider';
import { signatureFits, toHex } from '../wire/common';
import { isValidDeviceId } from '../wire/fields';

/** Domain label of the audit signature (LABELS.audit). */
export const AUDIT_LABEL = LABELS.audit;
export const AUDIT_VERSION = 1;
/** `prev` of the first entry of a log or of a new segment: 32 zero bytes in hex. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** Size limits, checked before any parsing (I5 habits applied to the log file). */
export const AUDIT_LIMITS = Object.freeze({
  /** Longest line in bytes: a 3309-byte ML-DSA-65 signature is 4412 base64 characters, the
   * data at most maxDataBytes, the rest under 200; twice that leaves room and still stops a
   * multi-megabyte "line" before JSON.parse. */
  maxLineBytes: 16384,
  /** Canonical JSON of the data object, in bytes: events carry ids, reasons and counters. */
  maxDataBytes: 8192,
  maxDataFields: 16,
  /** UTF-16 units per string value: a topic (≤ 1024 bytes) is shortened by the caller. */
  maxStringChars: 256,
} as const);

export type AuditValue = string | number | boolean | null;
export type AuditData = Readonly<Record<string, AuditValue>>;

/**
 * Events the project writes. The verifier accepts any well-formed name, so a newer writer's
 * events still verify under an older verifier.
 */
export const AUDIT_EVENTS = Object.freeze({
  'peer-trusted': 'a peer announcement was accepted (peer, epoch, keyId)',
  'rejected': 'an input was refused (reason, and peer / topic when known); rate-limited',
  'rejected-suppressed': 'summary of rejections dropped by the rate limit (reason, suppressed, from, to)',
  'revoked': 'a revocation update was applied (seq, added)',
  'rotated': 'a peer moved to a new key epoch (peer, fromEpoch, toEpoch, keyId)',
  'state-rollback': 'stored state was older than its generation counter',
  'log-resumed': 'the log file ended in a broken line; a new segment starts (reason, line, offset, sha256)',
  'events-dropped': 'entries not written because the write queue was full (count)',
} as const);

export type AuditEventName = keyof typeof AUDIT_EVENTS;

/** Why a log does not verify; the verifier reports the first line that fails. */
export const AUDIT_REASONS = Object.freeze({
  'too-large': 'line is longer than the limit (checked before parsing)',
  'bad-json': 'line is not UTF-8 JSON',
  'bad-format': 'line is JSON but not an audit entry (fields, types, version)',
  'not-canonical': 'line is not written in the one canonical form of its values',
  'bad-seq': 'entry number is not the previous one plus one (deleted, inserted or reordered entry)',
  'broken-chain': 'prev is not the hash of the previous line (deleted, inserted, reordered or edited line)',
  'bad-signature': 'signature does not verify under the device key (edited or forged entry, or another key)',
  'truncated': 'the last line has no newline (cut off while written, or truncated)',
  'bad-key': 'the verification key itself is malformed (local error)',
} as const);

export type AuditFailureReason = keyof typeof AUDIT_REASONS;

/** The public half of the signer, as the verifier gets it (identity file, announcement). */
export interface AuditKey {
  readonly deviceId: string;
  readonly sigAlgorithm: SigAlgorithm;
  readonly publicKey: Uint8Array;
}

export type AuditSigner = Pick<SecurityProvider, 'deviceId' | 'sigAlgorithm' | 'sign'>;

export interface AuditEntry {
  readonly v: 1;
  readonly seq: number;
  readonly ts: number;
  readonly event: string;
  readonly data: AuditData;
  readonly prev: string;
  readonly sig: string;
}

export type AuditEntryFields = Omit<AuditEntry, 'v' | 'sig'>;

export interface BuiltEntry {
  readonly entry: AuditEntry;
  /** The line without its newline. */
  readonly line: string;
  /** The bytes to append: the line and "\n". */
  readonly bytes: Uint8Array;
  /** `prev` of the next entry. */
  readonly hash: string;
}

export type AuditVerdict =
  | { readonly ok: true; readonly entries: number; readonly head: string }
  | {
      readonly ok: false;
      /** 1-based line number of the first failing line (0: the key is unusable). */
      readonly line: number;
      readonly reason: AuditFailureReason;
      readonly detail?: string;
      /** Entries that verified before it. */
      readonly entries: number;
    };

export type LineCheck =
  | { readonly ok: true; readonly entry: AuditEntry; readonly hash: string }
  | { readonly ok: false; readonly reason: AuditFailureReason; readonly detail?: string };

const EVENT_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
const DATA_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ENTRY_KEYS = ['v', 'seq', 'ts', 'event', 'data', 'prev', 'sig'] as const;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// --- building ------------------------------------------------------------------------------

/** Checks event data; returns a problem description or undefined (no exceptions: shared by verify). */
function dataProblem(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'data must be an object';
  if (Object.getPrototypeOf(data) !== Object.prototype && Object.getPrototypeOf(data) !== null) return 'data must be a plain object';
  const keys = Object.keys(data);
  if (keys.length > AUDIT_LIMITS.maxDataFields) return `data has more than ${AUDIT_LIMITS.maxDataFields} fields`;
  for (const k of keys) {
    if (!DATA_KEY_PATTERN.test(k)) return `data key ${JSON.stringify(k.slice(0, 40))} is not [A-Za-z][A-Za-z0-9_]{0,31}`;
    const v = (data as Record<string, unknown>)[k];
    if (typeof v === 'string') {
      if (v.length > AUDIT_LIMITS.maxStringChars) return `data.${k} is longer than ${AUDIT_LIMITS.maxStringChars} characters`;
    } else if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) return `data.${k} must be a safe integer`;
    } else if (typeof v !== 'boolean' && v !== null) {
      return `data.${k} must be a string, integer, boolean or null`;
    }
  }
  return undefined;
}

function fieldsProblem(f: AuditEntryFields): string | undefined {
  if (!Number.isSafeInteger(f.seq) || f.seq < 0) return 'seq must be a non-negative safe integer';
  if (!Number.isSafeInteger(f.ts) || f.ts < 0) return 'ts must be a non-negative safe integer (ms)';
  if (typeof f.event !== 'string' || !EVENT_PATTERN.test(f.event)) return 'event must match [a-z][a-z0-9-]{0,31}';
  if (typeof f.prev !== 'string' || !HEX64.test(f.prev)) return 'prev must be 64 lowercase hex digits';
  return dataProblem(f.data);
}

/** Throws when the caller's event data is unusable (a local programming error). */
export function assertAuditData(data: AuditData): void {
  const problem = dataProblem(data);
  if (problem !== undefined) throw new TypeError(`audit: ${problem}`);
  if (Buffer.byteLength(canonicalData(data), 'utf8') > AUDIT_LIMITS.maxDataBytes) throw new RangeError(`audit: data is larger than ${AUDIT_LIMITS.maxDataBytes} bytes`);
}

function canonicalData(data: AuditData): string {
  const keys = Object.keys(data).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(data[k])}`).join(',')}}`;
}

/** The signed body: the canonical entry without its "sig" member. */
export function canonicalBody(f: AuditEntryFields): string {
  return `{"v":${AUDIT_VERSION},"seq":${f.seq},"ts":${f.ts},"event":${JSON.stringify(f.event)},` +
    `"data":${canonicalData(f.data)},"prev":"${f.prev}"}`;
}

function lineOf(body: string, sig: string): string {
  return `${body.slice(0, -1)},"sig":"${sig}"}`;
}

/** SHA-256 framed("pqc-iiot:audit:v1", ascii(device_id), utf8(body)): what the device signs. */
export function auditDigest(deviceId: string, body: string): Uint8Array {
  return domainDigest(LABELS.audit, [Buffer.from(deviceId, 'ascii'), utf8.encode(body)]);
}

/** Lowercase hex SHA-256 of a line's bytes (without the newline): the next entry's `prev`. */
export function lineHash(line: string | Uint8Array): string {
  return toHex(sha256(typeof line === 'string' ? utf8.encode(line) : line));
}

/**
 * Builds and signs one entry. Throws on bad fields (local misuse) and when the provider returns
 * a signature of the wrong size for its algorithm.
 */
export async function buildEntry(fields: AuditEntryFields, signer: AuditSigner): Promise<BuiltEntry> {
  const problem = fieldsProblem(fields);
  if (problem !== undefined) throw new TypeError(`audit: ${problem}`);
  if (fields.seq === 0 && fields.prev !== AUDIT_GENESIS) throw new TypeError('audit: the entry with seq 0 must have the genesis prev');
  if (!isValidDeviceId(signer.deviceId)) throw new TypeError('audit: signer device id is not valid');
  assertAuditData(fields.data);
  const data = Object.freeze({ ...fields.data });
  const f: AuditEntryFields = { seq: fields.seq, ts: fields.ts, event: fields.event, data, prev: fields.prev };
  const body = canonicalBody(f);
  const signature = await signer.sign(auditDigest(signer.deviceId, body));
  if (!(signature instanceof Uint8Array) || !signatureFits(signer.sigAlgorithm, signature)) {
    throw new Error(`audit: the provider returned a signature that does not fit ${signer.sigAlgorithm}`);
  }
  const sig = Buffer.from(signature).toString('base64');
  const line = lineOf(body, sig);
  const lineBytes = utf8.encode(line);
  if (lineBytes.length > AUDIT_LIMITS.maxLineBytes) throw new RangeError('audit: entry is longer than the line limit');
  const bytes = new Uint8Array(lineBytes.length + 1);
  bytes.set(lineBytes);
  bytes[lineBytes.length] = 0x0a;
  return Object.freeze({ entry: Object.freeze({ v: 1 as const, ...f, sig }), line, bytes, hash: lineHash(lineBytes) });
}

// --- reading and verifying -----------------------------------------------------------------

function failed(reason: AuditFailureReason, detail?: string): LineCheck {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}

/**
 * Parses one line (bytes without "\n") into an entry: size, UTF-8, JSON, shape, canonical form.
 * No cryptography. Never throws.
 */
export function parseAuditLine(bytes: Uint8Array): { ok: true; entry: AuditEntry; body: string } | { ok: false; reason: AuditFailureReason; detail?: string } {
  if (!(bytes instanceof Uint8Array)) return { ok: false, reason: 'bad-json', detail: 'not bytes' };
  if (bytes.length > AUDIT_LIMITS.maxLineBytes) return { ok: false, reason: 'too-large', detail: `${bytes.length} bytes` };
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { ok: false, reason: 'bad-json', detail: 'not UTF-8' };
  }
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'bad-json', detail: text.length === 0 ? 'empty line' : 'not JSON' };
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return { ok: false, reason: 'bad-format', detail: 'not an object' };
  const rec = o as Record<string, unknown>;
  const keys = Object.keys(rec);
  const missing = ENTRY_KEYS.find((k) => !Object.prototype.hasOwnProperty.call(rec, k));
  if (missing !== undefined) return { ok: false, reason: 'bad-format', detail: `missing "${missing}"` };
  if (keys.length !== ENTRY_KEYS.length) return { ok: false, reason: 'bad-format', detail: 'unknown fields' };
  if (rec.v !== AUDIT_VERSION) return { ok: false, reason: 'bad-format', detail: 'unknown version' };
  if (typeof rec.sig !== 'string' || rec.sig.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(rec.sig)) {
    return { ok: false, reason: 'bad-format', detail: 'sig must be base64' };
  }
  const fields = { seq: rec.seq, ts: rec.ts, event: rec.event, data: rec.data, prev: rec.prev } as AuditEntryFields;
  const problem = fieldsProblem(fields);
  if (problem !== undefined) return { ok: false, reason: 'bad-format', detail: problem };
  const body = canonicalBody(fields);
  if (lineOf(body, rec.sig) !== text) return { ok: false, reason: 'not-canonical' };
  // Base64 decoding ignores the unused low bits of the last digit: without this check the same
  // signature has several spellings, and an edited last line would still verify.
  if (Buffer.from(rec.sig, 'base64').toString('base64') !== rec.sig) return { ok: false, reason: 'not-canonical', detail: 'sig is not canonical base64' };
  const entry: AuditEntry = Object.freeze({ v: 1 as const, ...fields, data: Object.freeze({ ...fields.data }), sig: rec.sig });
  return { ok: true, entry, body };
}

function keyProblem(key: AuditKey): string | undefined {
  if (key === null || typeof key !== 'object') return 'no key';
  if (!isValidDeviceId(key.deviceId)) return 'device id is not valid';
  if (!isSigAlgorithm(key.sigAlgorithm)) return 'unknown signature algorithm';
  if (!(key.publicKey instanceof Uint8Array) || key.publicKey.length !== SIG_ALGORITHMS[key.sigAlgorithm].publicKey) {
    return `public key must be ${isSigAlgorithm(key.sigAlgorithm) ? SIG_ALGORITHMS[key.sigAlgorithm].publicKey : '?'} bytes`;
  }
  return undefined;
}

function signatureOk(entry: AuditEntry, body: string, key: AuditKey): LineCheck | undefined {
  const sig = new Uint8Array(Buffer.from(entry.sig, 'base64'));
  if (!signatureFits(key.sigAlgorithm, sig)) return failed('bad-signature', `signature length ${sig.length} does not fit ${key.sigAlgorithm}`);
  if (!cryptoBackend().verify(key.sigAlgorithm, sig, auditDigest(key.deviceId, body), key.publicKey)) return failed('bad-signature');
  return undefined;
}

/**
 * One line on its own (no chain): parsed and its signature verified. The adapter uses it to
 * resume after the last line of an existing file. Never throws.
 */
export function checkAuditLine(bytes: Uint8Array, key: AuditKey): LineCheck {
  const kp = keyProblem(key);
  if (kp !== undefined) return failed('bad-key', kp);
  const p = parseAuditLine(bytes);
  if (!p.ok) return p;
  const bad = signatureOk(p.entry, p.body, key);
  if (bad) return bad;
  return { ok: true, entry: p.entry, hash: lineHash(bytes) };
}

/**
 * Verifies a log fed in chunks of any size (so a large file is checked in bounded memory):
 * `write` each chunk, then `end`. Stops at the first failing line. Never throws.
 */
export class AuditLogVerifier {
  private readonly key: AuditKey;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private lineNo = 0;
  private count = 0;
  private prev = AUDIT_GENESIS;
  private result: AuditVerdict | undefined;

  constructor(key: AuditKey) {
    this.key = key;
    let kp: string | undefined;
    try {
      kp = keyProblem(key);
    } catch {
      kp = 'unusable key';
    }
    if (kp !== undefined) this.result = { ok: false, line: 0, reason: 'bad-key', detail: kp, entries: 0 };
  }

  /** True once a line failed: the rest need not be read. */
  get failed(): boolean {
    return this.result !== undefined && !this.result.ok;
  }

  /** Feeds bytes; returns false once the log has failed. */
  write(chunk: Uint8Array | string): boolean {
    if (this.result) return false;
    const bytes = typeof chunk === 'string' ? utf8.encode(chunk) : chunk instanceof Uint8Array ? chunk : undefined;
    if (bytes === undefined) {
      this.fail('bad-json', 'not bytes', this.lineNo + 1);
      return false;
    }
    let start = 0;
    while (start < bytes.length) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl === -1 ? bytes.length : nl;
      if (this.pendingBytes + (end - start) > AUDIT_LIMITS.maxLineBytes) {
        // Stop buffering right away: a "line" of gigabytes must not be held in memory.
        this.fail('too-large', `more than ${AUDIT_LIMITS.maxLineBytes} bytes`, this.lineNo + 1);
        return false;
      }
      if (nl === -1) {
        this.pending.push(bytes.subarray(start));
        this.pendingBytes += bytes.length - start;
        break;
      }
      const line = this.pendingBytes === 0 ? bytes.subarray(start, nl) : concat([...this.pending, bytes.subarray(start, nl)]);
      this.pending = [];
      this.pendingBytes = 0;
      this.lineNo++;
      this.checkLine(line);
      if (this.result) return false;
      start = nl + 1;
    }
    return true;
  }

  /** The verdict; a last line without "\n" is `truncated`. */
  end(): AuditVerdict {
    if (this.result) return this.result;
    if (this.pendingBytes > 0) {
      this.fail('truncated', `${this.pendingBytes} bytes without a newline`, this.lineNo + 1);
      return this.result!;
    }
    this.result = { ok: true, entries: this.count, head: this.prev };
    return this.result;
  }

  private checkLine(line: Uint8Array): void {
    let r: LineCheck | undefined;
    try {
      const p = parseAuditLine(line);
      if (!p.ok) {
        r = p;
      } else if (p.entry.seq !== this.count) {
        r = failed('bad-seq', `seq ${p.entry.seq}, expected ${this.count}`);
      } else if (p.entry.prev !== this.prev) {
        r = failed('broken-chain', this.lineNo === 1 ? 'prev is not the genesis value' : `prev is not the hash of line ${this.lineNo - 1}`);
      } else {
        r = signatureOk(p.entry, p.body, this.key);
      }
    } catch {
      // Defence in depth: the checks above do not throw, but a verifier must not either.
      r = failed('bad-format', 'unreadable entry');
    }
    if (r && !r.ok) {
      this.fail(r.reason, r.detail, this.lineNo);
      return;
    }
    this.count++;
    this.prev = lineHash(line);
  }

  private fail(reason: AuditFailureReason, detail: string | undefined, line: number): void {
    this.result = detail === undefined
      ? { ok: false, line, reason, entries: this.count }
      : { ok: false, line, reason, detail, entries: this.count };
  }
}

/** Verifies a whole log: the first broken or forged line, or the number of entries. Never throws. */
export function verifyAuditLog(input: string | Uint8Array, key: AuditKey): AuditVerdict {
  const v = new AuditLogVerifier(key);
  v.write(input);
  return v.end();
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Field codec shared by every wire structure (docs/PROTOCOL.md §2).
 * Layouts are declared as data: a `struct({...})` of fields, encoded in key order, big-endian.
 * Decoding never throws on the peer's bytes: a field that does not fit records a Reason and
 * returns undefined, and the structure decoder turns that into a Result. Decoded byte fields are
 * views of one private copy of the input (`decodeAll`), never of the caller's buffer: one
 * allocation per structure instead of one per field.
 */
import { fail, ok, type Reason, type Result } from '../result';

/** Encoder output: one growing buffer, so a structure costs one copy, not one array per field. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private size: number;

  /** Writes into `target` from `offset` on (grown into a new buffer if it is too small), else into a buffer of its own. */
  constructor(target: Uint8Array = new Uint8Array(256), offset = 0) {
    this.buf = target;
    this.view = new DataView(target.buffer, target.byteOffset, target.byteLength);
    this.size = offset;
  }

  get length(): number {
    return this.size;
  }

  private reserve(n: number): number {
    const at = this.size;
    if (at + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, at + n, 256));
      grown.set(this.buf.subarray(0, at));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    this.size = at + n;
    return at;
  }

  push(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
  }

  /** Big-endian unsigned integer of 1, 2 or 4 bytes (range checked by the caller). */
  uint(value: number, bytes: 1 | 2 | 4): void {
    const at = this.reserve(bytes);
    if (bytes === 1) this.buf[at] = value;
    else if (bytes === 2) this.view.setUint16(at, value, false);
    else this.view.setUint32(at, value, false);
  }

  u64(value: bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, value, false);
  }

  /** The bytes written, in a buffer of their own. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.size);
  }
}

/** Big-endian u32 at `at` (the top byte multiplied, not shifted: a JS shift would make it negative). */
function u32At(b: Uint8Array, at: number): number {
  return b[at] * 0x1000000 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

export class Reader {
  offset = 0;
  failure: Reason | undefined;

  constructor(readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** Records the first failure only, so the reason names the earliest bad field. */
  fail(reason: Reason): undefined {
    if (this.failure === undefined) this.failure = reason;
    return undefined;
  }

  /** Big-endian unsigned integer of 1, 2 or 4 bytes, without allocating. */
  uint(n: 1 | 2 | 4): number | undefined {
    if (this.failure !== undefined) return undefined;
    if (n > this.remaining) return this.fail('truncated');
    const b = this.bytes;
    const at = this.offset;
    this.offset += n;
    if (n === 1) return b[at];
    if (n === 2) return (b[at] << 8) | b[at + 1];
    return u32At(b, at);
  }

  u64(): bigint | undefined {
    if (this.failure !== undefined) return undefined;
    if (8 > this.remaining) return this.fail('truncated');
    const b = this.bytes;
    const at = this.offset;
    this.offset += 8;
    return (BigInt(u32At(b, at)) << 32n) | BigInt(u32At(b, at + 4));
  }

  take(n: number): Uint8Array | undefined {
    if (this.failure !== undefined) return undefined;
    if (n > this.remaining) return this.fail('truncated');
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
}

export interface Field<T> {
  readonly name: string;
  encode(w: Writer, value: T): void;
  decode(r: Reader): T | undefined;
}

export type FieldValue<F> = F extends Field<infer T> ? T : never;

function uint(bytes: 1 | 2 | 4): Field<number> {
  const max = 2 ** (8 * bytes) - 1;
  return {
    name: `u${8 * bytes}`,
    encode(w, value) {
      if (!Number.isInteger(value) || value < 0 || value > max) {
        throw new RangeError(`u${8 * bytes} out of range: ${value}`);
      }
      w.uint(value, bytes);
    },
    decode(r) {
      return r.uint(bytes);
    },
  };
}

export const u8 = uint(1);
export const u16 = uint(2);
export const u32 = uint(4);

export const u64: Field<bigint> = {
  name: 'u64',
  encode(w, value) {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) {
      throw new RangeError(`u64 out of range: ${String(value)}`);
    }
    w.u64(value);
  },
  decode(r) {
    return r.u64();
  },
};

/** Exactly n bytes, no length prefix. */
export function fixed(n: number): Field<Uint8Array> {
  return {
    name: `bytes[${n}]`,
    encode(w, value) {
      if (!(value instanceof Uint8Array) || value.length !== n) {
        throw new RangeError(`expected ${n} bytes, got ${value?.length}`);
      }
      w.push(value);
    },
    decode(r) {
      return r.take(n);
    },
  };
}

/** Bytes with a big-endian length prefix of `prefix` bytes; longer than `max` is `bad-length`. */
export function sized(prefix: 1 | 2 | 4, max: number, min = 0): Field<Uint8Array> {
  const len = uint(prefix);
  return {
    name: `bytes${8 * prefix}`,
    encode(w, value) {
      if (!(value instanceof Uint8Array) || value.length > max || value.length < min) {
        throw new RangeError(`length ${value?.length} outside ${min}..${max}`);
      }
      len.encode(w, value.length);
      w.push(value);
    },
    decode(r) {
      const n = len.decode(r);
      if (n === undefined) return undefined;
      if (n > max || n < min) return r.fail('bad-length');
      return r.take(n);
    },
  };
}

/** I0: device ids are 1..128 ASCII characters of [A-Za-z0-9_.-]. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

export function isValidDeviceId(id: unknown): id is string {
  return typeof id === 'string' && DEVICE_ID_PATTERN.test(id);
}

/** A device id: u8 length, then ASCII; anything but I0's alphabet is `bad-id`. */
export const deviceId: Field<string> = {
  name: 'device-id',
  encode(w, value) {
    if (!isValidDeviceId(value)) throw new RangeError(`invalid device id ${JSON.stringify(value)}`);
    w.uint(value.length, 1);
    w.push(Buffer.from(value, 'ascii'));
  },
  decode(r) {
    const n = u8.decode(r);
    if (n === undefined) return undefined;
    if (n < 1 || n > 128) return r.fail('bad-id');
    const b = r.take(n);
    if (b === undefined) return undefined;
    for (const c of b) {
      const okChar =
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
        c === 0x2d || c === 0x2e || c === 0x5f;
      if (!okChar) return r.fail('bad-id');
    }
    return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
  },
};

/** UTF-8 text with a u16 length prefix; invalid UTF-8 or a NUL is `bad-field`. */
export function text16(max: number): Field<string> {
  const raw = sized(2, max, 1);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return {
    name: 'text16',
    encode(w, value) {
      raw.encode(w, new TextEncoder().encode(value));
    },
    decode(r) {
      const b = raw.decode(r);
      if (b === undefined) return undefined;
      try {
        const s = decoder.decode(b);
        return s.includes('\u0000') ? r.fail('bad-field') : s;
      } catch {
        return r.fail('bad-field');
      }
    },
  };
}

/** A u8 count followed by that many items; a count outside 1..max is `bad-length`. */
export function list<T>(item: Field<T>, max: number): Field<T[]> {
  return {
    name: `list<${item.name}>`,
    encode(w, values) {
      if (values.length < 1 || values.length > max) throw new RangeError(`list of ${values.length} outside 1..${max}`);
      u8.encode(w, values.length);
      for (const v of values) item.encode(w, v);
    },
    decode(r) {
      const n = u8.decode(r);
      if (n === undefined) return undefined;
      if (n < 1 || n > max) return r.fail('bad-length');
      const out: T[] = [];
      for (let i = 0; i < n; i++) {
        const v = item.decode(r);
        if (v === undefined) return undefined;
        out.push(v);
      }
      return out;
    },
  };
}

/**
 * A count of `prefix` bytes followed by that many items. A count that cannot fit in the bytes
 * that remain (each item takes at least `minItemBytes`) is `bad-length`, so a lying count
 * costs nothing; `order` (optional) must return < 0 for each consecutive pair, else `bad-field`.
 */
export function countedList<T>(
  item: Field<T>, prefix: 2 | 4, minItemBytes: number, order?: (a: T, b: T) => number,
): Field<T[]> {
  const count = prefix === 2 ? u16 : u32;
  return {
    name: `counted<${item.name}>`,
    encode(w, values) {
      count.encode(w, values.length);
      for (const v of values) item.encode(w, v);
    },
    decode(r) {
      const n = count.decode(r);
      if (n === undefined) return undefined;
      if (n * minItemBytes > r.remaining) return r.fail('bad-length');
      const out: T[] = [];
      for (let i = 0; i < n; i++) {
        const v = item.decode(r);
        if (v === undefined) return undefined;
        if (order && out.length > 0 && order(out[out.length - 1], v) >= 0) return r.fail('bad-field');
        out.push(v);
      }
      return out;
    },
  };
}

type Shape = Record<string, Field<unknown>>;
export type StructValue<S extends Shape> = { [K in keyof S]: FieldValue<S[K]> };

/** A sequence of named fields, encoded in declaration order. */
export function struct<S extends Shape>(fields: S): Field<StructValue<S>> & { fields: S } {
  const entries = Object.entries(fields);
  return {
    name: 'struct',
    fields,
    encode(w, value) {
      for (const [k, f] of entries) f.encode(w, (value as Record<string, unknown>)[k]);
    },
    decode(r) {
      const out: Record<string, unknown> = {};
      for (const [k, f] of entries) {
        const v = f.decode(r);
        if (v === undefined) return undefined;
        out[k] = v;
      }
      return out as StructValue<S>;
    },
  };
}

export function encode<T>(field: Field<T>, value: T): Uint8Array {
  const w = new Writer();
  field.encode(w, value);
  return w.finish();
}

/**
 * Decodes a whole buffer: size first (I5), then the fields, then no trailing bytes.
 * `extra` runs on the decoded value for checks that need more than one field.
 */
export function decodeAll<T>(field: Field<T>, bytes: Uint8Array, maxBytes: number): Result<T> {
  if (!(bytes instanceof Uint8Array)) return fail('bad-field', 'input is not bytes');
  if (bytes.length > maxBytes) return fail('too-large', `${bytes.length} > ${maxBytes} bytes`);
  const r = new Reader(new Uint8Array(bytes));
  const value = field.decode(r);
  if (value === undefined || r.failure !== undefined) return fail(r.failure ?? 'truncated');
  if (r.remaining !== 0) return fail('trailing-data', `${r.remaining} bytes`);
  return ok(value);
}

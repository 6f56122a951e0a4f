/**
 * Field codec (lib/wire/fields.ts, docs/PROTOCOL.md §2): integer ranges, fixed and sized byte
 * strings, the I0 device-id alphabet, text16, lists, and the whole-buffer decoder.
 */
import assert from 'node:assert/strict';
import { DEVICE_ID_PATTERN, isValidDeviceId } from '../../../lib';
import {
  Reader, decodeAll, deviceId, encode, fixed, list, sized, struct, text16, u16, u32, u64, u8, type Field,
} from '../../../lib/wire/fields';
import { assertReason } from '../fixtures';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

function roundTrip<T>(field: Field<T>, value: T): T {
  const r = decodeAll(field, encode(field, value), 1 << 20);
  assert.ok(r.ok, `round trip of ${String(value)} failed`);
  return r.value;
}

describe('wire/fields', () => {
  describe('unsigned integers', () => {
    const cases: [Field<number>, number][] = [[u8, 0xff], [u16, 0xffff], [u32, 0xffffffff]];
    for (const [field, max] of cases) {
      it(`${field.name}: encodes 0 and ${max} big-endian and rejects values outside 0..${max}`, () => {
        assert.equal(roundTrip(field, 0), 0);
        assert.equal(roundTrip(field, max), max);
        assert.equal(roundTrip(field, 0x5a), 0x5a);
        for (const bad of [-1, max + 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          assert.throws(() => encode(field, bad), RangeError, `${field.name} accepted ${bad}`);
        }
      });
      it(`${field.name}: every input shorter than the field is truncated`, () => {
        const full = encode(field, max);
        for (let n = 0; n < full.length; n++) assertReason(decodeAll(field, full.subarray(0, n), 64), 'truncated', `${n} bytes`);
      });
    }

    it('u16 and u32 are big-endian', () => {
      assert.deepEqual(encode(u16, 0x0102), bytes(1, 2));
      assert.deepEqual(encode(u32, 0x01020304), bytes(1, 2, 3, 4));
    });

    it('u64: 0, 2^64-1 and big-endian order; rejects negatives, 2^64 and plain numbers', () => {
      assert.equal(roundTrip(u64, 0n), 0n);
      assert.equal(roundTrip(u64, (1n << 64n) - 1n), (1n << 64n) - 1n);
      assert.deepEqual(encode(u64, 0x0102030405060708n), bytes(1, 2, 3, 4, 5, 6, 7, 8));
      assert.throws(() => encode(u64, -1n), RangeError);
      assert.throws(() => encode(u64, 1n << 64n), RangeError);
      assert.throws(() => encode(u64, 5 as unknown as bigint), RangeError);
      for (let n = 0; n < 8; n++) assertReason(decodeAll(u64, new Uint8Array(n), 64), 'truncated');
    });
  });

  describe('fixed and sized bytes', () => {
    it('fixed(n) takes exactly n bytes and refuses other lengths when encoding', () => {
      const f = fixed(3);
      assert.deepEqual(roundTrip(f, bytes(1, 2, 3)), bytes(1, 2, 3));
      assert.throws(() => encode(f, bytes(1, 2)), RangeError);
      assert.throws(() => encode(f, bytes(1, 2, 3, 4)), RangeError);
      assertReason(decodeAll(f, bytes(1, 2), 64), 'truncated');
      assertReason(decodeAll(f, bytes(1, 2, 3, 4), 64), 'trailing-data');
    });

    it('a decoded fixed or sized field is a copy, not a view into the input', () => {
      const input = bytes(0, 2, 7, 8);
      const r = decodeAll(sized(2, 10), input, 64);
      assert.ok(r.ok);
      input[2] = 0;
      assert.deepEqual(r.value, bytes(7, 8));
    });

    it('sized(prefix, max, min): encodes min..max, refuses the rest', () => {
      const f = sized(2, 4, 1);
      assert.deepEqual(encode(f, bytes(9)), bytes(0, 1, 9));
      assert.deepEqual(roundTrip(f, bytes(1, 2, 3, 4)), bytes(1, 2, 3, 4));
      assert.throws(() => encode(f, new Uint8Array(0)), RangeError);
      assert.throws(() => encode(f, new Uint8Array(5)), RangeError);
    });

    it('sized: a prefix above max is bad-length, below min is bad-length, beyond the input is truncated', () => {
      const f = sized(2, 4, 1);
      assertReason(decodeAll(f, bytes(0, 5, 1, 2, 3, 4, 5), 64), 'bad-length', 'prefix above max');
      assertReason(decodeAll(f, bytes(0xff, 0xff), 64), 'bad-length', 'prefix 65535 with nothing behind');
      assertReason(decodeAll(f, bytes(0, 0), 64), 'bad-length', 'prefix below min');
      assertReason(decodeAll(f, bytes(0, 3, 1, 2), 64), 'truncated', 'prefix beyond input');
      assertReason(decodeAll(f, bytes(0), 64), 'truncated', 'half a prefix');
      assertReason(decodeAll(f, bytes(0, 1, 1, 2), 64), 'trailing-data');
    });

    it('sized with a u32 prefix: a lying 0xffffffff length is truncated without allocating it', () => {
      const f = sized(4, 0xffffffff);
      assertReason(decodeAll(f, bytes(0xff, 0xff, 0xff, 0xff, 1, 2, 3), 64), 'truncated');
      assert.deepEqual(roundTrip(f, bytes(1, 2)), bytes(1, 2));
    });

    it('sized with min 0 accepts the empty string', () => {
      assert.deepEqual(roundTrip(sized(2, 10, 0), new Uint8Array(0)), new Uint8Array(0));
    });
  });

  describe('I0 device id field', () => {
    const allowed = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-';

    it('I0 accepts every character of [A-Za-z0-9_.-] and lengths 1 and 128', () => {
      for (const c of allowed) assert.equal(roundTrip(deviceId, c), c);
      assert.equal(roundTrip(deviceId, allowed), allowed);
      const max = 'x'.repeat(128);
      assert.equal(roundTrip(deviceId, max), max);
      assert.ok(isValidDeviceId('a') && isValidDeviceId(max) && DEVICE_ID_PATTERN.test('a.b_c-d'));
    });

    it('I0 decoding rejects every byte outside the alphabet as bad-id (all 256 byte values checked)', () => {
      for (let b = 0; b < 256; b++) {
        const r = decodeAll(deviceId, bytes(3, 0x61, b, 0x62), 64);
        if (allowed.includes(String.fromCharCode(b))) assert.ok(r.ok, `byte ${b} should be allowed`);
        else assertReason(r, 'bad-id', `byte 0x${b.toString(16)}`);
      }
    });

    it('I0 decoding rejects length 0 and 129..255 as bad-id from the length byte alone', () => {
      assertReason(decodeAll(deviceId, bytes(0), 64), 'bad-id', 'empty');
      // The length byte is checked before the bytes are read: no 129 bytes are needed.
      for (const n of [129, 200, 255]) assertReason(decodeAll(deviceId, bytes(n), 64), 'bad-id', `length ${n}`);
      assertReason(decodeAll(deviceId, concat129(), 512), 'bad-id', '129 valid characters');
      assertReason(decodeAll(deviceId, bytes(5, 0x61), 64), 'truncated');
    });

    it('I0 decoding rejects UTF-8 multi-byte ids (non-ASCII) as bad-id', () => {
      const utf8 = new Uint8Array(Buffer.from('dévice', 'utf8'));
      assertReason(decodeAll(deviceId, Uint8Array.of(utf8.length, ...utf8), 64), 'bad-id');
    });

    it('I0 encoding and isValidDeviceId refuse empty, 129 characters, non-ASCII, separators and wildcards', () => {
      for (const bad of ['', 'x'.repeat(129), 'dévice', 'a b', 'a/b', 'a+b', 'a#b', 'a\u0000', 'ａ', 'a\n', '$SYS']) {
        assert.equal(isValidDeviceId(bad), false, JSON.stringify(bad));
        assert.throws(() => encode(deviceId, bad), RangeError, JSON.stringify(bad));
      }
      for (const notString of [undefined, null, 42, ['a'], { id: 'a' }]) assert.equal(isValidDeviceId(notString), false);
    });
  });

  describe('text16', () => {
    const t = text16(10);

    it('round-trips UTF-8 text, counting bytes not characters', () => {
      assert.equal(roundTrip(t, 'plant/ä'), 'plant/ä');
      assert.deepEqual(encode(t, 'ä'), bytes(0, 2, 0xc3, 0xa4));
      assert.throws(() => encode(t, 'ääääää'), RangeError, '12 bytes > 10');
    });

    it('invalid UTF-8 is bad-field', () => {
      for (const bad of [[0xff], [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]]) {
        assertReason(decodeAll(t, Uint8Array.of(0, bad.length, ...bad), 64), 'bad-field', JSON.stringify(bad));
      }
    });

    it('a NUL character is bad-field', () => {
      assertReason(decodeAll(t, Uint8Array.of(0, 3, 0x61, 0, 0x62), 64), 'bad-field');
    });

    it('empty text is bad-length; longer than max is bad-length; beyond input is truncated', () => {
      assertReason(decodeAll(t, bytes(0, 0), 64), 'bad-length');
      assertReason(decodeAll(t, Uint8Array.of(0, 11, ...ascii('abcdefghijk')), 64), 'bad-length');
      assertReason(decodeAll(t, Uint8Array.of(0, 5, ...ascii('abc')), 64), 'truncated');
    });
  });

  describe('list', () => {
    const l = list(u8, 3);

    it('round-trips 1..max items', () => {
      assert.deepEqual(roundTrip(l, [7]), [7]);
      assert.deepEqual(roundTrip(l, [1, 2, 3]), [1, 2, 3]);
    });

    it('refuses to encode 0 or more than max items', () => {
      assert.throws(() => encode(l, []), RangeError);
      assert.throws(() => encode(l, [1, 2, 3, 4]), RangeError);
    });

    it('a count of 0 or above max is bad-length; fewer items than counted is truncated', () => {
      assertReason(decodeAll(l, bytes(0), 64), 'bad-length');
      assertReason(decodeAll(l, bytes(4, 1, 2, 3, 4), 64), 'bad-length');
      assertReason(decodeAll(l, bytes(255), 64), 'bad-length');
      assertReason(decodeAll(l, bytes(3, 1, 2), 64), 'truncated');
      assertReason(decodeAll(l, bytes(2, 1, 2, 3), 64), 'trailing-data');
    });

    it('the first failing item decides the reason', () => {
      const ids = list(deviceId, 3);
      assertReason(decodeAll(ids, bytes(2, 1, 0x20, 0), 64), 'bad-id');
    });
  });

  describe('struct and decodeAll', () => {
    const s = struct({ a: u8, id: deviceId, b: u16 });

    it('encodes fields in declaration order and decodes them back', () => {
      const enc = encode(s, { a: 1, id: 'x', b: 0x0203 });
      assert.deepEqual(enc, bytes(1, 1, 0x78, 2, 3));
      assert.deepEqual(roundTrip(s, { a: 1, id: 'x', b: 0x0203 }), { a: 1, id: 'x', b: 0x0203 });
    });

    it('I5 size is checked before any field: an oversized buffer of garbage is too-large, not bad-id', () => {
      const garbage = new Uint8Array(65).fill(0xff);
      assertReason(decodeAll(s, garbage, 64), 'too-large');
      assertReason(decodeAll(s, garbage, 65), 'bad-id');
      assertReason(decodeAll(s, new Uint8Array(64).fill(0xff), 64), 'bad-id', 'exactly at the limit is decoded');
    });

    it('trailing bytes after the last field are trailing-data', () => {
      assertReason(decodeAll(s, bytes(1, 1, 0x78, 2, 3, 0), 64), 'trailing-data');
    });

    it('the earliest failure is reported, later ones do not overwrite it', () => {
      const r = new Reader(bytes(1));
      assert.equal(r.fail('bad-id'), undefined);
      r.fail('truncated');
      assert.equal(r.failure, 'bad-id');
      assert.equal(r.take(1), undefined, 'a failed reader yields nothing more');
    });

    it('non-byte input is bad-field, never an exception', () => {
      for (const v of [undefined, null, 'PQ', [1, 2], { length: 3 }, Buffer.from('x').buffer]) {
        assertReason(decodeAll(s, v as unknown as Uint8Array, 64), 'bad-field', String(v));
      }
    });

    it('accepts a Buffer and a subarray with a non-zero byteOffset', () => {
      const enc = encode(s, { a: 9, id: 'abc', b: 7 });
      const padded = new Uint8Array(enc.length + 5);
      padded.set(enc, 3);
      const r1 = decodeAll(s, padded.subarray(3, 3 + enc.length), 64);
      const r2 = decodeAll(s, Buffer.from(enc), 64);
      assert.ok(r1.ok && r2.ok);
      assert.deepEqual(r1.value, { a: 9, id: 'abc', b: 7 });
      assert.deepEqual(r2.value, { a: 9, id: 'abc', b: 7 });
      const big = decodeAll(struct({ x: u64 }), Uint8Array.of(0, ...encode(u64, 0x0102030405060708n)).subarray(1), 64);
      assert.ok(big.ok);
      assert.equal(big.value.x, 0x0102030405060708n, 'u64 honours byteOffset');
    });
  });
});

function concat129(): Uint8Array {
  return Uint8Array.of(129, ...ascii('a'.repeat(129)));
}

/**
 * The bad-input table every decoder must pass (STYLE habit 8): every truncation, trailing bytes,
 * oversized input, wrong magic / version / type, and a few hundred seeded random inputs, raw
 * and behind a valid header. Always a reason from REASON_CODES, never an exception.
 */
import assert from 'node:assert/strict';
import { REASON_CODES, STRUCTURE_TYPES, type Reason, type Result, type StructureType } from '../../../lib';
import { assertReason, concat, prng, randomBytes, withByte } from '../fixtures';

export interface DecoderUnderTest {
  /** Structure type byte expected in the header. */
  type: StructureType;
  /** A valid encoding (called after `before` hooks ran). */
  valid: () => Uint8Array;
  decode: (bytes: Uint8Array) => Result<unknown>;
  /** Size limit the decoder applies; oversized input is built from it. */
  maxBytes: () => number;
  /** Seed for the random inputs. */
  seed: number;
}

function expectReason(r: Result<unknown>, what: string): Reason {
  assert.equal(r.ok, false, `${what}: accepted`);
  if (r.ok) throw new Error('unreachable');
  assert.ok(REASON_CODES.includes(r.reason), `${what}: reason ${String(r.reason)} not in REASON_CODES`);
  return r.reason;
}

export function badInputTable(d: DecoderUnderTest): void {
  describe('bad-input table', () => {
    it('the valid encoding decodes (the table starts from a good input)', () => {
      const r = d.decode(d.valid());
      assert.ok(r.ok, r.ok ? '' : `valid input refused: ${r.reason} ${r.detail ?? ''}`);
    });

    it('every truncation length 0..len-1 is truncated', () => {
      const v = d.valid();
      const seen = new Map<Reason, number>();
      for (let n = 0; n < v.length; n++) {
        const reason = expectReason(d.decode(v.slice(0, n)), `truncated to ${n} of ${v.length}`);
        seen.set(reason, (seen.get(reason) ?? 0) + 1);
        assert.equal(reason, 'truncated', `truncated to ${n} of ${v.length} bytes gave ${reason}`);
      }
      assert.equal(seen.get('truncated'), v.length);
    });

    it('trailing bytes (1, 2, 100) are trailing-data', () => {
      const v = d.valid();
      for (const extra of [1, 2, 100]) {
        assertReason(d.decode(concat(v, new Uint8Array(extra))), 'trailing-data', `${extra} trailing zero bytes`);
        assertReason(d.decode(concat(v, new Uint8Array(extra).fill(0x50))), 'trailing-data', `${extra} trailing bytes`);
      }
    });

    it('I5 input one byte over the limit is too-large, even if it starts with a valid encoding', () => {
      const v = d.valid();
      const max = d.maxBytes();
      assert.ok(v.length <= max);
      const over = concat(v, new Uint8Array(max + 1 - v.length));
      assert.equal(over.length, max + 1);
      assertReason(d.decode(over), 'too-large');
      assertReason(d.decode(new Uint8Array(max + 1).fill(0xff)), 'too-large', 'garbage over the limit');
      assertReason(d.decode(new Uint8Array(4 * max)), 'too-large', 'four times the limit');
    });

    it('wrong magic is bad-magic, wrong version is bad-version, wrong type is bad-type', () => {
      const v = d.valid();
      for (const m of [0x00, 0x51, 0x50 ^ 0x80]) assertReason(d.decode(withByte(v, 0, m)), 'bad-magic', `magic[0]=${m}`);
      for (const m of [0x00, 0x50, 0xff]) assertReason(d.decode(withByte(v, 1, m)), 'bad-magic', `magic[1]=${m}`);
      for (const ver of [0x00, 0x02, 0xff]) assertReason(d.decode(withByte(v, 2, ver)), 'bad-version', `version ${ver}`);
      const own = STRUCTURE_TYPES[d.type];
      for (const t of [0x00, 0x05, 0xff, ...Object.values(STRUCTURE_TYPES).filter((c) => c !== own)]) {
        assertReason(d.decode(withByte(v, 3, t)), 'bad-type', `type ${t}`);
      }
    });

    it('non-byte inputs are bad-field, not exceptions', () => {
      for (const x of [undefined, null, 'PQ', 42, [0x50, 0x51], {}]) {
        assertReason(d.decode(x as unknown as Uint8Array), 'bad-field', String(x));
      }
    });

    it('300 seeded random inputs (raw and behind a valid header) are refused with a known reason', () => {
      const rand = prng(d.seed);
      const v = d.valid();
      const reasons = new Set<Reason>();
      for (let i = 0; i < 300; i++) {
        const len = Math.floor(rand() * Math.min(v.length + 64, 4096));
        const input = randomBytes(rand, len);
        // Every third input keeps a valid header so the fields behind it are exercised too;
        // every fifth keeps a valid prefix of up to half the encoding (never all of it, so the
        // input cannot be a valid encoding by construction).
        if (i % 3 === 0 && input.length >= 4) input.set(v.subarray(0, 4), 0);
        if (i % 5 === 0) input.set(v.subarray(0, Math.min(input.length, Math.floor((rand() * v.length) / 2))), 0);
        reasons.add(expectReason(d.decode(input), `random input #${i} (${len} bytes)`));
      }
      assert.ok(reasons.size >= 3, `random inputs hit only ${[...reasons].join(', ')}`);
    });
  });
}

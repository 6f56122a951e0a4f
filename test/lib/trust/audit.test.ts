/**
 * I6: the audit log is tamper-evident against an attacker with write access to the file. Each
 * entry is chained to the previous line's hash and signed by the device key through the
 * SecurityProvider; the verifier names the first line that was edited, deleted, reordered,
 * inserted, truncated or signed by another key. lib/trust/audit.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SoftwareProvider, createIdentity, cryptoBackend, type IdentityBundle } from '../../../lib';
import {
  AUDIT_GENESIS, AUDIT_LABEL, AUDIT_LIMITS, AuditLogVerifier, buildEntry, canonicalBody, checkAuditLine, lineHash,
  verifyAuditLog, type AuditData, type AuditFailureReason, type AuditKey, type AuditSigner, type AuditVerdict,
} from '../../../lib/trust/audit';
import { T0, countCrypto, prng, randomBytes } from '../fixtures';

const DEVICE = 'gw-1';

function identity(tag: string, deviceId = DEVICE): IdentityBundle {
  memo[tag] ??= createIdentity({ deviceId, sigAlgorithm: 'ML-DSA-44' });
  return memo[tag];
}
const memo: Record<string, IdentityBundle> = {};

function keyOf(id: IdentityBundle, deviceId = id.deviceId): AuditKey {
  return { deviceId, sigAlgorithm: id.sigAlgorithm, publicKey: id.sigPublicKey };
}

const EVENTS: Array<[string, AuditData]> = [
  ['peer-trusted', { peer: 'sensor-1', epoch: 1, keyId: '00112233445566778899aabbccddeeff' }],
  ['rejected', { reason: 'bad-signature', peer: 'sensor-9', topic: 'plant/line1/temp' }],
  ['revoked', { seq: 4, added: 1 }],
  ['rotated', { peer: 'sensor-1', fromEpoch: 1, toEpoch: 2, keyId: 'ffeeddccbbaa99887766554433221100' }],
  ['state-rollback', { generation: 17, stored: 12 }],
  ['rejected', { reason: 'replay', peer: 'sensor-2', topic: 'plant/line2/rpm' }],
  ['peer-trusted', { peer: 'sensor-3', epoch: 7, keyId: '0102030405060708090a0b0c0d0e0f10' }],
];

/** Signs `events` as one log continuing from (seq, prev); returns the lines without newlines. */
async function buildLines(signer: AuditSigner, events = EVENTS, start = { seq: 0, prev: AUDIT_GENESIS, ts: T0 }): Promise<string[]> {
  const lines: string[] = [];
  let { seq, prev } = start;
  for (const [i, [event, data]] of events.entries()) {
    const built = await buildEntry({ seq, ts: start.ts + i * 1000, event, data, prev }, signer);
    lines.push(built.line);
    seq++;
    prev = built.hash;
  }
  return lines;
}

/** Re-signs lines[from..] with `signer`, fixing seq and prev so only the signature can tell. */
async function rechain(lines: string[], from: number, signer: AuditSigner): Promise<string[]> {
  const out = lines.slice(0, from);
  for (let i = from; i < lines.length; i++) {
    const e = JSON.parse(lines[i]) as { ts: number; event: string; data: AuditData };
    const prev = i === 0 ? AUDIT_GENESIS : lineHash(out[i - 1]);
    out.push((await buildEntry({ seq: i, ts: e.ts, event: e.event, data: e.data, prev }, signer)).line);
  }
  return out;
}

const file = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

function assertFails(v: AuditVerdict, line: number, reason: AuditFailureReason, what: string): void {
  assert.equal(v.ok, false, `${what}: accepted`);
  if (v.ok) return;
  assert.deepEqual({ line: v.line, reason: v.reason }, { line, reason }, `${what}: ${JSON.stringify(v)}`);
  assert.equal(v.entries, line - 1, `${what}: every line before the failing one verified`);
}

describe('signed audit log (I6)', function () {
  // The exhaustive tamper sweeps verify a PQ signature per changed byte: seconds, not milliseconds.
  this.timeout(180_000);
  let device: SoftwareProvider;
  let lines: string[];
  let key: AuditKey;

  before(async () => {
    device = new SoftwareProvider(identity('device'));
    key = keyOf(identity('device'));
    lines = await buildLines(device);
  });

  it('I6 a log signed by the device key verifies: entry count and head hash', () => {
    const v = verifyAuditLog(file(lines), key);
    assert.deepEqual(v, { ok: true, entries: EVENTS.length, head: lineHash(lines[lines.length - 1]) });
    assert.deepEqual(verifyAuditLog(Buffer.from(file(lines)), key), v, 'bytes and text give the same verdict');
    assert.deepEqual(verifyAuditLog('', key), { ok: true, entries: 0, head: AUDIT_GENESIS });
  });

  it('I6 the line is the documented canonical JSON, chained by SHA-256 and signed over the framed digest', async () => {
    const built = await buildEntry({ seq: 0, ts: T0, event: 'peer-trusted', data: { z: null, b: 'x', a: 1, ok: true }, prev: AUDIT_GENESIS }, device);
    assert.match(
      built.line,
      new RegExp(`^\\{"v":1,"seq":0,"ts":${T0},"event":"peer-trusted","data":\\{"a":1,"b":"x","ok":true,"z":null\\},` +
        `"prev":"0{64}","sig":"[A-Za-z0-9+/]+={0,2}"\\}$`),
    );
    assert.equal(Buffer.from(built.bytes).toString('utf8'), `${built.line}\n`);
    assert.equal(built.hash, createHash('sha256').update(built.line, 'utf8').digest('hex'));
    // The signature, recomputed independently: SHA-256(u16 len(label) ‖ label ‖ u32 len ‖ id ‖ u32 len ‖ body).
    const body = built.line.slice(0, built.line.indexOf(',"sig":"')) + '}';
    assert.equal(body, canonicalBody({ seq: 0, ts: T0, event: 'peer-trusted', data: { a: 1, b: 'x', ok: true, z: null }, prev: AUDIT_GENESIS }));
    const u16 = Buffer.alloc(2);
    u16.writeUInt16BE(AUDIT_LABEL.length);
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const digest = createHash('sha256')
      .update(u16).update(AUDIT_LABEL, 'ascii')
      .update(u32(DEVICE.length)).update(DEVICE, 'ascii')
      .update(u32(Buffer.byteLength(body))).update(body, 'utf8')
      .digest();
    const sig = Buffer.from(built.entry.sig, 'base64');
    assert.ok(cryptoBackend().verify('ML-DSA-44', sig, digest, key.publicKey));
    assert.equal(JSON.parse(lines[1]).prev, lineHash(lines[0]), 'prev is the hash of the previous line');
  });

  describe('I6 tampering is pinned to the exact line', () => {
    const cases: Array<{ name: string; line: number; reason: AuditFailureReason; tamper: (l: string[]) => Promise<string[]> | string[] }> = [
      {
        name: 'a data field of an entry is edited', line: 4, reason: 'bad-signature',
        tamper: (l) => l.map((x, i) => (i === 3 ? x.replace('"toEpoch":2', '"toEpoch":3') : x)),
      },
      { name: 'the time of an entry is edited', line: 3, reason: 'bad-signature', tamper: (l) => l.map((x, i) => (i === 2 ? x.replace(`"ts":${T0 + 2000}`, `"ts":${T0 + 2001}`) : x)) },
      { name: 'the event name is edited', line: 2, reason: 'bad-signature', tamper: (l) => l.map((x, i) => (i === 1 ? x.replace('"rejected"', '"peer-trusted"') : x)) },
      { name: 'an entry number is edited', line: 5, reason: 'bad-seq', tamper: (l) => l.map((x, i) => (i === 4 ? x.replace('"seq":4', '"seq":9') : x)) },
      { name: 'an entry is deleted', line: 4, reason: 'bad-seq', tamper: (l) => l.filter((_x, i) => i !== 3) },
      { name: 'the first entry is deleted', line: 1, reason: 'bad-seq', tamper: (l) => l.slice(1) },
      { name: 'two entries are swapped', line: 3, reason: 'bad-seq', tamper: (l) => [l[0], l[1], l[3], l[2], ...l.slice(4)] },
      {
        name: 'a forged entry is inserted with the right seq and prev (and the rest renumbered and re-chained)', line: 3, reason: 'bad-signature',
        tamper: async (l) => {
          const attacker = new SoftwareProvider(identity('attacker'));
          const forged = (await buildEntry({ seq: 2, ts: T0 + 1500, event: 'peer-trusted', data: { peer: 'evil' }, prev: lineHash(l[1]) }, attacker)).line;
          return rechain([l[0], l[1], forged, ...l.slice(2)], 3, attacker);
        },
      },
      {
        name: 'a forged entry is appended', line: EVENTS.length + 1, reason: 'bad-signature',
        tamper: async (l) => {
          const attacker = new SoftwareProvider(identity('attacker'));
          const forged = await buildEntry({ seq: l.length, ts: T0 + 9999, event: 'peer-trusted', data: { peer: 'evil' }, prev: lineHash(l[l.length - 1]) }, attacker);
          return [...l, forged.line];
        },
      },
      {
        name: 'the signatures of two entries are swapped', line: 2, reason: 'bad-signature',
        tamper: (l) => {
          const sigOf = (x: string) => (JSON.parse(x) as { sig: string }).sig;
          return l.map((x, i) => (i === 1 ? x.replace(sigOf(l[1]), sigOf(l[4])) : i === 4 ? x.replace(sigOf(l[4]), sigOf(l[1])) : x));
        },
      },
      {
        name: 'an edited entry is re-signed with the right chain but another key', line: 4, reason: 'bad-signature',
        tamper: async (l) => {
          const attacker = new SoftwareProvider(identity('attacker'));
          const edited = l.map((x, i) => (i === 3 ? x.replace('"peer":"sensor-1"', '"peer":"sensor-0"') : x));
          return rechain(edited, 3, attacker);
        },
      },
      { name: 'the whole log is signed by another device key', line: 1, reason: 'bad-signature', tamper: (l) => rechain(l, 0, new SoftwareProvider(identity('attacker'))) },
      {
        name: 'the whole log is signed by the same key pair for another device id', line: 1, reason: 'bad-signature',
        tamper: (l) => {
          const same = identity('device');
          const other: AuditSigner = { deviceId: 'gw-2', sigAlgorithm: same.sigAlgorithm, sign: (m) => device.sign(m) };
          return rechain(l, 0, other);
        },
      },
      {
        name: 'a genuine entry of the same device from another log replaces one', line: 4, reason: 'broken-chain',
        tamper: async (l) => {
          const other = await buildLines(device, EVENTS, { seq: 0, prev: AUDIT_GENESIS, ts: T0 + 77 });
          return l.map((x, i) => (i === 3 ? other[3] : x));
        },
      },
      {
        name: 'the first entry claims another predecessor', line: 1, reason: 'broken-chain',
        tamper: (l) => [l[0].replace(AUDIT_GENESIS, lineHash('x')), ...l.slice(1)],
      },
      {
        name: 'the last signature is re-spelled in base64 (same bytes, other unused bits)', line: EVENTS.length, reason: 'not-canonical',
        tamper: (l) => {
          const last = l[l.length - 1];
          const sig = (JSON.parse(last) as { sig: string }).sig;
          const stem = sig.replace(/=+$/, '');
          const digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
          // With padding, the last digit carries unused low bits; flipping one keeps the bytes.
          const respelled = stem.slice(0, -1) + digits[digits.indexOf(stem[stem.length - 1]) ^ 1] + sig.slice(stem.length);
          assert.deepEqual(Buffer.from(respelled, 'base64'), Buffer.from(sig, 'base64'), 'same signature bytes');
          return [...l.slice(0, -1), last.replace(sig, respelled)];
        },
      },
      { name: 'an entry is re-formatted with white space', line: 2, reason: 'not-canonical', tamper: (l) => l.map((x, i) => (i === 1 ? x.replace('"seq":1,', '"seq": 1,') : x)) },
      { name: 'a string is written with an escape', line: 2, reason: 'not-canonical', tamper: (l) => l.map((x, i) => (i === 1 ? x.replace('"rejected"', '"\\u0072ejected"') : x)) },
      { name: 'a member is duplicated', line: 3, reason: 'not-canonical', tamper: (l) => l.map((x, i) => (i === 2 ? x.replace('"seq":2,', '"seq":2,"seq":2,') : x)) },
      { name: 'an extra member is added', line: 3, reason: 'bad-format', tamper: (l) => l.map((x, i) => (i === 2 ? x.replace('"v":1,', '"v":1,"note":"x",') : x)) },
      { name: 'an empty line is inserted', line: 3, reason: 'bad-json', tamper: (l) => [l[0], l[1], '', ...l.slice(2)] },
      { name: 'an entry is replaced by garbage', line: 2, reason: 'bad-json', tamper: (l) => [l[0], 'garbage', ...l.slice(2)] },
    ];

    for (const c of cases) {
      it(`I6 ${c.name} → line ${c.line}: ${c.reason}`, async () => {
        assertFails(verifyAuditLog(file(await c.tamper([...lines])), key), c.line, c.reason, c.name);
      });
    }

    it('I6 the file is truncated in the middle of a line, or just before the last newline → truncated', () => {
      const whole = file(lines);
      const cutInLine5 = whole.slice(0, whole.indexOf(lines[4]) + 100);
      assertFails(verifyAuditLog(cutInLine5, key), 5, 'truncated', 'cut in line 5');
      assertFails(verifyAuditLog(whole.slice(0, -1), key), lines.length, 'truncated', 'last newline removed');
      assertFails(verifyAuditLog(whole.slice(0, -200), key), lines.length, 'truncated', 'last line cut');
    });

    it('I6 CRLF line endings and bytes that are not UTF-8 are refused', () => {
      assertFails(verifyAuditLog(lines.map((l) => `${l}\r\n`).join(''), key), 1, 'not-canonical', 'CRLF');
      const bytes = Buffer.concat([Buffer.from(`${lines[0]}\n`), Buffer.from([0xff, 0xfe, 0x0a])]);
      assertFails(verifyAuditLog(bytes, key), 2, 'bad-json', 'invalid UTF-8');
    });

    it('I6 / I5 an oversized line is refused before parsing and before any signature check', async () => {
      const huge = `${lines[0]}\n${'x'.repeat(AUDIT_LIMITS.maxLineBytes + 1)}\n`;
      const { value, counts } = await countCrypto(() => {
        const v = new AuditLogVerifier(key);
        v.write(`${lines[0]}\n`);
        const before = v.failed;
        v.write('x'.repeat(AUDIT_LIMITS.maxLineBytes + 1));
        return { before, after: v.failed, verdict: v.end() };
      });
      assert.deepEqual([value.before, value.after], [false, true], 'fails while the line is still being fed, without a newline');
      assertFails(value.verdict, 2, 'too-large', 'streamed');
      assert.equal(counts.verify, 1, 'only the first line was verified');
      assertFails(verifyAuditLog(huge, key), 2, 'too-large', 'whole');
    });
  });

  it('I6 every single-byte change anywhere in the file is detected (each byte, plus a seeded sample), and nothing throws', () => {
    const bytes = Buffer.from(file(lines.slice(0, 2)));
    for (let at = 0; at < bytes.length; at++) {
      const mutated = Buffer.from(bytes);
      mutated[at] ^= 0x01;
      assert.equal(verifyAuditLog(mutated, key).ok, false, `bit flip at byte ${at} was accepted`);
    }
    const rand = prng(6);
    for (let n = 0; n < 150; n++) {
      const at = Math.floor(rand() * bytes.length);
      const mutated = Buffer.from(bytes);
      mutated[at] = (mutated[at] + 1 + Math.floor(rand() * 255)) & 0xff;
      const v = verifyAuditLog(mutated, key);
      assert.equal(v.ok, false, `change at byte ${at} was accepted`);
    }
    for (let n = 0; n < 50; n++) {
      const v = verifyAuditLog(randomBytes(rand, 1 + Math.floor(rand() * 3000)), key);
      assert.equal(v.ok, false);
    }
    for (const junk of [null, undefined, 42, {}, [], 'x'] as unknown[]) {
      assert.equal(verifyAuditLog(junk as string, key).ok, false, String(junk));
    }
  });

  it('I6 feeding the file in pieces of any size gives the same verdict', () => {
    const good = Buffer.from(file(lines));
    const bad = Buffer.from(file([...lines.slice(0, 2), ...lines.slice(3)]));
    for (const input of [good, bad]) {
      const whole = verifyAuditLog(input, key);
      for (const size of [1, 7, 4096]) {
        const v = new AuditLogVerifier(key);
        for (let i = 0; i < input.length; i += size) v.write(input.subarray(i, i + size));
        assert.deepEqual(v.end(), whole, `chunks of ${size}`);
      }
    }
  });

  it('I6 an unusable verification key is a local error at line 0, never an exception', () => {
    const bad: unknown[] = [
      { ...key, publicKey: key.publicKey.subarray(1) },
      { ...key, sigAlgorithm: 'RSA' },
      { ...key, deviceId: 'bad id' },
      null,
    ];
    for (const k of bad) {
      const v = verifyAuditLog(file(lines), k as AuditKey);
      assert.equal(v.ok, false);
      if (!v.ok) assert.deepEqual([v.line, v.reason], [0, 'bad-key']);
    }
  });

  it('I6 checkAuditLine checks one line on its own (parse and signature, no chain)', () => {
    const r = checkAuditLine(Buffer.from(lines[3]), key);
    assert.ok(r.ok);
    if (r.ok) assert.deepEqual([r.entry.seq, r.entry.event, r.hash], [3, 'rotated', lineHash(lines[3])]);
    const other = checkAuditLine(Buffer.from(lines[3]), keyOf(identity('attacker')));
    assert.deepEqual(other, { ok: false, reason: 'bad-signature' });
  });

  it('I6 buildEntry refuses data that is not flat public scalars, and misnumbered genesis entries', async () => {
    const base = { seq: 1, ts: T0, event: 'rejected', prev: AUDIT_GENESIS };
    const bad: AuditData[] = [
      { nested: { a: 1 } as unknown as string },
      { list: [1] as unknown as string },
      { float: 1.5 },
      { big: 2 ** 60 },
      { long: 'x'.repeat(AUDIT_LIMITS.maxStringChars + 1) },
      { 'bad key': 1 },
      { __proto__x: 1 },
      Object.fromEntries(Array.from({ length: AUDIT_LIMITS.maxDataFields + 1 }, (_v, i) => [`k${i}`, i])),
    ];
    for (const data of bad) await assert.rejects(buildEntry({ ...base, data }, device), TypeError, JSON.stringify(Object.keys(data)));
    await assert.rejects(buildEntry({ ...base, event: 'Bad Event', data: {} }, device), TypeError);
    await assert.rejects(buildEntry({ ...base, seq: 0, prev: lineHash('x'), data: {} }, device), /genesis/);
    await assert.rejects(buildEntry({ ...base, ts: 1.5, data: {} }, device), TypeError);
  });
});

/**
 * The audit log file (lib/io/audit-log.ts): entries appended and chained across restarts, a
 * broken tail never continued silently, concurrent appends serialized, and a flood of
 * rejections bounded in entries (disk) and signatures (CPU). The clock is injected; nothing
 * waits on a timer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SoftwareProvider, createIdentity, type IdentityBundle } from '../../lib';
import { AuditLog, type AuditLogOptions } from '../../lib/io/audit-log';
import { AUDIT_GENESIS, buildEntry, lineHash, verifyAuditLog, type AuditKey } from '../../lib/trust/audit';

const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;

interface Entry {
  seq: number;
  ts: number;
  event: string;
  data: Record<string, unknown>;
  prev: string;
}

class Clock {
  constructor(public t = T0) {}
  readonly now = () => this.t;
}

/** A provider that counts signatures and can be held (to fill the queue) or made to fail. */
class CountingProvider {
  signs = 0;
  fail = false;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  constructor(private readonly inner: SoftwareProvider) {}
  get deviceId() {
    return this.inner.deviceId;
  }
  get sigAlgorithm() {
    return this.inner.sigAlgorithm;
  }
  get sigPublicKey() {
    return this.inner.sigPublicKey;
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (this.gate) await this.gate;
    if (this.fail) throw new Error('provider unavailable');
    this.signs++;
    return this.inner.sign(message);
  }
}

describe('audit log file (I6 adapter)', function () {
  this.timeout(60_000);
  let dir: string;
  let bundle: IdentityBundle;
  let key: AuditKey;
  let n = 0;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-audit-'));
    bundle = createIdentity({ deviceId: 'gw-1', sigAlgorithm: 'ML-DSA-44' });
    key = { deviceId: bundle.deviceId, sigAlgorithm: bundle.sigAlgorithm, publicKey: bundle.sigPublicKey };
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function setup(extra: Partial<AuditLogOptions> = {}) {
    const file = path.join(dir, `audit-${++n}.jsonl`);
    const provider = new CountingProvider(new SoftwareProvider(bundle));
    const clock = new Clock();
    const opts: AuditLogOptions = { file, provider, now: clock.now, ...extra };
    return { file, provider, clock, opts, open: (more: Partial<AuditLogOptions> = {}) => AuditLog.open({ ...opts, ...more }) };
  }

  const entries = (file: string): Entry[] =>
    fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Entry);

  it('I6 appends one signed, chained line per event; the file verifies and is private (0600)', async () => {
    const { file, open } = setup();
    const log = await open();
    assert.deepEqual(log.resume, { kind: 'new' });
    assert.equal(await log.record('peer-trusted', { peer: 'sensor-1', epoch: 1 }), 'written');
    assert.equal(await log.record('revoked', { seq: 0, added: 1 }), 'written');
    assert.equal(await log.rejected('bad-signature', { peer: 'sensor-9' }), 'written');
    await log.close();
    const v = verifyAuditLog(fs.readFileSync(file), key);
    assert.deepEqual(v, { ok: true, entries: 3, head: log.head.prev });
    assert.deepEqual(entries(file).map((e) => [e.seq, e.event]), [[0, 'peer-trusted'], [1, 'revoked'], [2, 'rejected']]);
    assert.deepEqual(entries(file)[2].data, { peer: 'sensor-9', reason: 'bad-signature' });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(await log.record('revoked', {}), 'closed', 'a closed log refuses quietly');
  });

  it('I6 resumes the chain after a restart: numbering and hashes continue, the whole file verifies', async () => {
    const { file, open } = setup();
    const first = await open();
    await first.record('peer-trusted', { peer: 'a' });
    await first.record('peer-trusted', { peer: 'b' });
    await first.close();
    const second = await open();
    assert.deepEqual(second.resume, { kind: 'continued', seq: 1 });
    await second.record('rotated', { peer: 'a', fromEpoch: 1, toEpoch: 2 });
    await second.close();
    assert.deepEqual(entries(file).map((e) => e.seq), [0, 1, 2]);
    assert.deepEqual(verifyAuditLog(fs.readFileSync(file), key), { ok: true, entries: 3, head: second.head.prev });
  });

  it('I6 concurrent records are written one at a time, in call order', async () => {
    const { file, open, provider } = setup();
    const log = await open();
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_v, i) => log.record('peer-trusted', { peer: `p${i}`, n: i })));
    await log.close();
    assert.ok(outcomes.every((o) => o === 'written'));
    assert.deepEqual(entries(file).map((e) => e.data.n), Array.from({ length: 40 }, (_v, i) => i));
    assert.equal(verifyAuditLog(fs.readFileSync(file), key).ok, true);
    assert.equal(provider.signs, 40);
  });

  it('I6 a cut-off last line is not continued: a new segment starts with log-resumed, and verify still points at the cut', async () => {
    const { file, open } = setup();
    const log = await open();
    for (const peer of ['a', 'b', 'c']) await log.record('peer-trusted', { peer });
    await log.close();
    // A crash in the middle of writing the fourth entry.
    const fourth = await buildEntry({ seq: 3, ts: T0, event: 'peer-trusted', data: { peer: 'd' }, prev: log.head.prev }, new SoftwareProvider(bundle));
    const partial = fourth.bytes.subarray(0, 500);
    const cutAt = fs.statSync(file).size;
    fs.appendFileSync(file, partial);

    const resumed = await open();
    assert.deepEqual(resumed.resume, { kind: 'new-segment', reason: 'truncated', line: 4, offset: cutAt });
    await resumed.record('peer-trusted', { peer: 'e' });
    await resumed.close();

    const v = verifyAuditLog(fs.readFileSync(file), key);
    assert.equal(v.ok, false);
    if (!v.ok) assert.deepEqual([v.line, v.reason, v.entries], [4, 'bad-json', 3], 'the cut line is reported, never hidden');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[3], Buffer.from(partial).toString('utf8'), 'the broken bytes are kept as they were');
    const segment = JSON.parse(lines[4]) as Entry;
    assert.deepEqual(
      [segment.seq, segment.prev, segment.event, segment.data],
      [0, AUDIT_GENESIS, 'log-resumed', { line: 4, offset: cutAt, reason: 'truncated', sha256: lineHash(partial) }],
    );
    // The new segment is itself a complete, verifiable log.
    assert.deepEqual(verifyAuditLog(lines.slice(4).join('\n'), key), { ok: true, entries: 2, head: resumed.head.prev });
  });

  it('I6 a forged last line (right seq and prev, another key) is not continued either', async () => {
    const { file, open } = setup();
    const log = await open();
    await log.record('peer-trusted', { peer: 'a' });
    await log.close();
    const attacker = new SoftwareProvider(createIdentity({ deviceId: 'gw-1', sigAlgorithm: 'ML-DSA-44' }));
    const forged = await buildEntry({ seq: 1, ts: T0, event: 'peer-trusted', data: { peer: 'evil' }, prev: log.head.prev }, attacker);
    const sizeBefore = fs.statSync(file).size;
    fs.appendFileSync(file, forged.bytes);
    const resumed = await open();
    assert.deepEqual(resumed.resume, { kind: 'new-segment', reason: 'bad-signature', line: 2, offset: sizeBefore });
    await resumed.close();
    const v = verifyAuditLog(fs.readFileSync(file), key);
    assert.equal(v.ok, false);
    if (!v.ok) assert.deepEqual([v.line, v.reason], [2, 'bad-signature']);
    assert.equal(entries(file)[2].event, 'log-resumed');
  });

  describe('rate limiting of rejected events', () => {
    it('I6 a flood of 10,000 rejections costs 10 entries and one summary: bounded disk and signatures', async () => {
      const { file, open, provider, clock } = setup();
      const log = await open();
      const counts = { written: 0, suppressed: 0 };
      const pending: Array<Promise<string>> = [];
      for (let i = 0; i < 10_000; i++) {
        clock.t = T0 + Math.floor(i / 200); // the whole flood inside one minute
        pending.push(log.rejected('bad-signature', { peer: 'intruder' }));
      }
      for (const o of await Promise.all(pending)) counts[o as keyof typeof counts]++;
      assert.deepEqual(counts, { written: 10, suppressed: 9_990 });
      await log.close();
      const all = entries(file);
      assert.equal(all.length, 11);
      assert.deepEqual(all.slice(0, 10).map((e) => e.event), Array(10).fill('rejected'));
      assert.deepEqual(all[10].event, 'rejected-suppressed');
      assert.deepEqual(all[10].data, { from: T0, reason: 'bad-signature', suppressed: 9_990, to: T0 + MINUTE });
      assert.equal(provider.signs, 11, 'one signature per written entry, none for suppressed ones');
      assert.ok(fs.statSync(file).size < 11 * 4096, 'the file stays small');
      assert.equal(verifyAuditLog(fs.readFileSync(file), key).ok, true);
    });

    it('I6 each reason has its own budget; other events are not limited', async () => {
      const { file, open } = setup();
      const log = await open();
      const pending: Array<Promise<string>> = [];
      for (let i = 0; i < 10_000; i++) pending.push(log.rejected(i % 2 === 0 ? 'replay' : 'not-authorized', { n: i }));
      for (let i = 0; i < 15; i++) pending.push(log.record('peer-trusted', { n: i }));
      await Promise.all(pending);
      await log.close();
      const byEvent = new Map<string, number>();
      for (const e of entries(file)) byEvent.set(`${e.event}/${e.data.reason ?? ''}`, (byEvent.get(`${e.event}/${e.data.reason ?? ''}`) ?? 0) + 1);
      assert.deepEqual(Object.fromEntries(byEvent), {
        'rejected/replay': 10, 'rejected/not-authorized': 10, 'peer-trusted/': 15,
        'rejected-suppressed/replay': 1, 'rejected-suppressed/not-authorized': 1,
      });
    });

    it('I6 when the window ends the summary is written before the next event, and a new budget starts', async () => {
      const { file, open, clock } = setup({ rejectedPerWindow: 2 });
      const log = await open();
      for (let i = 0; i < 5; i++) await log.rejected('replay');
      clock.t = T0 + MINUTE - 1;
      assert.equal(await log.rejected('replay'), 'suppressed', 'still inside the window');
      clock.t = T0 + MINUTE;
      assert.equal(await log.rejected('replay'), 'written');
      // tick() writes a due summary without waiting for another event.
      for (let i = 0; i < 3; i++) await log.rejected('replay');
      clock.t = T0 + 2 * MINUTE;
      log.tick();
      await log.flush();
      const all = entries(file);
      assert.deepEqual(all.map((e) => [e.event, e.data.suppressed ?? null]), [
        ['rejected', null], ['rejected', null], ['rejected-suppressed', 4], ['rejected', null], ['rejected', null], ['rejected-suppressed', 2],
      ]);
      await log.close();
      assert.equal(entries(file).length, 6, 'close adds nothing when no window has suppressed events');
      assert.equal(verifyAuditLog(fs.readFileSync(file), key).ok, true);
    });

    it('I6 a clock set back does not grant a new budget', async () => {
      const { file, open, clock } = setup({ rejectedPerWindow: 1 });
      const log = await open();
      clock.t = T0 + 10 * MINUTE;
      await log.rejected('replay');
      clock.t = T0; // set back
      assert.equal(await log.rejected('replay'), 'suppressed');
      await log.close();
      assert.deepEqual(entries(file).map((e) => e.event), ['rejected', 'rejected-suppressed']);
    });
  });

  it('I6 the write queue is bounded: overflow is counted and reported in one events-dropped entry', async () => {
    const { file, open, provider } = setup({ maxPending: 3 });
    const log = await open();
    provider.hold();
    const outcomes = Array.from({ length: 5 }, (_v, i) => log.record('peer-trusted', { n: i }));
    assert.equal(log.pendingCount, 3);
    provider.release();
    assert.deepEqual(await Promise.all(outcomes), ['written', 'written', 'written', 'dropped', 'dropped']);
    assert.equal(await log.record('revoked', { seq: 1 }), 'written');
    await log.close();
    assert.deepEqual(entries(file).map((e) => [e.event, e.data.count ?? e.data.n ?? null]), [
      ['peer-trusted', 0], ['peer-trusted', 1], ['peer-trusted', 2], ['events-dropped', 2], ['revoked', null],
    ]);
  });

  it('a signer failure stops the log without throwing: onError once, later records resolve failed', async () => {
    const errors: Error[] = [];
    const { file, open, provider } = setup({ onError: (e) => errors.push(e) });
    const log = await open();
    await log.record('peer-trusted', { peer: 'a' });
    provider.fail = true;
    assert.equal(await log.record('peer-trusted', { peer: 'b' }), 'failed');
    provider.fail = false;
    assert.equal(await log.record('peer-trusted', { peer: 'c' }), 'failed');
    assert.deepEqual(errors.map((e) => e.message), ['provider unavailable']);
    await log.close();
    // Nothing half-written: the file is still one valid log, and a new instance continues it.
    const again = await open();
    assert.deepEqual(again.resume, { kind: 'continued', seq: 0 });
    await again.close();
    assert.deepEqual(verifyAuditLog(fs.readFileSync(file), key).ok, true);
  });

  it('refuses malformed data at once (a programming error), and rejected events without a reason code', async () => {
    const { open } = setup();
    const log = await open();
    assert.throws(() => log.record('rejected', { reason: 'made-up' }), TypeError);
    assert.throws(() => log.record('rejected', {}), TypeError);
    assert.throws(() => log.record('peer-trusted', { payload: { nested: 1 } as unknown as string }), TypeError);
    assert.throws(() => log.record('peer-trusted', { blob: 'x'.repeat(300) }), TypeError);
    await log.close();
  });

  it('never writes secrets: the file holds no part of the identity\'s secret keys', async () => {
    const { file, open } = setup({ fsync: true });
    const log = await open();
    await log.record('peer-trusted', { peer: 'a' });
    await log.rejected('decrypt-failed', { peer: 'b', topic: 'plant/x' });
    await log.close();
    const text = fs.readFileSync(file, 'utf8');
    for (const secret of [bundle.sigSecretKey, bundle.kemSecretKey]) {
      for (const needle of [Buffer.from(secret).toString('base64').slice(0, 43), Buffer.from(secret).toString('hex').slice(0, 64)]) {
        assert.equal(text.includes(needle), false);
      }
    }
  });
});

/**
 * Durable state (lib/io/state-store.ts, docs/PROTOCOL.md §5.1): sealed trust and counter files
 * with generations, atomic writes, group commit, rollback and tamper detection. The crash
 * behaviour of the whole stack (kill -9 of a real process) is in test/crash/kill9.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ALL_KEYS, EMPTY_REVOCATIONS, SoftwareProvider, caPublicKeyToText, identityToJson, issueRevocation, resolveLimits,
  verifyAuditLog, type SecureSession,
} from '../../lib';
import { buildFromConfig, type LogLevel } from '../../lib/io/config';
import { STATE_FILES, StateStore, restoreInto, type StoreProvider } from '../../lib/io/state-store';
import { decodeTopicEnvelope } from '../../lib/wire/topic-envelope';
import { startAedes } from '../helpers/aedes';
import { T0, assertReason, device, introduce, session, testCa } from '../lib/fixtures';

const TOPIC = 'plant/line-1/temp';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-state-'));
}

/** A provider with in-memory monotonic counters, as a hardware one has. */
function withCounters(base: StoreProvider): StoreProvider & { values: Map<string, bigint> } {
  const values = new Map<string, bigint>();
  return {
    deviceId: base.deviceId,
    keyEpoch: base.keyEpoch,
    keyId: base.keyId,
    seal: (p, l) => base.seal(p, l),
    unseal: (s, l) => base.unseal(s, l),
    values,
    counters: {
      read: async (name) => values.get(name) ?? 0n,
      advance: async (name, value) => {
        if (value < (values.get(name) ?? 0n)) throw new Error('counter would go down');
        values.set(name, value);
      },
    },
  };
}

describe('io/state-store', function () {
  const gwId = () => device({ id: 'gw' });
  const sensorId = () => device({ id: 'sensor' });
  const dirs: string[] = [];
  const stores: StateStore[] = [];

  function newDir(): string {
    const d = tempDir();
    dirs.push(d);
    return d;
  }

  async function openStore(dir: string, provider: StoreProvider = new SoftwareProvider(gwId())): Promise<StateStore> {
    const store = await StateStore.open({ dir, provider });
    stores.push(store);
    return store;
  }

  /** A receiver session restored from `dir`, with its store attached (sealing through `provider`). */
  async function receiver(dir: string, provider: StoreProvider = new SoftwareProvider(gwId())): Promise<{ s: SecureSession; store: StateStore }> {
    const s = session(gwId());
    const store = await openStore(dir, provider);
    const r = await restoreInto(store, s, T0);
    assert.ok(r.ok, r.ok ? '' : r.message);
    return { s, store };
  }

  afterEach(async function () {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a fresh folder starts empty, writes its marker first, and a flush without changes writes nothing', async function () {
    const dir = newDir();
    const { store } = await receiver(dir);
    assert.ok(fs.existsSync(path.join(dir, STATE_FILES.marker)), 'marker exists before any state file');
    assert.ok(!fs.existsSync(path.join(dir, STATE_FILES.counters)));
    await store.flush();
    assert.equal(store.writes, 0);
    const mode = fs.statSync(dir).mode & 0o777;
    assert.equal(mode & 0o077, 0, 'folder is private');
  });

  it('restores trust and replay windows: a message accepted before the restart is refused after it', async function () {
    const dir = newDir();
    const sender = session(sensorId());
    const first = await receiver(dir);
    await introduce(first.s, sender);
    await introduce(sender, first.s);
    const envelopes: Uint8Array[] = [];
    for (let i = 0; i < 70; i++) envelopes.push(await sender.sealDirect(TOPIC, Buffer.from(`m${i}`), 'gw', T0));
    for (const e of envelopes) {
      const r = await first.s.open(TOPIC, e, T0);
      assert.ok(r.ok);
      await first.store.flush();
    }
    await first.store.close();
    for (const f of [STATE_FILES.trust, STATE_FILES.counters, STATE_FILES.marker]) {
      const outer = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(outer), ['format', 'part', 'deviceId', 'keyEpoch', 'keyId', 'sealed'], `${f}: only the header is in clear`);
      const sealed = Buffer.from(String(outer.sealed), 'base64');
      for (const needle of ['sensor', '"peers"', '"windows"']) assert.ok(!sealed.includes(needle), `${f} is encrypted (no ${needle})`);
      assert.equal(fs.statSync(path.join(dir, f)).mode & 0o077, 0, `${f} is private`);
    }

    const second = await receiver(dir);
    assert.deepEqual(second.s.listPeers().map((p) => p.deviceId), ['sensor'], 'trusted peer restored');
    for (const [i, e] of envelopes.entries()) assertReason(await second.s.open(TOPIC, e, T0), ['duplicate', 'replay'], `envelope ${i}`);
    const fresh = await sender.sealDirect(TOPIC, Buffer.from('new'), 'gw', T0);
    assert.ok((await second.s.open(TOPIC, fresh, T0)).ok, 'new messages still flow');
  });

  it('group commit: flushes during a write share the next single write; each flush waits for its own changes', async function () {
    const dir = newDir();
    const sender = session(sensorId());
    const { s, store } = await receiver(dir);
    await introduce(s, sender);
    await introduce(sender, s);
    const envelopes: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) envelopes.push(await sender.sealDirect(TOPIC, Buffer.from(`m${i}`), 'gw', T0));
    // A burst: 40 messages accepted, then every one asks for durability before release.
    for (const e of envelopes) assert.ok((await s.open(TOPIC, e, T0)).ok);
    await Promise.all(envelopes.map(() => store.flush()));
    assert.equal(store.writes, 1, '40 accepted messages, one write');

    // Changes made while a write is in flight: all their flushes share exactly one more write.
    let version = { ...s.stateVersion };
    const source = { get stateVersion() { return version; }, snapshotTrust: () => s.snapshotTrust(), snapshotCounters: () => s.snapshotCounters() };
    store.attach(source);
    version = { ...version, counters: version.counters + 1 };
    const inFlight = store.flush();
    const queued: Array<Promise<void>> = [];
    for (let i = 2; i <= 5; i++) {
      version = { ...version, counters: version.counters + 1 };
      queued.push(store.flush());
    }
    await Promise.all([inFlight, ...queued]);
    assert.equal(store.writes, 3, 'the in-flight write, then one coalesced write for four later flushes');
    store.attach(s);
    const before = store.writes;
    await store.flush();
    assert.equal(store.writes, before, 'nothing changed: no write');

    // One at a time (no overlap): one write per message.
    for (let i = 0; i < 3; i++) {
      assert.ok((await s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
      await store.flush();
    }
    assert.equal(store.writes, before + 3);
  });

  it('state-rollback: an older copy of the counters file put back is refused', async function () {
    const dir = newDir();
    const sender = session(sensorId());
    const first = await receiver(dir);
    await introduce(first.s, sender);
    await introduce(sender, first.s);
    const open = async (): Promise<void> => {
      assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
      await first.store.flush();
    };
    await open();
    const old = fs.readFileSync(path.join(dir, STATE_FILES.counters));
    await open();
    await open();
    await first.store.close();
    fs.writeFileSync(path.join(dir, STATE_FILES.counters), old);

    const store = await openStore(dir);
    const load = await store.load();
    assert.equal(load.ok, false);
    if (load.ok) return;
    assert.equal(load.problem, 'state-rollback');
    assert.equal(load.part, 'counters');
    assert.equal(load.stored, 1);
    assert.equal(load.expected, 3);
    assert.match(load.message, /state rollback: state-counters\.json is generation 1, but the generation marker says 3/);
    const r = await restoreInto(store, session(gwId()), T0);
    assert.ok(!r.ok && r.problem === 'state-rollback', 'restoreInto refuses too');
  });

  it('state-rollback: an older trust file, a deleted state file or a deleted marker are refused', async function () {
    const sender = session(sensorId());
    const other = session(device({ id: 'sensor-2' }));
    for (const attack of ['old trust', 'deleted counters', 'deleted marker'] as const) {
      const dir = newDir();
      const first = await receiver(dir);
      await introduce(first.s, sender);
      assert.ok((await first.s.open(TOPIC, await (await introduce(sender, first.s), sender).sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
      await first.store.flush();
      const oldTrust = fs.readFileSync(path.join(dir, STATE_FILES.trust));
      await introduce(first.s, other);
      await first.store.flush();
      await first.store.close();
      if (attack === 'old trust') fs.writeFileSync(path.join(dir, STATE_FILES.trust), oldTrust);
      if (attack === 'deleted counters') fs.rmSync(path.join(dir, STATE_FILES.counters));
      if (attack === 'deleted marker') fs.rmSync(path.join(dir, STATE_FILES.marker));
      const load = await (await openStore(dir)).load();
      assert.ok(!load.ok && load.problem === 'state-rollback', `${attack}: ${load.ok ? 'accepted' : load.message}`);
    }
  });

  it('a crash between a state file and the marker (file one generation ahead) is accepted and the marker caught up', async function () {
    const dir = newDir();
    const sender = session(sensorId());
    const first = await receiver(dir);
    await introduce(first.s, sender);
    await introduce(sender, first.s);
    assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('a'), 'gw', T0), T0)).ok);
    await first.store.flush();
    const marker = fs.readFileSync(path.join(dir, STATE_FILES.marker));
    assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('b'), 'gw', T0), T0)).ok);
    await first.store.flush();
    await first.store.close();
    fs.writeFileSync(path.join(dir, STATE_FILES.marker), marker); // as if killed before the marker rename
    fs.writeFileSync(path.join(dir, STATE_FILES.counters + '.tmp'), 'half-written');

    const store = await openStore(dir);
    const load = await store.load();
    assert.ok(load.ok, load.ok ? '' : load.message);
    assert.equal(load.generations.counters, 2);
    assert.ok(!fs.existsSync(path.join(dir, STATE_FILES.counters + '.tmp')), 'leftover temp file removed');
    await store.close();
    // The marker now says 2: putting generation 1 back would be caught.
    assert.ok((await (await openStore(dir)).load()).ok);
  });

  it('tampered, swapped or foreign state files are refused as state-unreadable, never trusted', async function () {
    const sender = session(sensorId());
    const make = async (): Promise<string> => {
      const dir = newDir();
      const first = await receiver(dir);
      await introduce(first.s, sender);
      await introduce(sender, first.s);
      assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
      await first.store.flush();
      await first.store.close();
      return dir;
    };
    const cases: Array<[string, (dir: string) => void, RegExp]> = [
      ['a flipped bit in the sealed bytes', (dir) => {
        const file = path.join(dir, STATE_FILES.counters);
        const o = JSON.parse(fs.readFileSync(file, 'utf8')) as { sealed: string };
        const b = Buffer.from(o.sealed, 'base64');
        b[b.length - 20] ^= 1;
        o.sealed = b.toString('base64');
        fs.writeFileSync(file, JSON.stringify(o));
      }, /state-counters\.json does not authenticate/],
      ['the trust file under the counters name', (dir) => {
        const t = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILES.trust), 'utf8')) as Record<string, unknown>;
        fs.writeFileSync(path.join(dir, STATE_FILES.counters), JSON.stringify({ ...t, part: 'counters' }));
      }, /state-counters\.json does not authenticate/],
      ['a file that is not JSON', (dir) => fs.writeFileSync(path.join(dir, STATE_FILES.trust), 'garbage'), /state-trust\.json is not JSON/],
      ['the marker edited', (dir) => fs.writeFileSync(path.join(dir, STATE_FILES.marker), '{"format":"pqc-iiot-state-file/1"}'), /state-generation\.json is not a state file/],
    ];
    for (const [what, tamper, message] of cases) {
      const dir = await make();
      tamper(dir);
      const load = await (await openStore(dir)).load();
      assert.ok(!load.ok && load.problem === 'state-unreadable', `${what}: ${load.ok ? 'accepted' : load.problem}`);
      assert.match(load.message, message, `${what}: ${load.message}`);
    }

    // The state of another identity in this folder (identity pasted over): named, not read.
    const dir = await make();
    const stranger = await openStore(dir, new SoftwareProvider(device({ id: 'intruder' })));
    const load = await stranger.load();
    assert.ok(!load.ok && load.problem === 'state-unreadable');
    assert.match(load.message, /sealed by gw key epoch 1 .*not by this identity \(intruder/);
  });

  it('a failed write rejects its callers, keeps the changes, and the next flush writes them', async function () {
    const dir = newDir();
    const real = new SoftwareProvider(gwId());
    let failSeal = false;
    let failMarker = 0;
    const provider: StoreProvider = {
      deviceId: real.deviceId, keyEpoch: real.keyEpoch, keyId: real.keyId, unseal: (s, l) => real.unseal(s, l),
      seal: async (p, l) => {
        if (failSeal || (l === 'state-generation' && failMarker-- > 0)) throw new Error('disk full (simulated)');
        return real.seal(p, l);
      },
    };
    const sender = session(sensorId());
    const { s, store } = await receiver(dir, provider);
    await introduce(s, sender);
    await introduce(sender, s);
    assert.ok((await s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
    failSeal = true;
    await assert.rejects(store.flush(), /disk full/);
    failSeal = false;
    await store.flush();
    // The marker follows off the critical path; if it fails, the next write retries it first
    // and fails too when it fails again, so a broken marker cannot go unnoticed.
    failMarker = 2;
    assert.ok((await s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('y'), 'gw', T0), T0)).ok);
    await store.flush();
    await assert.rejects(store.markerSettled(), /disk full/);
    assert.ok((await s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('z'), 'gw', T0), T0)).ok);
    await assert.rejects(store.flush(), /disk full/);
    await store.flush();
    await store.close();
    await assert.rejects(store.flush(), /closed/);
    const again = await receiver(dir, new SoftwareProvider(gwId()));
    assert.equal(again.s.listPeers().length, 1, 'the retried write holds the changes');
  });

  it('after a key rotation the previous epoch\'s state is set aside and the new key starts fresh; anything else stays refused', async function () {
    const dir = newDir();
    const sender = session(sensorId());
    const old = await receiver(dir);
    await introduce(old.s, sender);
    await introduce(sender, old.s);
    assert.ok((await old.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('x'), 'gw', T0), T0)).ok);
    await old.store.flush();
    await old.store.close();

    // Same device, same epoch, another key: not a rotation, refused.
    const impostor = await openStore(dir, new SoftwareProvider(device({ id: 'gw', variant: 'other' })));
    const refused = await impostor.load();
    assert.equal(refused.ok ? 'ok' : refused.problem, 'state-unreadable');
    await impostor.close();

    // Epoch 2 of the same device: the epoch-1 files are set aside, not deleted, not trusted.
    const rotated = await openStore(dir, new SoftwareProvider(device({ id: 'gw', epoch: 2 })));
    const loaded = await rotated.load();
    assert.ok(loaded.ok);
    assert.equal(loaded.retiredEpoch, 1);
    assert.equal(loaded.fresh, true);
    for (const f of Object.values(STATE_FILES)) {
      assert.ok(fs.existsSync(path.join(dir, `${f}.retired-epoch-1`)) || f === STATE_FILES.marker, `${f} kept for forensics`);
    }
    await rotated.close();

    // Back to the older epoch (rollback of the identity): the epoch-2 files stay refused.
    const back = await openStore(dir, new SoftwareProvider(gwId()));
    const again = await back.load();
    assert.equal(again.ok ? 'ok' : again.problem, 'state-unreadable');
  });

  it('one store per folder per process', async function () {
    const dir = newDir();
    await openStore(dir);
    await assert.rejects(StateStore.open({ dir, provider: new SoftwareProvider(gwId()) }), /already in use/);
  });

  it('with hardware counters there is no marker file, and restoring the whole folder is detected too', async function () {
    const sender = session(sensorId());
    const run = async (provider: StoreProvider): Promise<{ dir: string; snapshot: Map<string, Buffer> }> => {
      const dir = newDir();
      const first = await receiver(dir, provider);
      await introduce(first.s, sender);
      await introduce(sender, first.s);
      assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('a'), 'gw', T0), T0)).ok);
      await first.store.flush();
      const snapshot = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
      assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, Buffer.from('b'), 'gw', T0), T0)).ok);
      await first.store.flush();
      await first.store.close();
      // The whole folder put back from the older copy (backup restore, VM snapshot).
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
      for (const [f, b] of snapshot) fs.writeFileSync(path.join(dir, f), b);
      return { dir, snapshot };
    };

    const hardware = withCounters(new SoftwareProvider(gwId()));
    const hw = await run(hardware);
    assert.ok(!hw.snapshot.has(STATE_FILES.marker), 'no marker with hardware counters');
    assert.equal([...hardware.values.values()].sort().join(','), '1,2', 'trust at 1, counters at 2');
    const hwLoad = await (await openStore(hw.dir, hardware)).load();
    assert.ok(!hwLoad.ok && hwLoad.problem === 'state-rollback', 'hardware counters catch a whole-folder rollback');
    assert.match(hwLoad.message, /hardware counter says 2/);

    // Documented limit of the software marker: a consistent older copy of every file passes.
    const sw = await run(new SoftwareProvider(gwId()));
    const swLoad = await (await openStore(sw.dir)).load();
    assert.ok(swLoad.ok, 'software marker cannot see a whole-folder rollback (documented limit)');
  });
});

describe('io/config with a state folder (restore before connect, durable hook, audit log)', function () {
  it('no state folder available (null): "no-state-dir", after the identity and CA problems', function () {
    const settings = { broker: 'localhost', strict: true, caPublicKey: caPublicKeyToText(testCa().publicKey) };
    const none = buildFromConfig(settings, { identity: identityToJson(device({ id: 'gw' })) }, { ownerId: 'cfg', stateDir: null });
    assert.ok(!none.ok && none.problem === 'no-state-dir', 'never falls back to a temporary folder');
    const noIdentity = buildFromConfig(settings, {}, { ownerId: 'cfg', stateDir: null });
    assert.ok(!noIdentity.ok && noIdentity.problem === 'no-identity');
  });

  it('sends wait for the restore (no sequence reuse), the connection starts after it, and security events are audited', async function () {
    const broker = await startAedes();
    const dir = tempDir();
    const gw = device({ id: 'gw' });
    const logs: string[] = [];
    const build = () => buildFromConfig(
      { broker: '127.0.0.1', port: String(broker.port), strict: true, caPublicKey: caPublicKeyToText(testCa().publicKey) },
      { identity: identityToJson(gw) },
      { ownerId: 'cfg', stateDir: dir, clock: () => T0, reconnectPeriodMs: 100, log: (l: LogLevel, m: string) => logs.push(`${l}: ${m}`) },
    );
    const published: Array<{ topic: string; payload: Buffer }> = [];
    broker.broker.on('publish', (packet) => {
      if (packet.topic === 'plant/out') published.push({ topic: packet.topic, payload: Buffer.from(packet.payload as Buffer) });
    });
    const pub = (topic: string, payload: Uint8Array, retain = false): Promise<void> => new Promise((resolve, reject) => {
      broker.broker.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, dup: false, retain }, (e) => (e ? reject(e) : resolve()));
    });
    try {
      // Run 1: a peer is trusted, rotates, an unknown sender is rejected, a revocation applies.
      const first = build();
      assert.ok(first.ok);
      first.connection.register('node');
      assert.equal(first.connection.state, 'idle', 'held until the state is restored');
      const state = await first.ready;
      assert.ok(state.ok && state.persistent && state.fresh);
      assert.equal(first.auditMode, 'best-effort');
      const seq1 = await first.endpoint.send('plant/out', Buffer.from('one'), { recipients: [], qos: 1, retain: false });
      assert.equal(seq1, 1);
      const verdicts: string[] = [];
      const verdict = new Promise<void>((resolve) => first.endpoint.subscribe('plant/in', 1, (v) => {
        verdicts.push(v.ok ? 'ok' : v.rejection.reason);
        resolve();
      }, 'node'));
      const peer = (id: string, epoch: number) => new Promise<void>((resolve) => first.endpoint.on('peer', (p) => p.deviceId === id && p.keyEpoch === epoch && resolve()));
      await new Promise<void>((resolve) => first.connection.on('subscribed', (f) => f === 'plant/in' && resolve()));
      const trusted = peer('sensor', 1);
      await pub('pqc/keys/sensor', await session(device({ id: 'sensor' })).buildAnnouncement(T0), true);
      await trusted;
      await pub('plant/in', (await session(device({ id: 'stranger' })).sealTopic('plant/in', Buffer.from('x'), T0)).envelope);
      await verdict;
      assert.deepEqual(verdicts, ['unknown-sender']);
      const rotated = peer('sensor', 2);
      await pub('pqc/keys/sensor', await session(device({ id: 'sensor', epoch: 2 })).buildAnnouncement(T0), true);
      await rotated;
      const revoked = new Promise<void>((resolve) => first.endpoint.on('revocation', () => resolve()));
      await pub('pqc/revocations', issueRevocation(testCa(), EMPTY_REVOCATIONS, [{ deviceId: 'stranger', keyId: ALL_KEYS }], 'pqc/revocations', T0).bytes, true);
      await revoked;
      await first.close();

      const file = path.join(dir, 'audit-1.jsonl');
      assert.ok(verifyAuditLog(fs.readFileSync(file), { deviceId: 'gw', sigAlgorithm: gw.sigAlgorithm, publicKey: gw.sigPublicKey }).ok);
      const events = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; data: Record<string, unknown> });
      assert.deepEqual(events.map((e) => e.event), ['peer-trusted', 'rejected', 'rotated', 'revoked']);
      assert.deepEqual(events[1].data, { peer: 'stranger', reason: 'unknown-sender', topic: 'plant/in' });
      assert.deepEqual(events[2].data, { fromEpoch: 1, keyId: events[2].data.keyId, peer: 'sensor', toEpoch: 2 });
      assert.ok(logs.some((l) => /audit log .*best-effort/.test(l)), 'the log says the audit log is best-effort');

      // Run 2, same clock: a send issued before the restore finished must not reuse run 1's number.
      const second = build();
      assert.ok(second.ok);
      second.connection.register('node');
      const sending = second.endpoint.send('plant/out', Buffer.from('two'), { recipients: [], qos: 1, retain: false });
      const state2 = await second.ready;
      assert.ok(state2.ok && !state2.fresh);
      assert.deepEqual(second.session.listPeers().map((p) => [p.deviceId, p.keyEpoch]), [['sensor', 2]], 'trust restored, rotation kept');
      await sending;
      await second.close();
      const limits = resolveLimits({});
      const seqs = published.map((p) => {
        const d = decodeTopicEnvelope(new Uint8Array(p.payload), limits);
        assert.ok(d.ok);
        return d.value.seq;
      });
      assert.equal(seqs.length, 2);
      assert.ok(seqs[1] > seqs[0], `second run's first number ${seqs[1]} is above the first run's ${seqs[0]}`);
      assert.ok(logs.some((l) => /restored state from .*: 1 trusted peer\(s\)/.test(l)), logs.join('\n'));
    } finally {
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

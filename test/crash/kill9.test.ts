/**
 * Crash safety of the durable state (docs/PROTOCOL.md §5.1, issue "Durable state"): a child
 * process running the runtime core (session + state store + real MQTT connection and endpoint,
 * built by lib/io/config.ts; test/crash/child-fixture.ts) is SIGKILLed at various moments and
 * restarted on the same state folder, against an in-process aedes broker in this process.
 *
 * - receiver: captured envelopes replayed after each crash are never released twice, and new
 *   messages still flow;
 * - sender: the sequence numbers it publishes strictly increase across 7 crashes, with its clock
 *   set a day back after every restart;
 * - a rolled-back counters file stops the start with `state-rollback` (and an audit entry), a
 *   tampered one with `state-unreadable`.
 *
 * Event-driven: every wait is on a child's output line, its exit, or a broker event.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  SecureSession, SoftwareProvider, caPublicKeyToText, createCa, createIdentity, decodeDirectEnvelope, identityToJson, issueCertificate,
  resolveLimits, verifyAuditLog, type CaKeyPair, type IdentityBundle, type Role,
} from '../../lib';
import { STATE_FILES } from '../../lib/io/state-store';
import { decodeTopicEnvelope } from '../../lib/wire/topic-envelope';
import { decodeTopicKey } from '../../lib/wire/topic-key';
import { startAedes, type AedesBroker } from '../helpers/aedes';
import { prng } from '../lib/fixtures';

const FIXTURE = path.join(__dirname, 'child-fixture.js');
const DAY = 86_400_000;
const NOW = Date.now();

/** One run of the fixture: its stdout lines, read in order, and its exit. */
class Child {
  readonly lines: string[] = [];
  stderr = '';
  private read = 0;
  private wake: (() => void) | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;
  private readonly proc: ChildProcess;

  constructor(env: Record<string, string>) {
    this.proc = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      this.notify();
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        this.done = true;
        this.notify();
        resolve({ code, signal });
      });
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** The next line not read yet; fails if the process ends first. */
  async next(): Promise<string> {
    while (this.read >= this.lines.length) {
      if (this.done) throw new Error(`child exited before the next line; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return this.lines[this.read++];
  }

  /** Reads lines until one matches; returns it. */
  async until(predicate: (line: string) => boolean): Promise<string> {
    for (;;) {
      const line = await this.next();
      if (predicate(line)) return line;
    }
  }

  /** SIGKILL, as a crash or power cut; resolves once the process is gone and its output read. */
  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    const { signal, code } = await this.exited;
    assert.ok(signal === 'SIGKILL' || code !== null, 'child ended');
  }
}

function certified(ca: CaKeyPair, id: string, roles: Role): IdentityBundle {
  return issueCertificate(ca, createIdentity({ deviceId: id, sigAlgorithm: 'ML-DSA-44' }), {
    roles,
    topics: ['plant/#'],
    // Valid from one hour ago: a child whose clock is set a day back can only send because the
    // stored time floor keeps "now" where it was.
    notBefore: NOW - 3600_000,
    notAfter: NOW + 7 * DAY,
  });
}

function publish(broker: AedesBroker, topic: string, payload: Uint8Array, retain = false): Promise<void> {
  return new Promise((resolve, reject) => {
    broker.broker.publish(
      { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, dup: false, retain },
      (error) => (error ? reject(error) : resolve()),
    );
  });
}

describe('crash: kill -9 and restart on the same state folder', function () {
  let ca: CaKeyPair;
  let caText: string;
  let work: string;
  let broker: AedesBroker;
  const children: Child[] = [];

  function writeIdentity(bundle: IdentityBundle): string {
    const file = path.join(work, `${bundle.deviceId}.json`);
    fs.writeFileSync(file, identityToJson(bundle), { mode: 0o600 });
    return file;
  }

  function start(env: Record<string, string>): Child {
    const child = new Child({ PQC_FIXTURE_CA: caText, PQC_FIXTURE_PORT: String(broker.port), ...env });
    children.push(child);
    return child;
  }

  before(function () {
    ca = createCa();
    caText = caPublicKeyToText(ca.publicKey);
  });

  beforeEach(async function () {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-crash-'));
    broker = await startAedes();
  });

  afterEach(async function () {
    for (const c of children.splice(0)) await c.kill();
    await broker.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  describe('receiver', function () {
    const TOPIC = 'plant/crash/cmd';
    let sender: SecureSession;
    let env: Record<string, string>;

    beforeEach(async function () {
      const gw = certified(ca, 'gw', 'sub');
      const sensor = certified(ca, 'sensor', 'pub');
      sender = new SecureSession({ provider: new SoftwareProvider(sensor), caPublicKey: ca.publicKey });
      const gwLocal = new SecureSession({ provider: new SoftwareProvider(gw), caPublicKey: ca.publicKey });
      const intro = await sender.handleAnnouncement('pqc/keys/gw', await gwLocal.buildAnnouncement(Date.now()), Date.now());
      assert.ok(intro.ok);
      await publish(broker, 'pqc/keys/sensor', await sender.buildAnnouncement(Date.now()), true);
      env = {
        PQC_FIXTURE_ROLE: 'receiver', PQC_FIXTURE_IDENTITY: writeIdentity(gw), PQC_FIXTURE_STATE_DIR: path.join(work, 'state-gw'),
        PQC_FIXTURE_TOPIC: TOPIC, PQC_FIXTURE_PEER: 'sensor',
      };
    });

    /** Envelopes published ahead of the releases during a stream. */
    const WINDOW = 8;
    const seal = async (n: number): Promise<Array<{ bytes: Uint8Array; seq: string }>> => {
      const out: Array<{ bytes: Uint8Array; seq: string }> = [];
      for (let i = 0; i < n; i++) {
        const bytes = await sender.sealDirect(TOPIC, Buffer.from(`command ${i}`), 'gw', Date.now());
        const d = decodeDirectEnvelope(bytes, resolveLimits({}));
        assert.ok(d.ok);
        out.push({ bytes, seq: d.value.seq.toString() });
      }
      return out;
    };

    it('killed after 1, 17 and 60 released messages: no captured envelope is released twice, new messages still flow', async function () {
      const released = new Set<string>();
      const captured: Array<{ bytes: Uint8Array; seq: string }> = [];
      const release = (line: string): void => {
        const seq = line.slice(2);
        assert.ok(!released.has(seq), `seq ${seq} released twice`);
        released.add(seq);
      };
      const summary: string[] = [];

      let child = start(env);
      assert.match(await child.next(), /^ready peers=\d+ fresh=true$/);
      for (const killAt of [1, 17, 60]) {
        // A stream with up to WINDOW envelopes ahead of the releases, so the kill always lands
        // with messages in flight (received, being verified or being stored); kill as soon as
        // the killAt-th release is printed.
        const burst = await seal(killAt + 2 * WINDOW);
        let releasedInBurst = 0;
        let stop = false;
        let wakePublisher: (() => void) | undefined;
        let sent = 0;
        const publisher = (async () => {
          for (const [i, e] of burst.entries()) {
            while (!stop && i - releasedInBurst >= WINDOW) await new Promise<void>((resolve) => (wakePublisher = resolve));
            if (stop) return;
            captured.push(e);
            sent++;
            await publish(broker, TOPIC, e.bytes);
          }
        })();
        await child.until((line) => {
          if (line.startsWith('A ')) {
            release(line);
            releasedInBurst++;
            wakePublisher?.();
          }
          return releasedInBurst >= killAt;
        });
        await child.kill();
        stop = true;
        wakePublisher?.();
        await publisher;
        // Lines printed between the decision and the kill are releases too.
        for (const line of child.lines) {
          if (line.startsWith('A ') && !released.has(line.slice(2))) release(line);
        }
        const released_ = burst.filter((e) => released.has(e.seq)).length;
        summary.push(`kill at ${killAt}: ${released_} released, ${sent - released_} in flight`);

        child = start(env);
        assert.match(await child.next(), /^ready peers=1 fresh=false$/, 'trust restored before any message');
        // Replay every envelope captured so far, one at a time: each gets exactly one verdict.
        let again = 0;
        let lost = 0;
        for (const e of captured) {
          await publish(broker, TOPIC, e.bytes);
          const line = await child.next();
          if (released.has(e.seq)) {
            assert.match(line, /^R (duplicate|replay)$/, `replayed seq ${e.seq} (released before the crash) → ${line}`);
          } else if (line.startsWith('A ')) {
            // Verified but killed before it was stored and released: delivered now, once.
            release(line);
            again++;
          } else {
            // Stored but killed before its release: never delivered (at most once, never twice).
            assert.match(line, /^R (duplicate|replay)$/);
            lost++;
          }
        }
        summary.push(`restart: ${captured.length} replayed, none released twice, ${again} unreleased delivered now, ${lost} stored-unreleased dropped`);
      }
      // New messages still flow after the last restart.
      for (const e of await seal(5)) {
        await publish(broker, TOPIC, e.bytes);
        assert.equal(await child.next(), `A ${e.seq}`);
        released.add(e.seq);
      }
      console.log(`      ${summary.join('; ')}`);
    });

    it('a rolled-back counters file stops the start (state-rollback, audited); a tampered one too (state-unreadable)', async function () {
      const stateDir = env.PQC_FIXTURE_STATE_DIR;
      const counters = path.join(stateDir, STATE_FILES.counters);
      const deliver = async (child: Child, n: number): Promise<void> => {
        for (const e of await seal(n)) {
          await publish(broker, TOPIC, e.bytes);
          assert.equal(await child.next(), `A ${e.seq}`);
        }
      };
      let child = start(env);
      await child.until((l) => l.startsWith('ready'));
      await deliver(child, 3);
      await child.kill();
      const old = fs.readFileSync(counters);

      child = start(env);
      await child.until((l) => l.startsWith('ready'));
      await deliver(child, 3);
      await child.kill();
      const current = fs.readFileSync(counters);

      fs.writeFileSync(counters, old);
      child = start(env);
      assert.match(await child.next(), /^E state-rollback state rollback: state-counters\.json is generation \d+, but the generation marker says \d+/);
      assert.equal((await child.exited).code, 3);
      const auditFile = path.join(stateDir, 'audit-1.jsonl');
      const gw = JSON.parse(fs.readFileSync(env.PQC_FIXTURE_IDENTITY, 'utf8')) as { sigPublicKey: string };
      const verdict = verifyAuditLog(fs.readFileSync(auditFile), {
        deviceId: 'gw', sigAlgorithm: 'ML-DSA-44', publicKey: new Uint8Array(Buffer.from(gw.sigPublicKey, 'base64')),
      });
      assert.ok(verdict.ok, 'audit log verifies');
      const events = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; data: Record<string, unknown> });
      const rollback = events.find((e) => e.event === 'state-rollback');
      assert.ok(rollback, 'state-rollback recorded in the audit log');
      assert.equal(rollback.data.part, 'counters');
      assert.ok(events.some((e) => e.event === 'peer-trusted' && e.data.peer === 'sensor'), 'peer-trusted recorded');

      // The right file back: it starts again (the refusal did no damage).
      fs.writeFileSync(counters, current);
      child = start(env);
      assert.match(await child.next(), /^ready peers=1 fresh=false$/);
      await child.kill();

      const o = JSON.parse(fs.readFileSync(counters, 'utf8')) as { sealed: string };
      const b = Buffer.from(o.sealed, 'base64');
      b[40] ^= 0x01;
      fs.writeFileSync(counters, JSON.stringify({ ...o, sealed: b.toString('base64') }));
      child = start(env);
      assert.match(await child.next(), /^E state-unreadable state unreadable: state-counters\.json does not authenticate/);
      assert.equal((await child.exited).code, 3);
    });
  });

  describe('sender', function () {
    it('sequence numbers strictly increase across 7 kills, with the clock set a day back after each restart', async function () {
      const TOPIC = 'plant/crash/meter';
      const meter = certified(ca, 'meter', 'pub');
      const env = {
        PQC_FIXTURE_ROLE: 'sender', PQC_FIXTURE_IDENTITY: writeIdentity(meter), PQC_FIXTURE_STATE_DIR: path.join(work, 'state-meter'),
        PQC_FIXTURE_TOPIC: TOPIC,
      };
      const limits = resolveLimits({});
      const published: Array<{ run: number; kind: 'key' | 'envelope'; value: bigint }> = [];
      let run = 0;
      let envelopes = 0;
      let wake: (() => void) | undefined;
      broker.broker.on('publish', (packet) => {
        const payload = new Uint8Array(packet.payload as Buffer);
        if (packet.topic === TOPIC) {
          const d = decodeTopicEnvelope(payload, limits);
          assert.ok(d.ok, 'an envelope on the data topic');
          published.push({ run, kind: 'envelope', value: d.value.seq });
          envelopes++;
        } else if (packet.topic === `pqc/topic-keys/meter/${TOPIC}`) {
          const d = decodeTopicKey(payload, limits);
          assert.ok(d.ok, 'a key message');
          published.push({ run, kind: 'key', value: d.value.keySerial });
        } else {
          return;
        }
        const w = wake;
        wake = undefined;
        w?.();
      });
      const waitEnvelopes = async (child: Child, n: number): Promise<void> => {
        const died = child.exited.then(() => {
          throw new Error(`sender exited early; stderr:\n${child.stderr}`);
        });
        while (envelopes < n) await Promise.race([new Promise<void>((resolve) => (wake = resolve)), died]);
        died.catch(() => undefined);
      };

      const rand = prng(20250401);
      const runs = 8; // 7 kills mid-stream, then the last run is killed too
      for (run = 0; run < runs; run++) {
        const child = start({ ...env, PQC_FIXTURE_CLOCK_OFFSET_MS: String(run === 0 ? 0 : -DAY) });
        envelopes = 0;
        await waitEnvelopes(child, 1 + Math.floor(rand() * 25));
        await child.kill();
      }

      const values = published.map((p) => p.value);
      for (let i = 1; i < values.length; i++) {
        assert.ok(values[i] > values[i - 1], `number ${i} (${published[i].kind}, run ${published[i].run}) = ${values[i]} is not above ${values[i - 1]}`);
      }
      for (let r = 1; r < runs; r++) {
        const first = published.find((p) => p.run === r)!;
        const lastBefore = published.filter((p) => p.run < r).at(-1)!;
        assert.ok(first.value > lastBefore.value, `run ${r} continues above run ${r - 1}`);
        // Without the stored reservation, a clock a day back would start a day's worth below.
        assert.ok(first.value > BigInt(Date.now() - DAY) << 20n, 'the clock set back does not pull numbers down');
      }
      console.log(`      ${published.filter((p) => p.kind === 'envelope').length} envelopes and ${published.filter((p) => p.kind === 'key').length} key messages over ${runs} runs, all numbers strictly increasing`);
    });
  });
});

/**
 * Broker tests against a real mosquitto process (test/helpers/mosquitto.ts), MQTT 5 and 3.1.1,
 * direct and topic mode: a Node-RED flow (pqc-secure-out → mosquitto → pqc-secure-in with the
 * rejections output) and a plain MQTT client that sees everything on the broker, captures the
 * real envelopes from the wire and replays, tampers, re-routes and injects them.
 *
 * What must hold: output 1 carries exactly the legitimate messages, once each; every attack ends
 * on output 2 with a documented reason — except exact copies of accepted envelopes, which are
 * `duplicate` and counted quietly ("drop" in the status), as docs/PROTOCOL.md §5 says. The
 * expected reason of each attack is derived from the protocol's rules (§6.2, §8) and the bytes
 * captured on the wire. A fault test kills the broker while messages are sent and restarts it.
 *
 * The fault test runs on MQTT 3.1.1: it relies on the subscriber's persistent session (clean
 * session off), and under MQTT 5 a session only outlives the connection with a Session Expiry
 * Interval, which pqc-config does not send.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient } from 'mqtt';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import { REASON_CODES, type Reason } from '../../lib';
import type { Verdict } from '../../lib/io/endpoint';
import { startMosquitto, type MosquittoBroker, type MosquittoOptions } from '../helpers/mosquitto';
import {
  Inbox, configNode, credentialsFor, errorTexts, makeFixtures, readyConfig, waitConnected, waitForPeer, waitForStatus,
  waitSubscribed, type Fixtures,
} from '../nodes/node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule] as unknown as Array<(RED: never) => void>;

type Protocol = '4' | '5';
type Mode = 'direct' | 'topic';

const FILTER = 'plant/line1/#';
const TOPIC = 'plant/line1/temp';
const OTHER_TOPIC = 'plant/line1/pressure'; // the subscriber listens here too
const STANDBY_FILTER = 'plant/line2/#';
const UNWATCHED_TOPIC = 'plant/line9/temp'; // the subscriber does not listen here
const REPLAY_WINDOW = 2;
const MAX_ENVELOPE_BYTES = 65_536;
const TYPE_DIRECT = 0x03;
const TYPE_TOPIC = 0x07;

// --- the wire layout of envelopes (docs/PROTOCOL.md §2.4, §2.7, §2.9), read independently of lib ---

interface Layout {
  type: number;
  senderId: [number, number];
  seq: number;
  ciphertext: [number, number];
  signature: [number, number];
}

function layoutOf(b: Buffer): Layout {
  assert.equal(b.readUInt16BE(0), 0x5051, 'magic');
  const type = b[3];
  let o = 4;
  const senderId: [number, number] = [o + 1, o + 1 + b[o]];
  o = senderId[1] + 4 + 16 + 1; // key epoch, key id, sig alg
  let seq: number;
  if (type === TYPE_DIRECT) {
    o += 1 + b[o] + 16 + 1; // recipient id, recipient key id, kem alg
    seq = o;
    o += 8 + 8; // seq, timestamp
    o += 2 + b.readUInt16BE(o); // capsule
  } else {
    assert.equal(type, TYPE_TOPIC, 'envelope type');
    o += 8; // key serial
    seq = o;
    o += 8 + 8;
  }
  o += 12; // nonce
  const ciphertext: [number, number] = [o + 4, o + 4 + b.readUInt32BE(o)];
  o = ciphertext[1];
  // Auth trailer: kind 0x01 one signature; kind 0x02 (batch, §4.7) leaf index, leaf count and the
  // Merkle path before the signature over the batch root.
  const kind = b[o];
  assert.ok(kind === 0x01 || kind === 0x02, `auth kind ${kind}`);
  if (kind === 0x02) o += 2 + 32 * merklePathLength(b[o + 1], b[o + 2]);
  const signature: [number, number] = [o + 3, o + 3 + b.readUInt16BE(o + 1)];
  assert.equal(signature[1], b.length, 'the signature ends the envelope');
  return { type, senderId, seq, ciphertext, signature };
}

/** Depth of leaf `index` among `count` leaves; the left subtree holds the largest power of two below count. */
function merklePathLength(index: number, count: number): number {
  let depth = 0;
  while (count > 1) {
    let k = 1;
    while (k * 2 < count) k *= 2;
    if (index < k) count = k;
    else {
      index -= k;
      count -= k;
    }
    depth++;
  }
  return depth;
}

function seqOf(b: Buffer): bigint {
  return b.readBigUInt64BE(layoutOf(b).seq);
}

/** Topic envelopes: the serial of the topic key, the u64 just before seq. */
function keySerialOf(b: Buffer): bigint {
  assert.equal(b[3], TYPE_TOPIC);
  return b.readBigUInt64BE(layoutOf(b).seq - 8);
}

function flipped(b: Buffer, at: number, mask = 0xff): Buffer {
  const copy = Buffer.from(b);
  copy[at] ^= mask;
  return copy;
}

// --- what a plain client on the broker sees ----------------------------------------------------

class Wire {
  readonly seen: Array<{ topic: string; payload: Buffer }> = [];
  private readonly events = new EventEmitter();
  /** Messages this client itself is about to publish (topic + digest → count): not captured. */
  private readonly own = new Map<string, number>();

  constructor(client: MqttClient) {
    client.on('message', (topic, payload) => {
      const key = Wire.key(topic, payload);
      const pending = this.own.get(key) ?? 0;
      if (pending > 0) {
        this.own.set(key, pending - 1);
        return;
      }
      this.seen.push({ topic, payload: Buffer.from(payload) });
      this.events.emit('message');
    });
  }

  private static key(topic: string, payload: Buffer): string {
    return `${topic}\u0000${createHash('sha256').update(payload).digest('hex')}`;
  }

  /** The broker echoes what this client publishes on '#'; call before publishing it. */
  expectOwn(topic: string, payload: Buffer): void {
    const key = Wire.key(topic, payload);
    this.own.set(key, (this.own.get(key) ?? 0) + 1);
  }

  on(topic: string): Buffer[] {
    return this.seen.filter((m) => m.topic === topic).map((m) => m.payload);
  }

  async waitFor(topic: string, count: number): Promise<Buffer[]> {
    while (this.on(topic).length < count) await new Promise((resolve) => this.events.once('message', resolve));
    return this.on(topic);
  }
}

// --- verdicts at the secure in node ------------------------------------------------------------

/** Collects the verdicts of the gateway's endpoint for FILTER, in arrival order. */
class Verdicts {
  readonly list: Verdict[] = [];
  private readonly events = new EventEmitter();
  readonly listener = (verdict: Verdict): void => {
    this.list.push(verdict);
    this.events.emit('verdict');
  };

  async next(index: number): Promise<Verdict> {
    while (this.list.length <= index) await new Promise((resolve) => this.events.once('verdict', resolve));
    return this.list[index];
  }
}

function dropOf(statusText: string | undefined): number {
  const m = /drop (\d+)/.exec(String(statusText ?? ''));
  return m ? Number(m[1]) : 0;
}

type FlowNode = Record<string, unknown>;

interface Attack {
  name: string;
  topic: string;
  payload: Buffer;
  /** The documented reason; `duplicate` means a quiet drop. Undefined: any non-quiet documented reason. */
  expect?: Reason;
}

describe('broker: mosquitto, a plain client replaying, tampering and re-routing captured envelopes', function () {
  this.timeout(60_000);
  let fx: Fixtures;
  let broker: MosquittoBroker | undefined;
  const clients: MqttClient[] = [];

  before(function () {
    fx = makeFixtures();
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await helper.unload();
    await helper.stopServer();
    await broker?.stop();
    broker = undefined;
  });

  async function start(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
    broker = await startMosquitto(options);
    await helper.startServer();
    return broker;
  }

  function credentials(): Record<string, Record<string, string>> {
    return { cfgS: credentialsFor(fx.sensor), cfgG: credentialsFor(fx.gateway) };
  }

  async function loadFlow(protocol: Protocol, mode: Mode, cfgG: Record<string, unknown> = {}, filter = FILTER): Promise<{ ok: Inbox; rej: Inbox; flow: FlowNode[] }> {
    const port = broker!.port;
    const flow: FlowNode[] = [
      configNode('cfgS', port, fx.caText, { protocol }),
      configNode('cfgG', port, fx.caText, { protocol, replayWindow: String(REPLAY_WINDOW), maxEnvelopeBytes: String(MAX_ENVELOPE_BYTES), ...cfgG }),
      {
        id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: '', qos: '1', retain: '',
        recipients: mode === 'direct' ? 'gateway' : '', keyStrategy: 'seconds', keyThreshold: '3600', keyEpoch: '', wires: [],
      },
      { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: filter, qos: '1', datatype: 'utf8', rejections: true, outputs: 2, wires: [['ok'], ['rej']] },
      { id: 'ok', type: 'helper' },
      { id: 'rej', type: 'helper' },
    ];
    await helper.load(NODES, flow, credentials());
    const ok = new Inbox(helper.getNode('ok'));
    const rej = new Inbox(helper.getNode('rej'));
    const s = helper.getNode('cfgS');
    const g = helper.getNode('cfgG');
    await waitConnected(s);
    await waitConnected(g);
    await waitForPeer(s, 'gateway');
    await waitForPeer(g, 'sensor-1');
    await waitSubscribed(g, filter);
    await waitSubscribed(g, readyConfig(g).session.topicKeyFilter(filter));
    assert.equal(readyConfig(s).connection.protocolVersion, Number(protocol));
    return { ok, rej, flow };
  }

  async function plainClient(protocol: Protocol): Promise<MqttClient> {
    const client = await mqtt.connectAsync(broker!.url, { protocolVersion: protocol === '5' ? 5 : 4, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  }

  /** Sends one legitimate message and waits until output 1 has it. */
  async function sendLegit(ok: Inbox, topic: string, payload: string): Promise<void> {
    const before = ok.messages.length;
    helper.getNode('out').receive({ topic, payload });
    await ok.waitFor(before + 1);
  }

  for (const protocol of ['5', '4'] as const) {
    for (const mode of ['direct', 'topic'] as const) {
      it(`MQTT ${protocol === '5' ? '5' : '3.1.1'}, ${mode} mode: exactly the legitimate messages reach output 1, every attack output 2`, async function () {
        await start();
        const attacker = await plainClient(protocol);
        const wire = new Wire(attacker);
        await attacker.subscribeAsync('#', { qos: 1 });
        // The secure in node starts on a standby filter: the gateway is online and trusted, but
        // does not receive TOPIC yet — like a broker withholding a message to tamper with it.
        const { ok, rej, flow } = await loadFlow(protocol, mode, {}, STANDBY_FILTER);
        const out = helper.getNode('out');
        out.receive({ topic: TOPIC, payload: 'reading-w1' });
        out.receive({ topic: UNWATCHED_TOPIC, payload: 'reading-u1' });
        out.receive({ topic: UNWATCHED_TOPIC, payload: 'reading-u2' });
        const [withheld] = await wire.waitFor(TOPIC, 1);
        const unseen = await wire.waitFor(UNWATCHED_TOPIC, 2);

        // Now the node listens on FILTER (a partial deploy of that node only).
        const listening = flow.map((n) => (n.id === 'in' ? { ...n, topic: FILTER } : n));
        // The helper gives up waiting for "flows:started" after 300 ms; the subscription below is
        // the readiness that matters here, so a slow start is not a failure.
        await helper.setFlows(listening, 'nodes', credentials()).catch((error: Error) => {
          if (!/timeout waiting event/.test(error.message)) throw error;
        });
        const g = helper.getNode('cfgG');
        await waitSubscribed(g, FILTER);
        await waitSubscribed(g, readyConfig(g).session.topicKeyFilter(FILTER));
        if (mode === 'topic') {
          // The retained topic key reaches the gateway with its new subscription; handing the same
          // bytes to the session once more returns when the key is known (ok, or duplicate if the
          // subscription's copy was first), so the attacks below meet a subscriber that holds it.
          const keyTopic = readyConfig(g).session.topicKeyFilter(TOPIC).replace('+', 'sensor-1');
          const [keyMessage] = await wire.waitFor(keyTopic, 1);
          const known = await readyConfig(g).session.handleKeyMessage(keyTopic, keyMessage, Date.now());
          assert.ok(known.ok || known.reason === 'duplicate', `topic key: ${known.ok ? 'ok' : known.reason}`);
        }
        // With the key at hand, a topic-mode subscriber runs AES-GCM (header and topic in the AAD)
        // before the signature, so forged bytes under the key fail there; direct mode checks the
        // signature first (docs/PROTOCOL.md §6.2, §6.4).
        const sealedCheck: Reason = mode === 'topic' ? 'decrypt-failed' : 'bad-signature';
        const inNode = helper.getNode('in');
        // Sees the very verdict the node gets, including the reason of quiet drops.
        const verdicts = new Verdicts();
        readyConfig(g).endpoint.subscribe(FILTER, 1, verdicts.listener, 'attack-observer');

        const tally = new Map<string, number>();
        let quiet = 0;
        let attackCount = 0;
        const attack = async (a: Attack): Promise<void> => {
          attackCount++;
          const index = verdicts.list.length;
          const rejected = rej.messages.length;
          wire.expectOwn(a.topic, a.payload);
          await attacker.publishAsync(a.topic, a.payload, { qos: 1 });
          const v = await verdicts.next(index);
          const label = `${a.name}: ${v.ok ? 'accepted' : v.rejection.reason}`;
          assert.ok(!v.ok, label);
          if (v.ok) return;
          if (a.expect === 'duplicate') {
            assert.ok(v.quiet && v.rejection.reason === 'duplicate', label);
            quiet++;
            await waitForStatus(inNode, (st) => dropOf(st.text) === quiet);
            return;
          }
          assert.ok(!v.quiet, `${label}: dropped quietly`);
          assert.ok(REASON_CODES.includes(v.rejection.reason), `${label}: not a documented reason`);
          if (a.expect) assert.equal(v.rejection.reason, a.expect, a.name);
          const msg = (await rej.waitFor(rejected + 1))[rejected];
          const payload = msg.payload as Record<string, unknown>;
          assert.equal(payload.reason, v.rejection.reason, a.name);
          assert.equal(payload.topic, a.topic, a.name);
          assert.equal(msg.topic, a.topic, a.name);
          assert.equal(typeof payload.description, 'string');
          if (a.expect === 'unknown-sender') assert.equal(payload.sender, 'rensor-1', 'the claimed (unverified) sender');
          if (a.expect === 'bad-signature' || a.expect === 'decrypt-failed') assert.equal(payload.sender, 'sensor-1', 'the claimed sender');
          tally.set(v.rejection.reason, (tally.get(v.rejection.reason) ?? 0) + 1);
        };

        // 1. The withheld envelope, tampered before "delivery": its sequence number is still fresh,
        //    so only the cryptography can stop it — the signature over header, ciphertext and topic,
        //    and in topic mode first AES-GCM under the topic key.
        const W = layoutOf(withheld);
        assert.equal(withheld.subarray(...W.senderId).toString(), 'sensor-1', 'layout read the sender id');
        await attack({ name: 'withheld: ciphertext', topic: TOPIC, payload: flipped(withheld, (W.ciphertext[0] + W.ciphertext[1]) >> 1), expect: sealedCheck });
        await attack({ name: 'withheld: GCM tag', topic: TOPIC, payload: flipped(withheld, W.ciphertext[1] - 1), expect: sealedCheck });
        await attack({ name: 'withheld: signature', topic: TOPIC, payload: flipped(withheld, (W.signature[0] + W.signature[1]) >> 1), expect: 'bad-signature' });
        await attack({ name: 'withheld: timestamp', topic: TOPIC, payload: flipped(withheld, W.seq + 12, 0x01), expect: sealedCheck });
        await attack({ name: 'withheld: re-routed', topic: OTHER_TOPIC, payload: withheld, expect: 'bad-signature' });
        // No key of the sender for OTHER_TOPIC, and the unseen envelopes name a newer key serial
        // than TOPIC's: nothing to decrypt with, so the signature (bound to the topic) decides.
        if (mode === 'topic') for (const e of unseen) assert.ok(keySerialOf(e) > keySerialOf(withheld));
        for (const [i, e] of unseen.entries()) {
          await attack({ name: `unseen envelope re-routed (${i})`, topic: i === 0 ? TOPIC : OTHER_TOPIC, payload: e, expect: 'bad-signature' });
        }

        // 2. Legitimate traffic, one at a time so the replay window sees it in order.
        const legit = ['reading-1', 'reading-2', 'reading-3', 'reading-4'];
        for (const p of legit) await sendLegit(ok, TOPIC, p);
        const captured = (await wire.waitFor(TOPIC, 1 + legit.length)).slice(1);
        assert.equal(wire.on(TOPIC).length, 1 + legit.length, 'the sensor published nothing else there');
        for (const e of [withheld, ...captured, ...unseen]) {
          assert.equal(e[3], mode === 'direct' ? TYPE_DIRECT : TYPE_TOPIC, 'envelope type on the wire');
          assert.ok(!e.includes(Buffer.from('reading-')), 'no plaintext on the wire');
        }
        const seqs = captured.map(seqOf);
        const lastSeq = seqs.reduce((a, b) => (b > a ? b : a));
        const last = captured[captured.length - 1];
        assert.equal(seqOf(last), lastSeq, 'in order on the wire');
        const L = layoutOf(last);
        const window = BigInt(REPLAY_WINDOW);

        // 3. Replays of every accepted envelope, same topic: §5 decides duplicate (quiet) or replay.
        for (const [i, e] of captured.entries()) {
          await attack({ name: `replay of ${legit[i]}`, topic: TOPIC, payload: e, expect: lastSeq - seqs[i] < window ? 'duplicate' : 'replay' });
        }
        // The withheld original, released late: older than the window now.
        assert.ok(lastSeq - seqOf(withheld) >= window);
        await attack({ name: 'withheld: released beyond the window', topic: TOPIC, payload: withheld, expect: 'replay' });

        // 4. Tampering an accepted envelope, one region at a time.
        await attack({ name: 'header: magic', topic: TOPIC, payload: flipped(last, 0), expect: 'bad-magic' });
        await attack({ name: 'header: version', topic: TOPIC, payload: flipped(last, 2), expect: 'bad-version' });
        await attack({ name: 'header: type', topic: TOPIC, payload: flipped(last, 3), expect: 'bad-type' });
        await attack({ name: 'sender id: another valid id', topic: TOPIC, payload: flipped(last, L.senderId[0], 0x01), expect: 'unknown-sender' });
        await attack({ name: 'sender id: invalid character', topic: TOPIC, payload: flipped(last, L.senderId[0] + 1, 0x65 ^ 0x21), expect: 'bad-id' });
        await attack({ name: 'seq raised', topic: TOPIC, payload: flipped(last, L.seq, 0x40), expect: sealedCheck });
        await attack({ name: 'seq lowered below the window', topic: TOPIC, payload: flipped(last, L.seq, last[L.seq]), expect: 'replay' });
        await attack({ name: 'seq: low bit of an old number', topic: TOPIC, payload: flipped(captured[0], layoutOf(captured[0]).seq + 7, 0x01), expect: 'replay' });
        // Sequence number already spent: §6.2 step 10 stops these before the signature check.
        await attack({ name: 'accepted: ciphertext', topic: TOPIC, payload: flipped(last, (L.ciphertext[0] + L.ciphertext[1]) >> 1), expect: 'duplicate' });
        await attack({ name: 'accepted: signature', topic: TOPIC, payload: flipped(last, (L.signature[0] + L.signature[1]) >> 1), expect: 'duplicate' });
        await attack({ name: 'accepted: re-routed', topic: OTHER_TOPIC, payload: last, expect: 'duplicate' });
        await attack({ name: 'truncated', topic: TOPIC, payload: last.subarray(0, last.length - 10), expect: 'truncated' });
        await attack({ name: 'trailing byte', topic: TOPIC, payload: Buffer.concat([last, Buffer.from([0])]), expect: 'trailing-data' });

        // 5. Injection.
        await attack({ name: 'garbage text', topic: TOPIC, payload: Buffer.from('{"temperature": 99.9, "unit": "C"}'), expect: 'bad-magic' });
        // After the 4-byte header: a sender id length of 0xa5 (165 > 128).
        await attack({ name: 'garbage after a valid header', topic: OTHER_TOPIC, payload: Buffer.concat([last.subarray(0, 4), Buffer.alloc(60, 0xa5)]), expect: 'bad-id' });
        await attack({ name: 'empty payload', topic: TOPIC, payload: Buffer.alloc(0) });
        await attack({ name: 'oversized garbage', topic: TOPIC, payload: Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x42), expect: 'too-large' });
        await attack({ name: 'oversized envelope', topic: TOPIC, payload: Buffer.concat([last, Buffer.alloc(MAX_ENVELOPE_BYTES)]), expect: 'too-large' });

        // A last legitimate message on the same path proves everything before it was handled.
        await sendLegit(ok, TOPIC, 'reading-5');
        const received = ok.messages.map((m) => m.payload as string);
        assert.deepEqual([...received].sort(), [...legit, 'reading-5'].sort(), 'exactly the legitimate messages, once each');
        for (const m of ok.messages) {
          assert.equal((m.pqc as { sender: string }).sender, 'sensor-1');
          assert.equal(m.topic, TOPIC);
        }
        const rejectedCount = [...tally.values()].reduce((a, b) => a + b, 0);
        assert.equal(rej.messages.length, rejectedCount);
        assert.equal(rejectedCount + quiet, attackCount);
        assert.equal(verdicts.list.length, attackCount + legit.length + 1, 'one verdict per message');
        await waitForStatus(inNode, (st) => st.text === `ok ${legit.length + 1} · rej ${rejectedCount} · drop ${quiet}`);
        for (const id of ['cfgS', 'cfgG', 'out', 'in']) assert.deepEqual(errorTexts(helper.getNode(id)), [], `${id} reported an error`);
        readyConfig(g).endpoint.removeOwner('attack-observer');
        if (process.env.PQC_ATTACK_SUMMARY) {
          const reasons = [...tally].sort().map(([r, n]) => `${r} ×${n}`).join(', ');
          console.log(`      ${attackCount} attacks: ${rejectedCount} on output 2 (${reasons}), ${quiet} quiet duplicates; ${received.length} legitimate delivered once each`);
        }
      });
    }
  }

  for (const mode of ['direct', 'topic'] as const) {
    it(`fault (MQTT 3.1.1, ${mode} mode): messages sent while the broker is down are queued, then arrive exactly once after its restart`, async function () {
      // The subscriber keeps a persistent session, and mosquitto saves it at once, so the broker
      // holds messages for it whichever of the two reconnects first after the restart.
      await start({ persistence: true, autosaveAfterChanges: 1 });
      const { ok } = await loadFlow('4', mode, { cleansession: false, clientid: `pqc-fault-gateway-${mode}` });
      await sendLegit(ok, TOPIC, 'before');

      const sensor = readyConfig(helper.getNode('cfgS')).connection;
      const gateway = readyConfig(helper.getNode('cfgG')).connection;
      const down = (c: typeof sensor) =>
        new Promise<void>((resolve) => {
          if (!c.connected) return resolve();
          const stop = c.onStatus((s) => {
            if (s !== 'connected') {
              stop();
              resolve();
            }
          });
        });
      const bothDown = Promise.all([down(sensor), down(gateway)]);
      await broker!.kill();
      await bothDown;

      // Observe the out node handing its envelopes to the connection.
      const published = new EventEmitter();
      let dataPublishes = 0;
      let allPublishes = 0;
      const originalPublish = sensor.publish.bind(sensor);
      sensor.publish = (topic, payload, options) => {
        const pending = originalPublish(topic, payload, options);
        allPublishes++;
        if (topic === TOPIC) dataPublishes++;
        published.emit('publish');
        return pending;
      };
      const queued = ['q1', 'q2', 'q3', 'q4', 'q5'];
      for (const p of queued) helper.getNode('out').receive({ topic: TOPIC, payload: p });
      while (dataPublishes < queued.length) await new Promise((resolve) => published.once('publish', resolve));
      assert.ok(!sensor.connected);
      assert.equal(sensor.queuedCount, allPublishes, 'every publish waits in the outbound queue');
      assert.deepEqual(errorTexts(helper.getNode('out')), [], 'nothing was refused');
      assert.equal(ok.messages.length, 1);

      await broker!.restart();
      await ok.waitFor(1 + queued.length);
      await sendLegit(ok, TOPIC, 'after');
      assert.deepEqual(ok.messages.map((m) => m.payload).sort(), ['before', ...queued, 'after'].sort(), 'each queued message exactly once');
      assert.equal(sensor.queuedCount, 0);
      await waitForStatus(helper.getNode('out'), (s) => s.text === `sent ${queued.length + 2}`);
      assert.deepEqual(errorTexts(helper.getNode('out')), []);
    });
  }
});

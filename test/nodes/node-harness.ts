/**
 * Shared pieces of the node tests: identities made once per process (key generation is slow),
 * a broker (and Node-RED runtime) per test, flow builders, and event-driven waits on node status,
 * node errors, helper-node inputs and broker events. Nothing here waits on a timer.
 */
import type { Aedes, AedesPublishPacket } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import helper, { type TestNode } from 'node-red-node-test-helper';
import {
  caPublicKeyToText, createCa, createIdentity, identityToJson, issueCertificate,
  type CaKeyPair, type IdentityBundle, type Role,
} from '../../lib';
import type { ConfigOutcome } from '../../lib/io/config';
import { startAedes, type AedesBroker } from '../helpers/aedes';

export const NOW = Date.now();

export interface Fixtures {
  ca: CaKeyPair;
  caText: string;
  sensor: IdentityBundle;
  gateway: IdentityBundle;
  /** Identity without certificate (strict mode must refuse it). */
  uncertified: IdentityBundle;
}

let fixtures: Fixtures | undefined;

function certified(ca: CaKeyPair, id: string, roles: Role): IdentityBundle {
  return issueCertificate(ca, createIdentity({ deviceId: id, sigAlgorithm: 'ML-DSA-44' }), {
    roles,
    topics: ['plant/#'],
    notBefore: NOW - 3600_000,
    notAfter: NOW + 7 * 86400_000,
  });
}

export function makeFixtures(): Fixtures {
  if (!fixtures) {
    const ca = createCa();
    fixtures = {
      ca,
      caText: caPublicKeyToText(ca.publicKey),
      sensor: certified(ca, 'sensor-1', 'pub'),
      gateway: certified(ca, 'gateway', 'sub'),
      uncertified: createIdentity({ deviceId: 'loner', sigAlgorithm: 'ML-DSA-44' }),
    };
  }
  return fixtures;
}

/**
 * Base64 of bytes that occur only in the private keys: ML-KEM's secret vector starts the KEM key;
 * ML-DSA's key starts with the public seed rho, so take K (bytes 32..56) from the signing key.
 */
export function secretSamples(bundle: IdentityBundle): string[] {
  return [bundle.kemSecretKey.subarray(0, 24), bundle.sigSecretKey.subarray(32, 56)].map((b) => Buffer.from(b).toString('base64'));
}

export function credentialsFor(identity: IdentityBundle): Record<string, string> {
  return { identity: identityToJson(identity) };
}

export function configNode(id: string, port: number, caText: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    type: 'pqc-config',
    // Not the id: Node-RED reads a config property equal to a config node id as a dependency.
    name: `config ${id}`,
    broker: '127.0.0.1',
    port: String(port),
    clientid: '',
    keepalive: '60',
    cleansession: true,
    protocol: '4',
    usetls: false,
    caPublicKey: caText,
    strict: true,
    keysTopicPrefix: 'pqc/keys/',
    replayWindow: '64',
    maxEnvelopeBytes: '1048576',
    queueLimit: '100',
    ...overrides,
  };
}

/** The ready parts a config node built (fails the test if it reported a problem). */
export function readyConfig(node: TestNode): Extract<ConfigOutcome, { ok: true }> {
  const outcome = (node as unknown as { pqc?: ConfigOutcome }).pqc;
  if (!outcome) throw new Error(`${node.id} is not a pqc-config node`);
  if (!outcome.ok) throw new Error(`${node.id} not ready: ${outcome.problem} (${outcome.message})`);
  return outcome;
}

export async function waitConnected(node: TestNode): Promise<void> {
  const { connection } = readyConfig(node);
  if (connection.connected) return;
  await new Promise<void>((resolve) => {
    const stop = connection.onStatus((state) => {
      if (state === 'connected') {
        stop();
        resolve();
      }
    });
  });
}

/** Resolves once the broker acknowledged `filter` for this config node's connection. */
export async function waitSubscribed(node: TestNode, filter: string): Promise<void> {
  const { connection } = readyConfig(node);
  if (connection.isSubscribed(filter)) return;
  await new Promise<void>((resolve) => {
    const listener = (acknowledged: string): void => {
      if (acknowledged === filter) {
        connection.off('subscribed', listener);
        resolve();
      }
    };
    connection.on('subscribed', listener);
  });
}

export async function waitForPeer(node: TestNode, deviceId: string): Promise<void> {
  const { session, endpoint } = readyConfig(node);
  if (session.listPeers().some((p) => p.deviceId === deviceId)) return;
  await new Promise<void>((resolve) => {
    const listener = (peer: { deviceId: string }): void => {
      if (peer.deviceId === deviceId) {
        endpoint.off('peer', listener);
        resolve();
      }
    };
    endpoint.on('peer', listener);
  });
}

/** Sensor and gateway config nodes connected and trusting each other (the fixtures' ids). */
export async function waitPaired(sensorConfig: TestNode, gatewayConfig: TestNode): Promise<void> {
  await waitConnected(sensorConfig);
  await waitConnected(gatewayConfig);
  await waitForPeer(sensorConfig, 'gateway');
  await waitForPeer(gatewayConfig, 'sensor-1');
}

// --- node status and errors (the helper spies on Node.prototype and emits call:<method>) ------

interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}
interface Spy {
  getCalls(): SpyCall[];
}

export interface StatusValue {
  fill?: string;
  shape?: string;
  text?: string;
}

function callsOn(node: TestNode, method: 'status' | 'error' | 'warn' | 'log'): SpyCall[] {
  const spy = node[method] as unknown as Spy;
  return spy.getCalls().filter((c) => c.thisValue === node);
}

export function lastStatus(node: TestNode): StatusValue | undefined {
  return callsOn(node, 'status').at(-1)?.args[0] as StatusValue | undefined;
}

export function statusTexts(node: TestNode): string[] {
  return callsOn(node, 'status').map((c) => String((c.args[0] as StatusValue).text ?? ''));
}

/** Resolves with the first status (already shown or coming) that satisfies `predicate`. */
export function waitForStatus(node: TestNode, predicate: (s: StatusValue) => boolean): Promise<StatusValue> {
  const last = lastStatus(node);
  if (last && predicate(last)) return Promise.resolve(last);
  return new Promise((resolve) => {
    const listener = (call: SpyCall): void => {
      const s = call.args[0] as StatusValue;
      if (predicate(s)) {
        node.off('call:status', listener);
        resolve(s);
      }
    };
    node.on('call:status', listener);
  });
}

/** Everything a node said: status texts, errors, warnings and log lines. */
export function allTexts(node: TestNode): string[] {
  const text = (v: unknown): string => (v instanceof Error ? v.message : typeof v === 'string' ? v : JSON.stringify(v) ?? '');
  return [
    ...statusTexts(node),
    ...(['error', 'warn', 'log'] as const).flatMap((m) => callsOn(node, m).map((c) => c.args.map(text).join(' '))),
  ];
}

export function errorTexts(node: TestNode): string[] {
  return callsOn(node, 'error').map((c) => (c.args[0] instanceof Error ? c.args[0].message : String(c.args[0])));
}

/** The next node.error call (done(err) ends up there), or one already made that matches. */
export function waitForError(node: TestNode, pattern: RegExp): Promise<{ message: string; msg: unknown }> {
  const done = callsOn(node, 'error').find((c) => pattern.test(c.args[0] instanceof Error ? c.args[0].message : String(c.args[0])));
  if (done) return Promise.resolve({ message: String(done.args[0] instanceof Error ? done.args[0].message : done.args[0]), msg: done.args[1] });
  return new Promise((resolve) => {
    const listener = (call: SpyCall): void => {
      const message = call.args[0] instanceof Error ? call.args[0].message : String(call.args[0]);
      if (pattern.test(message)) {
        node.off('call:error', listener);
        resolve({ message, msg: call.args[1] });
      }
    };
    node.on('call:error', listener);
  });
}

// --- helper nodes as inboxes --------------------------------------------------------------------

export class Inbox {
  readonly messages: Array<Record<string, unknown>> = [];
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(node: TestNode) {
    node.on('input', (msg: Record<string, unknown>) => {
      this.messages.push(msg);
      this.waiters = this.waiters.filter((w) => {
        if (this.messages.length >= w.count) w.resolve();
        return this.messages.length < w.count;
      });
    });
  }

  async waitFor(count: number): Promise<Array<Record<string, unknown>>> {
    if (this.messages.length < count) await new Promise<void>((resolve) => this.waiters.push({ count, resolve }));
    return this.messages;
  }
}

// --- broker events ------------------------------------------------------------------------------

interface BrokerEvent {
  kind: 'subscribe' | 'unsubscribe' | 'publish';
  clientId: string | undefined;
  topics: string[];
  packet?: AedesPublishPacket;
}

/** Records what aedes sees from the moment it is created, so no event can be missed. */
export class BrokerWatch {
  readonly events: BrokerEvent[] = [];
  private waiters: Array<{ match: (e: BrokerEvent) => boolean; resolve: (e: BrokerEvent) => void }> = [];

  constructor(broker: Aedes) {
    broker.on('subscribe', (subs, client) => this.record({ kind: 'subscribe', clientId: client?.id, topics: subs.map((s) => s.topic) }));
    broker.on('unsubscribe', (topics, client) => this.record({ kind: 'unsubscribe', clientId: client?.id, topics }));
    broker.on('publish', (packet, client) => this.record({ kind: 'publish', clientId: client?.id, topics: [packet.topic], packet }));
  }

  wait(match: (e: BrokerEvent) => boolean): Promise<BrokerEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  subscribed(clientId: string, filter: string): Promise<BrokerEvent> {
    return this.wait((e) => e.kind === 'subscribe' && e.clientId === clientId && e.topics.includes(filter));
  }

  unsubscribed(clientId: string, filter: string): Promise<BrokerEvent> {
    return this.wait((e) => e.kind === 'unsubscribe' && e.clientId === clientId && e.topics.includes(filter));
  }

  /** Payloads a client published on a topic, in order (what an eavesdropper on the broker has). */
  published(clientId: string, topic: string): Buffer[] {
    return this.events
      .filter((e) => e.kind === 'publish' && e.clientId === clientId && e.topics[0] === topic)
      .map((e) => Buffer.from(e.packet!.payload as Buffer));
  }

  private record(event: BrokerEvent): void {
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(event)) return true;
      w.resolve(event);
      return false;
    });
  }
}

// --- a broker and a Node-RED runtime per test ----------------------------------------------------

/** The running test's broker, from {@link brokerPerTest}: a new one for every test. */
export interface TestBroker {
  /** The aedes broker (its port for config nodes, its events, close() to cut everyone off). */
  readonly aedes: AedesBroker;
  /** Everything the broker saw, recorded from before the first client connected. */
  readonly watch: BrokerWatch;
  /** A plain MQTT client without PQC, as an attacker on the broker has; ended after the test. */
  plainClient(): Promise<MqttClient>;
}

/**
 * Registers hooks in the calling describe(): every test gets its own aedes broker on a free port,
 * watched from its start, and with `nodeRed` its own Node-RED runtime (node-red-node-test-helper).
 * The hooks tear down in the safe order: plain clients, then the flow and the runtime, and the
 * broker last, so no deployed node sees its broker vanish (and start reconnecting) mid-teardown.
 * Read the returned object's properties inside tests and hooks only.
 */
export function brokerPerTest(options: { nodeRed?: boolean } = {}): TestBroker {
  let current: { aedes: AedesBroker; watch: BrokerWatch } | undefined;
  const plainClients: MqttClient[] = [];
  const running = (): { aedes: AedesBroker; watch: BrokerWatch } => {
    if (!current) throw new Error('brokerPerTest: the broker exists only while a test runs');
    return current;
  };

  beforeEach(async function () {
    const aedes = await startAedes();
    current = { aedes, watch: new BrokerWatch(aedes.broker) };
    if (options.nodeRed) await helper.startServer();
  });

  afterEach(async function () {
    for (const c of plainClients.splice(0)) await c.endAsync(true);
    if (options.nodeRed) await stopNodeRed();
    await current?.aedes.close();
    current = undefined;
  });

  return {
    get aedes() {
      return running().aedes;
    },
    get watch() {
      return running().watch;
    },
    async plainClient() {
      const client = await mqtt.connectAsync(running().aedes.url, { reconnectPeriod: 0 });
      plainClients.push(client);
      return client;
    },
  };
}

/**
 * Registers hooks in the calling describe() that give every test its own Node-RED runtime, for a
 * nested describe whose enclosing one already has a broker per test (brokerPerTest without nodeRed).
 */
export function nodeRedPerTest(): void {
  beforeEach(() => helper.startServer());
  afterEach(stopNodeRed);
}

async function stopNodeRed(): Promise<void> {
  await helper.unload();
  await helper.stopServer();
}

// --- durable state --------------------------------------------------------------------------------

/**
 * pqc-config stores its state under RED.settings.userDir and refuses to start without one
 * (lib/io/config.ts); node-red-node-test-helper has none. Every test gets a fresh one, so no
 * state leaks from one test's config node into the next one's with the same id.
 */
const testUserDirs: string[] = [];
beforeEach(function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-userdir-'));
  testUserDirs.push(dir);
  (helper as unknown as { settings(s: Record<string, unknown>): void }).settings({ userDir: dir });
});
after(function () {
  for (const dir of testUserDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

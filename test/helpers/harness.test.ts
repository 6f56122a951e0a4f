/**
 * Proves the broker harnesses the other test suites rely on: a private mosquitto process (MQTT 5
 * and 3.1.1, kill + restart on the same port, persistence) and an in-process aedes broker.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { startAedes } from './aedes';
import { canConnect, freePort } from './free-port';
import { startMosquitto, type MosquittoBroker } from './mosquitto';

type ProtocolVersion = 4 | 5;

interface Connected {
  client: MqttClient;
  connack: IConnackPacket;
}

/** Connects once (no automatic reconnect), resolving with the CONNACK or rejecting with the error. */
function connect(url: string, protocolVersion: ProtocolVersion, clientId: string): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion, clientId, reconnectPeriod: 0, connectTimeout: 3000 });
    client.once('connect', (connack) => resolve({ client, connack }));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)));
  });
}

/** Subscribes, publishes one message and returns what the subscriber received. */
async function roundTrip(client: MqttClient, topic: string, payload: string, retain = false): Promise<string> {
  const received = new Promise<string>((resolve) => {
    client.on('message', (t, message) => {
      if (t === topic) resolve(message.toString('utf8'));
    });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  await client.publishAsync(topic, payload, { qos: 1, retain });
  return received;
}

/** Waits for the first message on topic (e.g. a retained one delivered on subscribe). */
async function firstMessage(client: MqttClient, topic: string, timeoutMs = 3000): Promise<string> {
  const received = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${topic} within ${timeoutMs} ms`)), timeoutMs);
    client.on('message', (t, message) => {
      if (t !== topic) return;
      clearTimeout(timer);
      resolve(message.toString('utf8'));
    });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return received;
}

describe('test harness: mosquitto process', function () {
  this.timeout(30_000);
  const clients: MqttClient[] = [];
  let broker: MosquittoBroker | undefined;

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker?.stop();
    broker = undefined;
  });

  it('starts on a private free port with its own config, never the system broker on 1883', async () => {
    broker = await startMosquitto();
    assert.notEqual(broker.port, 1883);
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    const config = fs.readFileSync(broker.configPath, 'utf8');
    assert.match(config, new RegExp(`^listener ${broker.port} 127\\.0\\.0\\.1$`, 'm'));
    assert.match(config, /^allow_anonymous true$/m);
    assert.equal(broker.running, true);
    assert.equal(await canConnect(broker.port), true);
  });

  for (const [protocolVersion, logTag] of [
    [5, 'p5'],
    [4, 'p2'], // mosquitto logs MQTT 3.1.1 as protocol "p2" (its internal enum)
  ] as const) {
    it(`accepts an mqtt.js client with protocol version ${protocolVersion} and routes a message`, async () => {
      broker = await startMosquitto();
      const clientId = `harness-v${protocolVersion}`;
      const { client } = await connect(broker.url, protocolVersion, clientId);
      clients.push(client);
      assert.equal(await roundTrip(client, 'harness/round-trip', `hello v${protocolVersion}`), `hello v${protocolVersion}`);
      // The broker's own log shows which protocol it negotiated, so the test cannot pass on a
      // silent fallback to another version.
      assert.match(fs.readFileSync(broker.logPath, 'utf8'), new RegExp(`as ${clientId} \\(${logTag},`));
    });
  }

  it('announces max_packet_size to MQTT 5 clients in CONNACK', async () => {
    broker = await startMosquitto({ maxPacketSize: 4096 });
    const { client, connack } = await connect(broker.url, 5, 'harness-max-packet');
    clients.push(client);
    assert.equal(connack.properties?.maximumPacketSize, 4096);
  });

  it('kill() stops accepting connections and restart() brings the broker back on the same port', async () => {
    broker = await startMosquitto();
    const { port } = broker;
    const { client } = await connect(broker.url, 5, 'harness-before-kill');
    clients.push(client);

    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await broker.kill();
    await closed; // the client sees the crash
    assert.equal(broker.running, false);
    assert.equal(await canConnect(port), false);
    await assert.rejects(connect(broker.url, 5, 'harness-while-down'));

    await broker.restart();
    assert.equal(broker.port, port);
    assert.equal(broker.running, true);
    const { client: again } = await connect(broker.url, 4, 'harness-after-restart');
    clients.push(again);
    assert.equal(await roundTrip(again, 'harness/after-restart', 'back'), 'back');
  });

  it('keeps retained messages across kill() + restart() when persistence saves on every change', async () => {
    broker = await startMosquitto({ persistence: true, autosaveAfterChanges: 1 });
    const { client } = await connect(broker.url, 5, 'harness-persist-writer');
    clients.push(client);
    await client.publishAsync('harness/retained', 'survives', { qos: 1, retain: true });
    // A second change pushes the counter past the threshold whichever way mosquitto compares it.
    await client.publishAsync('harness/retained-2', 'x', { qos: 1, retain: true });
    await waitFor(() => fs.existsSync(`${broker!.dataDir}/mosquitto.db`), 3000);

    await broker.kill();
    await broker.restart();
    const { client: reader } = await connect(broker.url, 4, 'harness-persist-reader');
    clients.push(reader);
    assert.equal(await firstMessage(reader, 'harness/retained'), 'survives');
  });

  it('loses retained messages across kill() + restart() without persistence', async () => {
    broker = await startMosquitto();
    const { client } = await connect(broker.url, 5, 'harness-volatile-writer');
    clients.push(client);
    await client.publishAsync('harness/retained', 'gone', { qos: 1, retain: true });
    await broker.kill();
    await broker.restart();
    const { client: reader } = await connect(broker.url, 5, 'harness-volatile-reader');
    clients.push(reader);
    await assert.rejects(firstMessage(reader, 'harness/retained', 500), /no message/);
  });

  it('stop() ends the process and removes the temporary directory', async () => {
    const started = await startMosquitto();
    const { port, configPath, logPath } = started;
    await started.stop();
    assert.equal(started.running, false);
    assert.equal(await canConnect(port), false);
    assert.equal(fs.existsSync(configPath), false);
    assert.equal(fs.existsSync(logPath), false);
    await started.stop(); // idempotent
    await assert.rejects(started.restart(), /was stopped/);
  });

  it('fails fast with the broker log when mosquitto cannot start', async () => {
    const began = Date.now();
    await assert.rejects(
      startMosquitto({ extraConfig: ['no_such_option true'], startTimeoutMs: 8000 }),
      (err: Error) => /process exited/.test(err.message) && /no_such_option/.test(err.message),
    );
    // It noticed the exit instead of waiting out the whole start timeout.
    assert.ok(Date.now() - began < 5000, `took ${Date.now() - began} ms`);
  });
});

describe('test harness: aedes in-process broker', function () {
  this.timeout(10_000);

  it('accepts an MQTT 3.1.1 client, routes a message and closes', async () => {
    const broker = await startAedes();
    try {
      assert.notEqual(broker.port, 1883);
      const { client } = await connect(broker.url, 4, 'harness-aedes');
      try {
        assert.equal(await roundTrip(client, 'harness/aedes', 'hi aedes'), 'hi aedes');
      } finally {
        await client.endAsync(true);
      }
    } finally {
      await broker.close();
    }
    assert.equal(broker.broker.closed, true);
    assert.equal(await canConnect(broker.port), false);
    await broker.close(); // idempotent
  });

  it('close() does not hang on a client that is still connected', async () => {
    const broker = await startAedes();
    const { client } = await connect(broker.url, 4, 'harness-aedes-lingering');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await broker.close();
    await closed;
    client.end(true);
    assert.equal(await canConnect(broker.port), false);
  });

  it('freePort() returns a loopback port that a server can bind right away', async () => {
    const port = await freePort();
    assert.notEqual(port, 1883);
    assert.equal(await canConnect(port), false);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    try {
      assert.equal(await canConnect(port), true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

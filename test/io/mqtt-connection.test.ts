/**
 * The shared MQTT connection (lib/io/mqtt-connection.ts) against real brokers: aedes in-process
 * for MQTT 3.1.1 and a private mosquitto for MQTT 5's Maximum Packet Size. Every wait is on an
 * event (status, broker publish/unsubscribe), never on a timer.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Aedes } from 'aedes';
import type { AedesPublishPacket } from 'aedes';
import mqtt from 'mqtt';
import {
  MqttConnection,
  PublishError,
  publishPacketSize,
  randomClientId,
  type ConnectionState,
  type IncomingMessage,
  type MqttConnectionOptions,
} from '../../lib/io/mqtt-connection';
import { startAedes, type AedesBroker } from '../helpers/aedes';
import { freePort, LOOPBACK } from '../helpers/free-port';
import { startMosquitto } from '../helpers/mosquitto';

function waitForState(connection: MqttConnection, state: ConnectionState): Promise<void> {
  if (connection.state === state) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = connection.onStatus((now) => {
      if (now === state) {
        stop();
        resolve();
      }
    });
  });
}

/** Collects messages for one handler and lets a test await the n-th one. */
class Inbox {
  readonly messages: IncomingMessage[] = [];
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  readonly handler = (message: IncomingMessage): void => {
    this.messages.push(message);
    this.waiters = this.waiters.filter((w) => {
      if (this.messages.length >= w.count) w.resolve();
      return this.messages.length < w.count;
    });
  };
  waitFor(count: number): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }
}

/** Publishes with a plain MQTT.js client (an outsider to the connection under test). */
async function publishPlain(port: number, topic: string, payload: Buffer, qos: 0 | 1 = 1): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://${LOOPBACK}:${port}`, { reconnectPeriod: 0 });
  try {
    await client.publishAsync(topic, payload, { qos });
  } finally {
    await client.endAsync();
  }
}

/** aedes listening on a given port, so a test can stop the broker and bring it back there. */
async function aedesOnPort(port: number): Promise<{ broker: Aedes; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve());
  });
  return {
    broker,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function publishesFrom(broker: Aedes, clientId: string): AedesPublishPacket[] {
  const seen: AedesPublishPacket[] = [];
  broker.on('publish', (packet, client) => {
    if (client?.id === clientId) seen.push(packet);
  });
  return seen;
}

describe('io/mqtt-connection', function () {
  let aedes: AedesBroker;
  const open: MqttConnection[] = [];

  function connection(options: Partial<MqttConnectionOptions> = {}): MqttConnection {
    const c = new MqttConnection({ host: LOOPBACK, port: aedes.port, reconnectPeriodMs: 50, ...options });
    c.on('warning', () => undefined);
    open.push(c);
    return c;
  }

  beforeEach(async function () {
    aedes = await startAedes();
  });

  afterEach(async function () {
    for (const c of open.splice(0)) await c.close();
    await aedes.close();
  });

  describe('options', function () {
    it('refuses bad configuration as a local error', function () {
      assert.throws(() => new MqttConnection({ host: '', port: 1883 }), /host/);
      assert.throws(() => new MqttConnection({ host: 'h', port: 0 }), /port/);
      assert.throws(() => new MqttConnection({ host: 'h', port: 70000 }), /port/);
      assert.throws(() => new MqttConnection({ host: 'h', port: 1883, protocolVersion: 3 as unknown as 4 }), /protocol/);
      assert.throws(() => new MqttConnection({ host: 'h', port: 1883, keepaliveSeconds: -1 }), /keepalive/);
      assert.throws(() => new MqttConnection({ host: 'h', port: 1883, queueLimit: 1.5 }), /queue/);
    });

    it('uses a random client id unless one is given', function () {
      const a = new MqttConnection({ host: 'h', port: 1883 });
      const b = new MqttConnection({ host: 'h', port: 1883 });
      assert.match(a.clientId, /^pqc-iiot-[0-9a-f]{12}$/);
      assert.notEqual(a.clientId, b.clientId);
      assert.ok(randomClientId().length <= 23, 'fits MQTT 3.1.1 client id length');
      assert.equal(new MqttConnection({ host: 'h', port: 1883, clientId: ' plant-1 ' }).clientId, 'plant-1');
    });

    it('refuses invalid filters, topics and QoS', async function () {
      const c = connection();
      assert.throws(() => c.subscribe('a/#/b', 0, () => undefined, 'n1'), /invalid topic filter/);
      assert.throws(() => c.subscribe('a', 3 as 0, () => undefined, 'n1'), /QoS/);
      await assert.rejects(c.publish('a/+', Buffer.from('x'), { qos: 0, retain: false }), { code: 'bad-topic' });
      await assert.rejects(c.publish('a', Buffer.from('x'), { qos: 5 as 0, retain: false }), { code: 'bad-qos' });
    });

    it('computes the PUBLISH packet size as MQTT encodes it', function () {
      // 1 fixed byte + 1 length byte + 2 + 3 topic bytes + 10 payload bytes.
      assert.equal(publishPacketSize('a/b', 10, 0, 4), 17);
      // + packet id (QoS 1) + empty MQTT 5 property length.
      assert.equal(publishPacketSize('a/b', 10, 1, 5), 20);
      // Remaining length 200 needs two length bytes.
      assert.equal(publishPacketSize('a/b', 195, 0, 4), 1 + 2 + 200);
    });
  });

  describe('lifecycle', function () {
    it('connects on first register and reports connecting → connected', async function () {
      const c = connection();
      const states: ConnectionState[] = [];
      c.onStatus((s) => states.push(s));
      assert.equal(c.state, 'idle');
      c.register('n1');
      c.register('n2');
      await waitForState(c, 'connected');
      assert.deepEqual(states, ['connecting', 'connected']);
      assert.equal(c.userCount, 2);
    });

    it('disconnects only when the last user deregisters, and reconnects on the next register', async function () {
      const c = connection();
      c.register('n1');
      c.register('n2');
      await waitForState(c, 'connected');
      await new Promise<void>((resolve) => c.deregister('n1', resolve));
      assert.equal(c.state, 'connected');
      const gone = new Promise<void>((resolve) => aedes.broker.once('clientDisconnect', () => resolve()));
      await new Promise<void>((resolve) => c.deregister('n2', resolve));
      await gone;
      assert.equal(c.state, 'idle');
      c.register('n3');
      await waitForState(c, 'connected');
    });

    it('calls deregister done when the connection never existed', async function () {
      const c = connection();
      await new Promise<void>((resolve) => c.deregister('nobody', resolve));
      assert.equal(c.state, 'idle');
    });

    it('reconnects after the broker goes away and restores subscriptions from its own table', async function () {
      const port = await freePort();
      let broker = await aedesOnPort(port);
      const c = connection({ port });
      const inbox = new Inbox();
      c.register('n1');
      c.subscribe('plant/#', 1, inbox.handler, 'n1');
      await waitForState(c, 'connected');
      await publishPlain(port, 'plant/a', Buffer.from('before'));
      await inbox.waitFor(1);

      const states: ConnectionState[] = [];
      c.onStatus((s) => states.push(s));
      await broker.close();
      await waitForState(c, 'reconnecting');
      broker = await aedesOnPort(port);
      try {
        await waitForState(c, 'connected');
        assert.deepEqual(states.slice(0, 2), ['disconnected', 'reconnecting']);
        // The new broker knows nothing: the subscription must have been sent again.
        await publishPlain(port, 'plant/b', Buffer.from('after'));
        await inbox.waitFor(2);
        assert.equal(inbox.messages[1].payload.toString(), 'after');
      } finally {
        await c.close();
        await broker.close();
      }
    });
  });

  describe('subscriptions', function () {
    it('delivers raw Buffers with topic, qos and retain', async function () {
      const c = connection();
      const inbox = new Inbox();
      c.register('n1');
      c.subscribe('s/+', 1, inbox.handler, 'n1');
      await waitForState(c, 'connected');
      const bytes = Buffer.from([0x00, 0xff, 0x50, 0x51]);
      await c.publish('s/x', bytes, { qos: 1, retain: false });
      await inbox.waitFor(1);
      const [m] = inbox.messages;
      assert.ok(Buffer.isBuffer(m.payload));
      assert.deepEqual(m.payload, bytes);
      assert.equal(m.topic, 's/x');
      assert.equal(m.qos, 1);
      assert.equal(m.retain, false);
    });

    it('marks retained messages delivered on subscribe', async function () {
      await publishPlainRetained(aedes.port, 'r/1', Buffer.from('kept'));
      const c = connection();
      const inbox = new Inbox();
      c.register('n1');
      c.subscribe('r/#', 0, inbox.handler, 'n1');
      await inbox.waitFor(1);
      assert.equal(inbox.messages[0].retain, true);
      assert.equal(inbox.messages[0].payload.toString(), 'kept');
    });

    it('tracks which filters the broker acknowledged on the current connection', async function () {
      const c = connection();
      c.register('n1');
      const acked = new Promise<string>((resolve) => c.once('subscribed', resolve));
      c.subscribe('ack/#', 1, () => undefined, 'n1');
      assert.equal(c.isSubscribed('ack/#'), false);
      assert.equal(await acked, 'ack/#');
      assert.equal(c.isSubscribed('ack/#'), true);
      c.unsubscribe('ack/#', 'n1');
      assert.equal(c.isSubscribed('ack/#'), false);
    });

    it('calls a handler once per message even when several of its filters match', async function () {
      const c = connection();
      const shared = new Inbox();
      const other = new Inbox();
      c.register('n1');
      c.subscribe('m/#', 0, shared.handler, 'n1');
      c.subscribe('m/+', 0, shared.handler, 'n1');
      c.subscribe('m/1', 0, other.handler, 'n2');
      await waitForState(c, 'connected');
      await publishPlain(aedes.port, 'm/1', Buffer.from('one'));
      await publishPlain(aedes.port, 'm/2', Buffer.from('two'));
      await shared.waitFor(2);
      await other.waitFor(1);
      // However often the broker delivers (overlapping subscriptions), each message appears
      // once per delivery; the filters of one handler do not multiply it.
      const distinct = new Set(shared.messages.map((m) => m.payload.toString()));
      assert.deepEqual([...distinct].sort(), ['one', 'two']);
      assert.equal(other.messages.length, 1);
    });

    it('unsubscribes only its own handler; the broker is told when the last owner leaves', async function () {
      const c = connection();
      const first = new Inbox();
      const second = new Inbox();
      c.register('n1');
      c.subscribe('u/#', 1, first.handler, 'n1');
      c.subscribe('u/#', 1, second.handler, 'n2');
      await waitForState(c, 'connected');

      c.unsubscribe('u/#', 'n1');
      assert.deepEqual(c.subscribedFilters(), ['u/#']);
      await publishPlain(aedes.port, 'u/1', Buffer.from('x'));
      await second.waitFor(1);
      assert.equal(first.messages.length, 0);

      const unsubscribed = new Promise<string[]>((resolve) =>
        aedes.broker.on('unsubscribe', (topics, client) => {
          if (client.id === c.clientId) resolve(topics);
        }),
      );
      c.unsubscribe('u/#', 'n2');
      assert.deepEqual(await unsubscribed, ['u/#']);
      assert.deepEqual(c.subscribedFilters(), []);
    });

    it('drops the subscriptions of a user that deregisters (partial redeploy)', async function () {
      const c = connection();
      c.register('keep');
      c.register('leave');
      c.subscribe('keep/#', 0, () => undefined, 'keep');
      c.subscribe('leave/#', 0, () => undefined, 'leave');
      await waitForState(c, 'connected');
      await new Promise<void>((resolve) => c.deregister('leave', resolve));
      assert.deepEqual(c.subscribedFilters(), ['keep/#']);
    });

    it('keeps delivering to other handlers when one throws or rejects', async function () {
      const c = connection();
      const warnings: string[] = [];
      c.on('warning', (w) => warnings.push(w));
      const inbox = new Inbox();
      c.register('n1');
      c.subscribe('t/#', 0, () => {
        throw new Error('boom');
      }, 'bad');
      c.subscribe('t/#', 0, () => Promise.reject(new Error('async boom')), 'bad-async');
      c.subscribe('t/#', 0, inbox.handler, 'good');
      await waitForState(c, 'connected');
      await publishPlain(aedes.port, 't/1', Buffer.from('x'));
      await inbox.waitFor(1);
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(warnings.some((w) => w.includes('boom')));
      assert.ok(warnings.some((w) => w.includes('async boom')));
    });
  });

  describe('publishing while disconnected', function () {
    it('queues up to the limit, refuses the next one, and sends the queue in order on connect', async function () {
      const port = await freePort();
      const c = connection({ port, queueLimit: 2 });
      c.register('n1');
      const first = c.publish('q/1', Buffer.from('first'), { qos: 1, retain: false });
      const second = c.publish('q/2', Buffer.from('second'), { qos: 1, retain: false });
      await assert.rejects(c.publish('q/3', Buffer.from('third'), { qos: 1, retain: false }), (error: unknown) => {
        assert.ok(error instanceof PublishError);
        assert.equal(error.code, 'queue-full');
        assert.match(error.message, /queue is full \(2 messages\)/);
        return true;
      });
      assert.equal(c.queuedCount, 2);

      const broker = await aedesOnPort(port);
      try {
        const seen = publishesFrom(broker.broker, c.clientId);
        await Promise.all([first, second]);
        assert.deepEqual(
          seen.map((p) => [p.topic, p.payload.toString()]),
          [
            ['q/1', 'first'],
            ['q/2', 'second'],
          ],
        );
        assert.equal(c.queuedCount, 0);
      } finally {
        await c.close();
        await broker.close();
      }
    });

    it('publishes the birth message before the queue on every connect', async function () {
      const port = await freePort();
      const c = connection({ port });
      let births = 0;
      c.setBirthMessage(async () => {
        births++;
        return { topic: 'pqc/keys/dev', payload: Buffer.from(`birth ${births}`), options: { qos: 1, retain: true } };
      });
      c.register('n1');
      const queued = c.publish('data/1', Buffer.from('queued'), { qos: 1, retain: false });
      const broker = await aedesOnPort(port);
      try {
        const seen = publishesFrom(broker.broker, c.clientId);
        await queued;
        assert.deepEqual(
          seen.map((p) => p.topic),
          ['pqc/keys/dev', 'data/1'],
        );
        assert.equal(seen[0].retain, true);
      } finally {
        await c.close();
        await broker.close();
      }
    });

    it('rejects queued messages when the connection is closed (never silent loss)', async function () {
      const port = await freePort();
      const c = connection({ port });
      c.register('n1');
      const pending = c.publish('q/1', Buffer.from('x'), { qos: 1, retain: false });
      await c.close();
      await assert.rejects(pending, { code: 'connection-closed' });
      await assert.rejects(c.publish('q/1', Buffer.from('x'), { qos: 0, retain: false }), { code: 'connection-closed' });
      assert.equal(c.state, 'closed');
    });

    it('rejects queued messages when the last user leaves', async function () {
      const port = await freePort();
      const c = connection({ port });
      c.register('n1');
      const pending = c.publish('q/1', Buffer.from('x'), { qos: 1, retain: false });
      await new Promise<void>((resolve) => c.deregister('n1', resolve));
      await assert.rejects(pending, { code: 'connection-closed' });
    });
  });

  describe('MQTT 5 Maximum Packet Size (private mosquitto)', function () {
    it('reads it from CONNACK and refuses larger packets before sending', async function () {
      const mosquitto = await startMosquitto({ maxPacketSize: 2000 });
      const c = new MqttConnection({ host: LOOPBACK, port: mosquitto.port, protocolVersion: 5 });
      c.on('warning', () => undefined);
      try {
        const inbox = new Inbox();
        c.register('n1');
        c.subscribe('big/#', 1, inbox.handler, 'n1');
        await waitForState(c, 'connected');
        assert.equal(c.maximumPacketSize, 2000);
        await assert.rejects(c.publish('big/1', Buffer.alloc(3000), { qos: 1, retain: false }), (error: unknown) => {
          assert.ok(error instanceof PublishError);
          assert.equal(error.code, 'packet-too-large');
          assert.match(error.message, /maximum packet size of 2000 bytes/);
          return true;
        });
        // Exactly at the limit still goes through.
        let fits = 2000;
        while (publishPacketSize('big/1', fits, 1, 5) > 2000) fits--;
        await c.publish('big/1', Buffer.alloc(fits, 7), { qos: 1, retain: false });
        await inbox.waitFor(1);
        assert.equal(inbox.messages[0].payload.length, fits);
        assert.equal(c.state, 'connected');
      } finally {
        await c.close();
        await mosquitto.stop();
      }
    });

    it('keeps a persistent session across a disconnect under MQTT 5 when clean session is off', async function () {
      const mosquitto = await startMosquitto();
      const options = { host: LOOPBACK, port: mosquitto.port, protocolVersion: 5 as const, cleanSession: false, clientId: 'persistent-5' };
      let c = new MqttConnection(options);
      c.on('warning', () => undefined);
      try {
        const first = new Inbox();
        c.register('n1');
        c.subscribe('keep/#', 1, first.handler, 'n1');
        await waitForState(c, 'connected');
        await new Promise<void>((resolve) => (c.isSubscribed('keep/#') ? resolve() : c.once('subscribed', () => resolve())));
        await c.close();
        // Published while the subscriber is away: the broker must hold it for the session.
        const other = await mqtt.connectAsync(`mqtt://${LOOPBACK}:${mosquitto.port}`, { reconnectPeriod: 0, protocolVersion: 5 });
        await other.publishAsync('keep/1', Buffer.from('while away'), { qos: 1 });
        await other.endAsync();
        c = new MqttConnection(options);
        c.on('warning', () => undefined);
        const second = new Inbox();
        c.register('n1');
        c.subscribe('keep/#', 1, second.handler, 'n1');
        await second.waitFor(1);
        assert.equal(second.messages[0].payload.toString(), 'while away');
      } finally {
        await c.close();
        await mosquitto.stop();
      }
    });

    it('knows no limit under MQTT 3.1.1', async function () {
      const c = connection();
      c.register('n1');
      await waitForState(c, 'connected');
      assert.equal(c.maximumPacketSize, undefined);
    });
  });
});

async function publishPlainRetained(port: number, topic: string, payload: Buffer): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://${LOOPBACK}:${port}`, { reconnectPeriod: 0 });
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain: true });
  } finally {
    await client.endAsync();
  }
}

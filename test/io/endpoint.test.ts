/**
 * The endpoint that joins a SecureSession to a connection (lib/io/endpoint.ts), driven through
 * an in-memory broker: announcements, sealing per recipient, one verdict per message and node,
 * quiet drops, size limits (configured and the broker's), and rejections with reasons.
 */
import assert from 'node:assert/strict';
import { SecureEndpoint, type Verdict } from '../../lib/io/endpoint';
import { SecureSession, SoftwareProvider, issueCertificate, type IdentityBundle, type Role } from '../../lib';
import { EMPTY_REVOCATIONS, issueRevocation } from '../../lib/trust/revocation';
import { keysFor, testCa } from '../lib/fixtures';
import { MemoryBus, type MemoryConnection } from './memory-broker';

const NOW = Date.now();
const clock = (): number => NOW;

function certified(id: string, roles: Role, topics: string[]): IdentityBundle {
  return issueCertificate(testCa(), keysFor({ id, sig: 'ML-DSA-44' }), {
    roles,
    topics,
    notBefore: NOW - 3600_000,
    notAfter: NOW + 86400_000,
  });
}

interface Device {
  connection: MemoryConnection;
  endpoint: SecureEndpoint;
  session: SecureSession;
}

function device(bus: MemoryBus, identity: IdentityBundle, maxEnvelopeBytes?: number): Device {
  const session = new SecureSession({
    provider: new SoftwareProvider(identity),
    caPublicKey: testCa().publicKey,
    strict: true,
    limits: maxEnvelopeBytes ? { maxEnvelopeBytes } : {},
  });
  const connection = bus.connection();
  const endpoint = new SecureEndpoint({ session, connection, ownerId: `config-${identity.deviceId}`, clock });
  endpoint.start();
  return { connection, endpoint, session };
}

function collect(): { verdicts: Verdict[]; listener: (v: Verdict) => void } {
  const verdicts: Verdict[] = [];
  return { verdicts, listener: (v) => verdicts.push(v) };
}

describe('io/endpoint', function () {
  let sensorIdentity: IdentityBundle;
  let gatewayIdentity: IdentityBundle;
  let bus: MemoryBus;
  let sensor: Device;
  let gateway: Device;

  before(function () {
    sensorIdentity = certified('sensor-1', 'pub', ['plant/#']);
    gatewayIdentity = certified('gateway', 'sub', ['plant/#']);
  });

  beforeEach(async function () {
    bus = new MemoryBus();
    sensor = device(bus, sensorIdentity);
    gateway = device(bus, gatewayIdentity);
    await sensor.connection.connect();
    await gateway.connection.connect();
    // The sensor subscribed before the gateway announced; the gateway learns the sensor from
    // the retained announcement, as a late joiner does.
    await gateway.connection.deliverRetained();
  });

  it('publishes a retained, QoS 1 announcement on connect and learns peers from pqc/keys/+', function () {
    const announcement = sensor.connection.published[0];
    assert.equal(announcement.topic, 'pqc/keys/sensor-1');
    assert.deepEqual(announcement.options, { qos: 1, retain: true });
    assert.deepEqual(sensor.connection.subscriptions.map((s) => [s.filter, s.ownerId]), [
      ['pqc/keys/+', 'config-sensor-1'],
      ['pqc/revocations', 'config-sensor-1'],
    ]);
    assert.deepEqual(sensor.session.listPeers().map((p) => p.deviceId), ['gateway']);
    assert.deepEqual(gateway.session.listPeers().map((p) => p.deviceId), ['sensor-1']);
  });

  it('emits peer once per new key, not for retained re-deliveries', async function () {
    const peers: string[] = [];
    gateway.endpoint.on('peer', (p) => peers.push(p.deviceId));
    await gateway.connection.deliverRetained();
    assert.deepEqual(peers, []);
  });

  it('seals for the recipient and delivers a verified message with msg.pqc data', async function () {
    const node = collect();
    gateway.endpoint.subscribe('plant/#', 1, node.listener, 'in-1');
    const sent = await sensor.endpoint.send('plant/line1/temp', Buffer.from('{"t":21.5}'), { qos: 1, retain: false, recipients: ['gateway'] });
    assert.equal(sent, 1);
    assert.equal(node.verdicts.length, 1);
    const v = node.verdicts[0];
    assert.ok(v.ok);
    assert.equal(v.message.data.toString(), '{"t":21.5}');
    assert.equal(v.message.topic, 'plant/line1/temp');
    assert.equal(v.message.pqc.sender, 'sensor-1');
    assert.match(v.message.pqc.seq, /^\d+$/);
    assert.match(v.message.pqc.keyId, /^[0-9a-f]{32}$/);
    assert.equal(v.message.pqc.timestamp, NOW);
    assert.match(v.message.pqc.suite, /ML-KEM-768/);
    // The broker saw ciphertext only.
    const onWire = bus.log.find((m) => m.topic === 'plant/line1/temp')!;
    assert.ok(!onWire.payload.includes(Buffer.from('21.5')));
  });

  it('opens each message once and gives every matching node one verdict; broker duplicates are quiet', async function () {
    const a = collect();
    const b = collect();
    gateway.endpoint.subscribe('plant/#', 1, a.listener, 'in-a');
    gateway.endpoint.subscribe('plant/line1/#', 1, a.listener, 'in-a');
    gateway.endpoint.subscribe('plant/+/temp', 1, b.listener, 'in-b');
    await sensor.endpoint.send('plant/line1/temp', Buffer.from('x'), { qos: 0, retain: false, recipients: ['gateway'] });
    // The memory broker delivers one copy per matching subscription (3): the first is accepted
    // and reaches both nodes; the copies are duplicates, dropped quietly.
    for (const node of [a, b]) {
      assert.equal(node.verdicts.filter((v) => v.ok).length, 1);
      const others = node.verdicts.filter((v) => !v.ok);
      assert.equal(others.length, 2);
      for (const v of others) assert.ok(!v.ok && v.quiet && v.rejection.reason === 'duplicate');
    }
  });

  it('removeOwner drops exactly that node’s subscriptions', function () {
    gateway.endpoint.subscribe('plant/a/#', 0, () => undefined, 'in-a');
    gateway.endpoint.subscribe('plant/b/#', 0, () => undefined, 'in-b');
    gateway.endpoint.removeOwner('in-a');
    assert.deepEqual(gateway.connection.subscriptions.map((s) => [s.filter, s.ownerId]), [
      ['pqc/keys/+', 'config-gateway'],
      ['pqc/revocations', 'config-gateway'],
      ['plant/b/#', 'in-b'],
      ['pqc/topic-keys/+/plant/b/#', 'in-b'],
      ['pqc/batches/+', 'in-b'],
    ]);
  });

  it('does not treat announcements as data for wide filters', async function () {
    const node = collect();
    gateway.endpoint.subscribe('#', 0, node.listener, 'in-all');
    await sensor.connection.connect(); // re-announces
    assert.deepEqual(node.verdicts, []);
  });

  it('refuses unknown or invalid recipients before publishing anything', async function () {
    const before = sensor.connection.published.length;
    await assert.rejects(
      sensor.endpoint.send('plant/x', Buffer.from('x'), { qos: 0, retain: false, recipients: ['gateway', 'nobody'] }),
      /recipient "nobody" has no trusted key/,
    );
    await assert.rejects(sensor.endpoint.send('plant/x', Buffer.from('x'), { qos: 0, retain: false, recipients: ['bad id'] }), /invalid recipient/);
    assert.equal(sensor.connection.published.length, before);
  });

  it('refuses an envelope larger than the broker’s maximum packet size before publishing', async function () {
    sensor.connection.maximumPacketSize = 3000; // an ML-DSA-44 signature alone is 2420 bytes
    const before = sensor.connection.published.length;
    await assert.rejects(
      sensor.endpoint.send('plant/x', Buffer.alloc(100), { qos: 1, retain: false, recipients: ['gateway'] }),
      /the broker accepts at most 3000 bytes/,
    );
    assert.equal(sensor.connection.published.length, before);
  });

  it('refuses an envelope larger than the configured maximum', async function () {
    const small = new MemoryBus();
    const s = device(small, sensorIdentity, 8192);
    const g = device(small, gatewayIdentity);
    await s.connection.connect();
    await g.connection.connect();
    await assert.rejects(
      s.endpoint.send('plant/x', Buffer.alloc(10_000), { qos: 0, retain: false, recipients: ['gateway'] }),
      /exceeds the limit of 8192/,
    );
    assert.equal(s.connection.published.filter((p) => p.topic === 'plant/x').length, 0);
  });

  it('reports garbage, tampering and re-routing with reasons; the claimed sender when readable', async function () {
    // Captured by the broker and never delivered: the receiver has not seen these sequence numbers.
    await sensor.endpoint.send('plant/line1/temp', Buffer.from('one'), { qos: 1, retain: false, recipients: ['gateway'] });
    await sensor.endpoint.send('plant/line1/temp', Buffer.from('two'), { qos: 1, retain: false, recipients: ['gateway'] });
    const [first, second] = bus.log.filter((m) => m.topic === 'plant/line1/temp').map((m) => m.payload);
    const node = collect();
    gateway.endpoint.subscribe('plant/#', 1, node.listener, 'in-1');

    await bus.deliver('plant/line1/temp', Buffer.from('not an envelope'), { qos: 0, retain: false });
    const tampered = Buffer.from(first);
    tampered[tampered.length - 3000] ^= 0x01; // inside the ciphertext, covered by the signature
    await bus.deliver('plant/line1/temp', tampered, { qos: 0, retain: false });
    await bus.deliver('plant/line2/temp', second, { qos: 0, retain: false });

    assert.equal(node.verdicts.length, 3);
    for (const v of node.verdicts) assert.ok(!v.ok && !v.quiet, 'reported, not quiet');
    const [garbage, flipped, rerouted] = node.verdicts.map((v) => (v.ok ? undefined : v.rejection));
    assert.equal(garbage!.sender, undefined);
    assert.equal(garbage!.topic, 'plant/line1/temp');
    assert.equal(flipped!.reason, 'bad-signature');
    assert.equal(flipped!.sender, 'sensor-1');
    assert.equal(rerouted!.reason, 'bad-signature');
    assert.equal(rerouted!.topic, 'plant/line2/temp');

    // The untouched envelope on its own topic is still accepted afterwards: rejections changed nothing.
    await bus.deliver('plant/line1/temp', first, { qos: 0, retain: false });
    assert.ok(node.verdicts[3].ok);
  });

  it('reports refused announcements (public data only) but not its own', async function () {
    const refused: Array<{ topic: string; reason: string }> = [];
    gateway.endpoint.on('announcement-rejected', (r) => refused.push(r));
    await bus.deliver('pqc/keys/evil', Buffer.from('garbage'), { qos: 0, retain: false });
    await gateway.connection.connect(); // its own announcement comes back: not reported
    await bus.deliver('pqc/keys/cleared', Buffer.alloc(0), { qos: 0, retain: false }); // a cleared retained message
    assert.equal(refused.length, 1);
    assert.equal(refused[0].topic, 'pqc/keys/evil');
  });

  it('I7 applies a CA-signed revocation at once: the revoked sender is no longer trusted', async function () {
    const node = collect();
    gateway.endpoint.subscribe('#', 1, node.listener, 'in-all');
    const applied: string[][] = [];
    const refused: string[] = [];
    gateway.endpoint.on('revocation', (r) => applied.push(r.untrusted));
    gateway.endpoint.on('revocation-rejected', (r) => refused.push(r.reason));

    const update = issueRevocation(testCa(), EMPTY_REVOCATIONS, [{ deviceId: 'sensor-1', keyId: sensorIdentity.keyId }], 'pqc/revocations', NOW);
    await bus.deliver('pqc/revocations', Buffer.from(update.bytes), { qos: 1, retain: true });
    assert.deepEqual(applied, [['sensor-1']]);
    assert.equal(node.verdicts.length, 0, 'the revocation topic is not data');
    assert.deepEqual(gateway.session.listPeers(), []);
    await gateway.connection.deliverRetained(); // the retained copy again: no news, no warning
    await bus.deliver('pqc/revocations', Buffer.from('forged'), { qos: 1, retain: false });
    assert.deepEqual(applied.length, 1);
    assert.equal(refused.length, 1);

    // The sensor can still seal (it trusts the gateway), but the gateway refuses the envelope.
    await sensor.endpoint.send('plant/line1/temp', Buffer.from('x'), { qos: 1, retain: false, recipients: ['gateway'] });
    const last = node.verdicts.at(-1)!;
    assert.ok(!last.ok && !last.quiet);
    assert.match(last.rejection.reason, /revoked|unknown-sender/);
  });

  it('compact mode: envelopes first, then one manifest (QoS 1, not retained); each message is released once, after it', async function () {
    const node = collect();
    gateway.endpoint.subscribe('plant/#', 1, node.listener, 'in-1');
    const rejected: string[] = [];
    gateway.endpoint.on('manifest-rejected', (r) => rejected.push(r.reason));
    const sends = ['a', 'b', 'c'].map((x) => sensor.endpoint.send('plant/line1/temp', Buffer.from(x), { qos: 1, retain: false, recipients: [], compact: true }));
    await Promise.all(sends);
    for (let i = 0; i < 500 && node.verdicts.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(node.verdicts.map((v) => (v.ok ? v.message.data.toString() : v.rejection.reason)), ['a', 'b', 'c']);
    const published = sensor.connection.published.filter((p) => p.topic === 'plant/line1/temp' || p.topic.startsWith('pqc/batches/'));
    const manifestAt = published.findIndex((p) => p.topic === 'pqc/batches/sensor-1');
    assert.ok(manifestAt >= 3, 'manifest after the envelopes it lists');
    assert.deepEqual(published[manifestAt].options, { qos: 1, retain: false });
    // A forged manifest is reported, never data.
    const forged = Buffer.from(published[manifestAt].payload);
    forged[forged.length - 1] ^= 1;
    await bus.deliver('pqc/batches/sensor-1', forged, { qos: 1, retain: false });
    assert.deepEqual(rejected, ['bad-signature']);
    assert.equal(node.verdicts.length, 3);
  });

  it('stop() withdraws the announcement provider and every subscription', function () {
    gateway.endpoint.subscribe('plant/#', 0, () => undefined, 'in-1');
    gateway.endpoint.stop();
    assert.deepEqual(gateway.connection.subscriptions, []);
  });
});

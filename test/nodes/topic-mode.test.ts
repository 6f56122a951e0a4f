/**
 * Topic mode through the Node-RED runtime: one pqc-secure-out without recipients, three
 * authorized subscribers and one with a valid certificate for another topic, over aedes.
 */
import assert from 'node:assert/strict';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import { createIdentity, decodeBatchManifest, issueCertificate, peekType, type IdentityBundle, type Role } from '../../lib';
import {
  Inbox, NOW, brokerPerTest, configNode, credentialsFor, makeFixtures, readyConfig, waitConnected, waitForPeer, waitSubscribed,
  type Fixtures,
} from './node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule] as unknown as Array<(RED: never) => void>;
const TOPIC = 'plant/line-1/temperature';
const SUBSCRIBERS = ['hmi-a', 'hmi-b', 'hmi-c'];
const OUTSIDER = 'hmi-x';

describe('nodes: topic mode (one publisher, many subscribers)', function () {
  this.timeout(60_000);
  let fx: Fixtures;
  let identities: Map<string, IdentityBundle>;
  const broker = brokerPerTest({ nodeRed: true });

  before(function () {
    fx = makeFixtures();
    const make = (id: string, roles: Role, topics: string[]) =>
      issueCertificate(fx.ca, createIdentity({ deviceId: id, sigAlgorithm: 'ML-DSA-44' }), {
        roles, topics, notBefore: NOW - 3600_000, notAfter: NOW + 86400_000,
      });
    identities = new Map([
      ['publisher', make('publisher', 'pub', ['plant/#'])],
      ...SUBSCRIBERS.map((id) => [id, make(id, 'sub', ['plant/line-1/#'])] as [string, IdentityBundle]),
      [OUTSIDER, make(OUTSIDER, 'sub', ['plant/line-2/#'])],
    ]);
  });

  async function load(outProps: Record<string, unknown>): Promise<void> {
    const devices = ['publisher', ...SUBSCRIBERS, OUTSIDER];
    const flow: object[] = devices.map((id) => configNode(`cfg-${id}`, broker.aedes.port, fx.caText));
    flow.push({ id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfg-publisher', topic: TOPIC, qos: '1', retain: '', recipients: '', ...outProps, wires: [] });
    for (const id of [...SUBSCRIBERS, OUTSIDER]) {
      flow.push({ id: `in-${id}`, type: 'pqc-secure-in', pqcConfig: `cfg-${id}`, topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: true, outputs: 2, wires: [[`ok-${id}`], [`rej-${id}`]] });
      flow.push({ id: `ok-${id}`, type: 'helper' }, { id: `rej-${id}`, type: 'helper' });
    }
    const credentials = Object.fromEntries(devices.map((id) => [`cfg-${id}`, credentialsFor(identities.get(id)!)]));
    await helper.load(NODES, flow, credentials);
    const pub = helper.getNode('cfg-publisher');
    await waitConnected(pub);
    for (const id of [...SUBSCRIBERS, OUTSIDER]) {
      const cfg = helper.getNode(`cfg-${id}`);
      await waitConnected(cfg);
      await waitForPeer(pub, id);
      await waitForPeer(cfg, 'publisher');
      await waitSubscribed(cfg, 'plant/#');
      await waitSubscribed(cfg, 'pqc/topic-keys/+/plant/#');
      await waitSubscribed(cfg, 'pqc/batches/+');
    }
  }

  it('three authorized subscribers get every message exactly once; the outsider gets none; the broker sees ciphertext', async function () {
    await load({ keyStrategy: 'packets', keyThreshold: '2' });
    const inboxes = new Map(SUBSCRIBERS.map((id) => [id, new Inbox(helper.getNode(`ok-${id}`))]));
    const outsider = new Inbox(helper.getNode(`ok-${OUTSIDER}`));
    const outsiderRejections = new Inbox(helper.getNode(`rej-${OUTSIDER}`));
    const out = helper.getNode('out');
    const sent = [0, 1, 2, 3, 4].map((i) => `reading-${i}`);
    for (const payload of sent) out.receive({ payload });
    for (const [id, inbox] of inboxes) {
      const got = await inbox.waitFor(sent.length);
      assert.deepEqual(got.map((m) => m.payload).sort(), [...sent].sort(), id);
      assert.ok(got.every((m) => (m.pqc as { sender: string }).sender === 'publisher'));
    }
    // Let the broker deliver anything else it might, then count.
    await new Promise((r) => setTimeout(r, 300));
    for (const inbox of inboxes.values()) assert.equal(inbox.messages.length, sent.length, 'each message once');
    assert.equal(outsider.messages.length, 0, 'the outsider decrypted something');
    assert.equal(outsiderRejections.messages.length, 0, 'an envelope for others is a quiet drop, not an attack');

    const clientId = readyConfig(helper.getNode('cfg-publisher')).connection.clientId;
    const envelopes = broker.watch.published(clientId, TOPIC);
    assert.equal(envelopes.length, sent.length, 'one envelope per message, whatever the number of subscribers');
    for (const e of envelopes) assert.ok(!e.toString('latin1').includes('reading-'), 'plaintext on the broker');
    // packets = 2: keys for messages 0–1, 2–3 and 4.
    const keyMessages = broker.watch.published(clientId, `pqc/topic-keys/publisher/${TOPIC}`);
    assert.equal(keyMessages.length, 3);
  });

  it('msg.rotateKey replaces the key before that message', async function () {
    await load({ keyStrategy: 'seconds', keyThreshold: '3600' });
    const inbox = new Inbox(helper.getNode(`ok-${SUBSCRIBERS[0]}`));
    const out = helper.getNode('out');
    out.receive({ payload: 'a' });
    await inbox.waitFor(1);
    out.receive({ payload: 'b' });
    await inbox.waitFor(2);
    out.receive({ payload: 'c', rotateKey: true });
    await inbox.waitFor(3);
    const clientId = readyConfig(helper.getNode('cfg-publisher')).connection.clientId;
    assert.equal(broker.watch.published(clientId, `pqc/topic-keys/publisher/${TOPIC}`).length, 2);
  });

  it('compact signatures (docs/PROTOCOL.md §4.8): every message arrives once after its manifest; a forged manifest is rejected and releases nothing', async function () {
    await load({ signatures: 'compact', keyStrategy: 'seconds', keyThreshold: '3600' });
    const inboxes = new Map(SUBSCRIBERS.map((id) => [id, new Inbox(helper.getNode(`ok-${id}`))]));
    const rejections = SUBSCRIBERS.map((id) => new Inbox(helper.getNode(`rej-${id}`)));
    const manifestRejections: string[] = [];
    for (const id of SUBSCRIBERS) {
      readyConfig(helper.getNode(`cfg-${id}`)).endpoint.on('manifest-rejected', (r) => manifestRejections.push(`${id}:${r.reason}`));
    }
    const out = helper.getNode('out');
    const sent = [0, 1, 2, 3, 4].map((i) => `compact-${i}`);
    for (const payload of sent) out.receive({ payload });
    for (const [id, inbox] of inboxes) {
      const got = await inbox.waitFor(sent.length);
      assert.deepEqual(got.map((m) => m.payload).sort(), [...sent].sort(), id);
      assert.ok(got.every((m) => /compact$/.test((m.pqc as { suite: string }).suite)), 'released as compact');
    }

    const clientId = readyConfig(helper.getNode('cfg-publisher')).connection.clientId;
    const envelopes = broker.watch.published(clientId, TOPIC);
    assert.equal(envelopes.length, sent.length);
    for (const e of envelopes) {
      assert.equal(peekType(e), 'compactEnvelope');
      assert.ok(e.length < 200, `compact envelope of ${e.length} bytes`);
    }
    const manifests = broker.watch.published(clientId, 'pqc/batches/publisher');
    const listed = manifests.map((m) => decodeBatchManifest(m)).reduce((sum, d) => sum + (d.ok ? d.value.digests.length : 0), 0);
    assert.equal(listed, sent.length, 'the manifests list every envelope once');
    // Each manifest is handed to the broker after the envelopes it lists.
    const order = broker.watch.events.filter((e) => e.kind === 'publish' && e.clientId === clientId).map((e) => e.topics[0]);
    assert.equal(order.at(-1), 'pqc/batches/publisher');
    assert.ok(order.indexOf('pqc/batches/publisher') > order.indexOf(TOPIC));

    // The broker forges a manifest (signature bit flipped) and re-sends an envelope: nothing more is released.
    const forged = Buffer.from(manifests[0]);
    forged[forged.length - 1] ^= 0x01;
    const inject = (topic: string, payload: Buffer) => new Promise<void>((resolve, reject) => {
      broker.aedes.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (error) => (error ? reject(error) : resolve()));
    });
    await inject('pqc/batches/publisher', forged);
    await inject(TOPIC, envelopes[0]);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(manifestRejections.sort(), SUBSCRIBERS.map((id) => `${id}:bad-signature`).sort());
    for (const inbox of inboxes.values()) assert.equal(inbox.messages.length, sent.length, 'each message once');
    for (const r of rejections) assert.equal(r.messages.length, 0, 'a re-sent envelope is a quiet duplicate');
  });
});

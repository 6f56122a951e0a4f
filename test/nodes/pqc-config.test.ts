/**
 * pqc-config: the "Generate identity" admin endpoint, MQTT 5 against a private mosquitto
 * whose Maximum Packet Size the out node must respect (refusing before publish, via done(err)),
 * and the Throughput settings of a deployed flow (in effect, or refused without a crash), compact
 * mode's included.
 */
import assert from 'node:assert/strict';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import { DEFAULT_LIMITS, decodeBatchManifest, parseIdentityJson, peekType } from '../../lib';
import { decodeDirectEnvelope } from '../../lib/wire/envelope';
import { startAedes, type AedesBroker } from '../helpers/aedes';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto';
import {
  BrokerWatch, configNode, credentialsFor, errorTexts, type Fixtures, Inbox, lastStatus, makeFixtures, readyConfig, secretSamples, waitConnected, waitForError, waitForPeer, waitPaired, waitSubscribed,
} from './node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule] as unknown as Array<(RED: never) => void>;

describe('nodes: pqc-config', function () {
  let fx: Fixtures;

  before(function () {
    fx = makeFixtures();
  });

  beforeEach(async function () {
    await helper.startServer();
  });

  afterEach(async function () {
    await helper.unload();
    await helper.stopServer();
  });

  describe('POST /pqc-iiot/identity (Generate identity)', function () {
    beforeEach(async function () {
      await helper.load(NODES, [configNode('cfg', 1883, fx.caText)], {});
    });

    it('returns a new bundle for the credential field and its public parts', async function () {
      const res = await helper.request().post('/pqc-iiot/identity').send({ deviceId: 'press-7', sigAlgorithm: 'ml-dsa-44' }).expect(200);
      const bundle = parseIdentityJson(String(res.body.identity));
      assert.equal(bundle.deviceId, 'press-7');
      assert.equal(bundle.sigAlgorithm, 'ML-DSA-44');
      assert.equal(bundle.kemAlgorithm, 'ML-KEM-768');
      assert.equal(bundle.certificate, undefined, 'a CA must still issue the certificate');
      const info = res.body.info as Record<string, unknown>;
      assert.equal(info.deviceId, 'press-7');
      assert.match(String(info.fingerprint), /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
      assert.equal(info.kemPublicKey, Buffer.from(bundle.kemPublicKey).toString('base64'));
      const infoText = JSON.stringify(info);
      assert.ok(!/secret/i.test(infoText), 'public info names no secret field');
      for (const secret of secretSamples(bundle)) assert.ok(!infoText.includes(secret), 'no private key bytes in the public info');
    });

    it('answers 400 with a clear message for a bad device id or algorithm', async function () {
      const badId = await helper.request().post('/pqc-iiot/identity').send({ deviceId: 'no spaces' }).expect(400);
      assert.match(String(badId.body.error), /device id must be/);
      const badAlg = await helper.request().post('/pqc-iiot/identity').send({ deviceId: 'ok', sigAlgorithm: 'rsa' }).expect(400);
      assert.match(String(badAlg.body.error), /unknown signature algorithm/);
      const empty = await helper.request().post('/pqc-iiot/identity').send({}).expect(400);
      assert.match(String(empty.body.error), /device id/);
    });
  });

  describe('MQTT 5 broker with a maximum packet size (private mosquitto)', function () {
    let mosquitto: MosquittoBroker;

    beforeEach(async function () {
      // Room for a ~10 KB ML-DSA-44 announcement with certificate, not for a large envelope.
      mosquitto = await startMosquitto({ maxPacketSize: 12_000 });
    });

    afterEach(async function () {
      await helper.unload();
      await mosquitto.stop();
    });

    it('delivers small envelopes and refuses larger ones before publishing, through done(err)', async function () {
      const v5 = { protocol: '5' };
      const flow = [
        configNode('cfgS', mosquitto.port, fx.caText, v5),
        configNode('cfgG', mosquitto.port, fx.caText, v5),
        { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'plant/v5', qos: '1', retain: '', recipients: 'gateway', wires: [] },
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: false, outputs: 1, wires: [['ok']] },
        { id: 'ok', type: 'helper' },
      ];
      await helper.load(NODES, flow, { cfgS: credentialsFor(fx.sensor), cfgG: credentialsFor(fx.gateway) });
      const ok = new Inbox(helper.getNode('ok'));
      const cfgS = helper.getNode('cfgS');
      await waitConnected(cfgS);
      await waitConnected(helper.getNode('cfgG'));
      await waitForPeer(cfgS, 'gateway');
      await waitForPeer(helper.getNode('cfgG'), 'sensor-1');
      await waitSubscribed(helper.getNode('cfgG'), 'plant/#');
      assert.equal(readyConfig(cfgS).connection.maximumPacketSize, 12_000);

      const out = helper.getNode('out');
      out.receive({ payload: 'x'.repeat(9000) });
      await waitForError(out, /the broker accepts at most 12000 bytes/);
      out.receive({ payload: 'small' });
      const [msg] = await ok.waitFor(1);
      assert.equal(msg.payload, 'small', 'the oversized message was never published');
      assert.equal(readyConfig(cfgS).connection.state, 'connected', 'the broker never had reason to disconnect us');
    });
  });

  describe('Throughput settings in a deployed flow (aedes)', function () {
    let aedes: AedesBroker;
    let watch: BrokerWatch;

    beforeEach(async function () {
      aedes = await startAedes();
      watch = new BrokerWatch(aedes.broker);
    });

    afterEach(async function () {
      await helper.unload();
      await aedes.close();
    });

    /** Deploys a flow with the sensor (cfgS) and gateway (cfgG) config nodes; resolves once they trust each other and cfgG subscribed to `filters`. */
    async function loadPaired(flow: object[], ...filters: string[]): Promise<{ cfgS: ReturnType<typeof helper.getNode>; cfgG: ReturnType<typeof helper.getNode> }> {
      await helper.load(NODES, flow, { cfgS: credentialsFor(fx.sensor), cfgG: credentialsFor(fx.gateway) });
      const cfgS = helper.getNode('cfgS');
      const cfgG = helper.getNode('cfgG');
      await waitPaired(cfgS, cfgG);
      for (const filter of filters) await waitSubscribed(cfgG, filter);
      return { cfgS, cfgG };
    }

    it('the sender batches at most the configured number of messages per signature; the receiver runs with its own budget setting', async function () {
      const TOPIC = 'plant/line-1/batched';
      const flow = [
        configNode('cfgS', aedes.port, fx.caText, { batching: true, batchMaxLeaves: '3', batchMaxDelayMs: '50' }),
        configNode('cfgG', aedes.port, fx.caText, { budget: false }),
        { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: TOPIC, qos: '1', retain: '', recipients: 'gateway', wires: [] },
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: false, outputs: 1, wires: [['ok']] },
        { id: 'ok', type: 'helper' },
      ];
      const { cfgS, cfgG } = await loadPaired(flow, 'plant/#');
      const sender = readyConfig(cfgS).session;
      const receiver = readyConfig(cfgG).session;
      assert.deepEqual(sender.batching, { maxLeaves: 3, maxDelayMs: 50 });
      assert.equal(receiver.throughputStats.budget, undefined, 'budget off on the receiver');

      const ok = new Inbox(helper.getNode('ok'));
      const out = helper.getNode('out');
      const sent = [0, 1, 2, 3, 4, 5, 6].map((i) => `reading-${i}`);
      for (const payload of sent) out.receive({ payload });
      const got = await ok.waitFor(sent.length);
      assert.deepEqual(got.map((m) => m.payload).sort(), [...sent].sort());

      // On the wire: every envelope names its batch; none holds more than 3, and the 7 messages sent
      // at once did share signatures (with the default of 16 they would have been one batch of 7).
      const clientId = readyConfig(cfgS).connection.clientId;
      const counts = watch.published(clientId, TOPIC).map((bytes) => {
        const decoded = decodeDirectEnvelope(new Uint8Array(bytes));
        assert.ok(decoded.ok);
        return decoded.value.auth.kind === 'batch' ? decoded.value.auth.leafCount : 1;
      });
      assert.equal(counts.length, sent.length);
      assert.ok(Math.max(...counts) === 3, `leaf counts on the wire: ${counts.join(', ')}`);
      const stats = sender.throughputStats.batching;
      assert.ok(stats);
      assert.equal(stats.envelopes, sent.length);
      assert.equal(stats.largest, 3);
      assert.ok(stats.signatures >= 3, `${stats.signatures} signatures for 7 messages in batches of at most 3`);
    });

    it('compact mode: the sender\'s manifest size and the receiver\'s hold limits set on the nodes are the ones in effect', async function () {
      const TOPIC = 'plant/line-1/compact';
      const flow = [
        configNode('cfgS', aedes.port, fx.caText, { compactBatchMaxDigests: '2', compactBatchMaxDelayMs: '500' }),
        configNode('cfgG', aedes.port, fx.caText, { compactWaitMs: '30000', maxCompactPending: '16', maxManifestBytes: '8192' }),
        {
          id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: TOPIC, qos: '1', retain: '', recipients: '',
          signatures: 'compact', keyStrategy: 'seconds', keyThreshold: '3600', wires: [],
        },
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: false, outputs: 1, wires: [['ok']] },
        { id: 'ok', type: 'helper' },
      ];
      const { cfgS, cfgG } = await loadPaired(flow, 'plant/#', 'pqc/topic-keys/+/plant/#', 'pqc/batches/+');
      const receiver = readyConfig(cfgG).session;
      assert.deepEqual(receiver.limits, { ...DEFAULT_LIMITS, compactWaitMs: 30000, maxCompactPending: 16, maxManifestBytes: 8192 });
      assert.deepEqual(readyConfig(cfgS).session.limits, DEFAULT_LIMITS, 'the sender keeps the default limits');

      const ok = new Inbox(helper.getNode('ok'));
      const out = helper.getNode('out');
      const sent = [0, 1, 2, 3, 4].map((i) => `compact-${i}`);
      for (const payload of sent) out.receive({ payload });
      const got = await ok.waitFor(sent.length);
      assert.deepEqual(got.map((m) => m.payload).sort(), [...sent].sort());
      assert.ok(got.every((m) => /compact$/.test((m.pqc as { suite: string }).suite)), 'released as compact');

      // On the wire: compact envelopes, and manifests of at most 2 (the default would list all 5 in one).
      const clientId = readyConfig(cfgS).connection.clientId;
      assert.ok(watch.published(clientId, TOPIC).every((e) => peekType(e) === 'compactEnvelope'));
      const listed = watch.published(clientId, 'pqc/batches/sensor-1').map((m) => {
        const decoded = decodeBatchManifest(new Uint8Array(m));
        assert.ok(decoded.ok);
        return decoded.value.digests.length;
      });
      assert.deepEqual(listed, [2, 2, 1]);
      assert.deepEqual(readyConfig(cfgS).session.throughputStats.manifests, { manifests: 3, envelopes: 5, largest: 2 });
    });

    it('compact mode: an invalid setting is refused like the others (bad-settings, the setting named)', async function () {
      const flow = [
        configNode('cfgG', aedes.port, fx.caText, { compactWaitMs: '1e3' }),
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: false, outputs: 1, wires: [[]] },
      ];
      await helper.load(NODES, flow, { cfgG: credentialsFor(fx.gateway) });
      const cfgG = helper.getNode('cfgG');
      const pqc = (cfgG as unknown as { pqc: { ok: boolean; problem?: string } }).pqc;
      assert.equal(pqc.ok, false);
      assert.equal(pqc.problem, 'bad-settings');
      const pattern = /^manifest wait \(ms\) \(compactWaitMs\) must be an integer from 0 to 600000, not "1e3"$/;
      assert.ok(errorTexts(cfgG).some((t) => pattern.test(t)), errorTexts(cfgG).join('\n'));
      assert.deepEqual(lastStatus(helper.getNode('in')), { fill: 'red', shape: 'ring', text: 'pqc-secure-in.status.bad-settings' });
      assert.equal(aedes.broker.connectedClients, 0, 'a config node with a bad setting never connects');
    });

    it('an invalid setting: red status on the nodes using it, a log line naming it, done(err) on input, no crash', async function () {
      const flow = [
        configNode('cfgS', aedes.port, fx.caText, { batchMaxLeaves: '256' }),
        { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'plant/x', qos: '1', retain: '', recipients: 'gateway', wires: [] },
      ];
      await helper.load(NODES, flow, { cfgS: credentialsFor(fx.sensor) });
      const cfgS = helper.getNode('cfgS');
      const out = helper.getNode('out');
      const pqc = (cfgS as unknown as { pqc: { ok: boolean; problem?: string } }).pqc;
      assert.equal(pqc.ok, false);
      assert.equal(pqc.problem, 'bad-settings');
      assert.ok(errorTexts(cfgS).some((t) => /batchMaxLeaves\) must be an integer from 1 to 255, not "256"/.test(t)), errorTexts(cfgS).join('\n'));
      assert.deepEqual(lastStatus(out), { fill: 'red', shape: 'ring', text: 'pqc-secure-out.status.bad-settings' });
      out.receive({ payload: 'x' });
      await waitForError(out, /batchMaxLeaves/);
      assert.equal(aedes.broker.connectedClients, 0, 'a config node with a bad setting never connects');
    });
  });
});

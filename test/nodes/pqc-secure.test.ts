/**
 * pqc-secure-out → aedes → pqc-secure-in through the Node-RED runtime (node-red-node-test-helper),
 * in strict mode with CA-issued identities. Every test starts its own broker on a free port.
 */
import assert from 'node:assert/strict';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import { REASON_CODES } from '../../lib';
import {
  allTexts, brokerPerTest, configNode, credentialsFor, errorTexts, type Fixtures, Inbox, makeFixtures, readyConfig, secretSamples, waitForError, waitForStatus, waitPaired,
} from './node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule] as unknown as Array<(RED: never) => void>;

describe('nodes: pqc-secure-out → broker → pqc-secure-in', function () {
  let fx: Fixtures;
  const broker = brokerPerTest({ nodeRed: true });

  before(function () {
    fx = makeFixtures();
  });

  function credentials(): Record<string, Record<string, string>> {
    return { cfgS: credentialsFor(fx.sensor), cfgG: credentialsFor(fx.gateway) };
  }

  /** sensor-1 (publisher) and gateway (subscriber), each with its own config node. */
  function baseFlow(inNodes: Array<Record<string, unknown>>, extra: Array<Record<string, unknown>> = [], cfgG: Record<string, unknown> = {}, cfgS: Record<string, unknown> = {}): object[] {
    return [
      configNode('cfgS', broker.aedes.port, fx.caText, cfgS),
      configNode('cfgG', broker.aedes.port, fx.caText, cfgG),
      { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: '', qos: '1', retain: '', recipients: 'gateway', wires: [] },
      ...inNodes,
      ...extra,
    ];
  }

  function secureIn(id: string, filter: string, wires: string[][], more: Record<string, unknown> = {}): Record<string, unknown> {
    const rejections = wires.length === 2;
    return { id, type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: filter, qos: '1', datatype: 'auto-detect', rejections, outputs: wires.length, wires, ...more };
  }

  /** Both devices connected and trusting each other, and the gateway's filters active at the broker. */
  async function ready(gatewayFilters: string[]): Promise<void> {
    const cfgS = helper.getNode('cfgS');
    const cfgG = helper.getNode('cfgG');
    await waitPaired(cfgS, cfgG);
    const clientId = readyConfig(cfgG).connection.clientId;
    for (const f of gatewayFilters) await broker.watch.subscribed(clientId, f);
  }

  it('round trip in strict mode: only verified plaintext reaches output 1, the broker sees ciphertext', async function () {
    await helper.load(NODES, baseFlow([secureIn('in', 'plant/#', [['ok'], ['rej']])], [{ id: 'ok', type: 'helper' }, { id: 'rej', type: 'helper' }]), credentials());
    const ok = new Inbox(helper.getNode('ok'));
    const rej = new Inbox(helper.getNode('rej'));
    await ready(['plant/#']);

    helper.getNode('out').receive({ topic: 'plant/line1/temp', payload: { temp: 21.5, unit: 'C' } });
    const [msg] = await ok.waitFor(1);
    assert.deepEqual(msg.payload, { temp: 21.5, unit: 'C' });
    assert.equal(msg.topic, 'plant/line1/temp');
    assert.equal(msg.qos, 1);
    assert.equal(msg.retain, false);
    const pqc = msg.pqc as Record<string, unknown>;
    assert.equal(pqc.sender, 'sensor-1');
    assert.match(String(pqc.keyId), /^[0-9a-f]{32}$/);
    assert.equal(typeof pqc.seq, 'string');
    assert.equal(typeof pqc.timestamp, 'number');
    assert.equal(pqc.suite, 'ML-KEM-768/ML-DSA-44/AES-256-GCM');
    assert.doesNotThrow(() => JSON.stringify(msg), 'msg stays JSON-serialisable (no BigInt)');
    assert.equal(rej.messages.length, 0);

    const onWire = broker.watch.published(readyConfig(helper.getNode('cfgS')).connection.clientId, 'plant/line1/temp');
    assert.equal(onWire.length, 1);
    assert.ok(!onWire[0].includes(Buffer.from('21.5')) && !onWire[0].includes(Buffer.from('temp')), 'broker sees no plaintext');

    await waitForStatus(helper.getNode('out'), (s) => s.text === 'sent 1' && s.fill === 'green');
    await waitForStatus(helper.getNode('in'), (s) => s.text === 'ok 1 · rej 0' && s.fill === 'green');
  });

  it('keeps private keys out of status, logs and errors', async function () {
    await helper.load(NODES, baseFlow([secureIn('in', 'plant/#', [['ok']])], [{ id: 'ok', type: 'helper' }]), credentials());
    const ok = new Inbox(helper.getNode('ok'));
    await ready(['plant/#']);
    helper.getNode('out').receive({ topic: 'plant/a', payload: 'x' });
    helper.getNode('out').receive({ topic: 'factory/a', payload: 'y' }); // refused: an error text to inspect
    await ok.waitFor(1);
    await waitForError(helper.getNode('out'), /does not allow publishing/);
    const secrets = [fx.sensor, fx.gateway].flatMap(secretSamples);
    const said = ['cfgS', 'cfgG', 'out', 'in']
      .map((id) => helper.getNode(id))
      .flatMap((n) => allTexts(n));
    assert.ok(said.some((t) => t.includes('trusted key of')), 'the log lines were captured');
    for (const secret of secrets) assert.ok(!said.some((t) => t.includes(secret)), 'secret key material in node output');
    const out = helper.getNode('out') as unknown as Record<string, unknown>;
    assert.equal(out.credentials, undefined);
  });

  describe('datatypes', function () {
    async function loadDatatypes(): Promise<Record<string, Inbox>> {
      const types = ['buffer', 'utf8', 'json', 'auto-detect'];
      const inNodes = types.map((t) => secureIn(`in-${t}`, 'plant/#', [[`h-${t}`]], { datatype: t }));
      const helpers = types.map((t) => ({ id: `h-${t}`, type: 'helper' }));
      await helper.load(NODES, baseFlow(inNodes, helpers), credentials());
      const inboxes = Object.fromEntries(types.map((t) => [t, new Inbox(helper.getNode(`h-${t}`))]));
      await ready(['plant/#']);
      return inboxes;
    }

    it('converts JSON text per datatype; each node gets the message once', async function () {
      const inbox = await loadDatatypes();
      helper.getNode('out').receive({ topic: 'plant/a', payload: '{"a":1}' });
      const [buf] = await inbox.buffer.waitFor(1);
      const [str] = await inbox.utf8.waitFor(1);
      const [json] = await inbox.json.waitFor(1);
      const [auto] = await inbox['auto-detect'].waitFor(1);
      assert.ok(Buffer.isBuffer(buf.payload));
      assert.equal((buf.payload as Buffer).toString(), '{"a":1}');
      assert.equal(str.payload, '{"a":1}');
      assert.deepEqual(json.payload, { a: 1 });
      assert.deepEqual(auto.payload, { a: 1 });
      // A second message proves every node received exactly one copy of the first.
      helper.getNode('out').receive({ topic: 'plant/a', payload: '[2]' });
      for (const box of Object.values(inbox)) assert.equal((await box.waitFor(2)).length, 2);
    });

    it('auto-detect keeps text and binary; json reports non-JSON as an error with the message', async function () {
      const inbox = await loadDatatypes();
      helper.getNode('out').receive({ topic: 'plant/a', payload: 'plain text' });
      helper.getNode('out').receive({ topic: 'plant/b', payload: Buffer.from([0xff, 0xfe, 0x00]) });
      const [text, binary] = await inbox['auto-detect'].waitFor(2);
      assert.equal(text.payload, 'plain text');
      assert.ok(Buffer.isBuffer(binary.payload));
      assert.deepEqual(binary.payload, Buffer.from([0xff, 0xfe, 0x00]));
      const error = await waitForError(helper.getNode('in-json'), /not valid JSON/);
      assert.equal((error.msg as Record<string, unknown>).topic, 'plant/a');
      const [[first], [second]] = [await inbox.utf8.waitFor(1), (await inbox.utf8.waitFor(2)).slice(1)];
      assert.equal(first.payload, 'plain text');
      assert.equal(typeof second.payload, 'string');
    });
  });

  describe('missing or incomplete security configuration', function () {
    async function loadWith(cfg: Record<string, unknown>, creds: Record<string, string>): Promise<void> {
      const flow = [
        configNode('cfgX', broker.aedes.port, fx.caText, cfg),
        { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgX', topic: 'plant/a', qos: '0', retain: '', recipients: 'gateway', wires: [] },
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgX', topic: 'plant/#', qos: '0', datatype: 'auto-detect', rejections: false, outputs: 1, wires: [[]] },
      ];
      await helper.load(NODES, flow, { cfgX: creds });
    }

    it('no identity credential: red status, inputs fail through done(err), nothing crashes or connects', async function () {
      await loadWith({}, {});
      for (const id of ['out', 'in']) {
        const s = await waitForStatus(helper.getNode(id), (st) => st.fill === 'red');
        assert.equal(s.text, `pqc-secure-${id}.status.no-identity`);
      }
      helper.getNode('out').receive({ payload: 'x' });
      await waitForError(helper.getNode('out'), /no device identity/);
      assert.equal(broker.watch.events.filter((e) => e.kind === 'subscribe').length, 0, 'no connection was made');
    });

    it('strict mode without a CA key: "no CA"', async function () {
      await loadWith({ caPublicKey: '' }, credentialsFor(fx.gateway));
      const s = await waitForStatus(helper.getNode('out'), (st) => st.fill === 'red');
      assert.equal(s.text, 'pqc-secure-out.status.no-ca');
    });

    it('strict mode with an uncertified identity: "no certificate"', async function () {
      await loadWith({}, credentialsFor(fx.uncertified));
      const s = await waitForStatus(helper.getNode('in'), (st) => st.fill === 'red');
      assert.equal(s.text, 'pqc-secure-in.status.no-certificate');
    });

    it('a broken identity is reported without quoting it', async function () {
      const secretLooking = '{"format":"pqc-iiot-identity/1","deviceId":"x","sigSecretKey":"SECRET-MATERIAL-123"';
      await loadWith({}, { identity: secretLooking });
      const s = await waitForStatus(helper.getNode('out'), (st) => st.fill === 'red');
      assert.equal(s.text, 'pqc-secure-out.status.bad-identity');
      const errors = errorTexts(helper.getNode('cfgX'));
      assert.ok(errors.length > 0);
      assert.ok(!errors.some((e) => e.includes('SECRET-MATERIAL')));
    });

    it('no config node selected: red status, no crash', async function () {
      const flow = [{ id: 'out', type: 'pqc-secure-out', pqcConfig: '', topic: 'plant/a', qos: '0', retain: '', recipients: 'gateway', wires: [] }];
      await helper.load(NODES, flow);
      const s = await waitForStatus(helper.getNode('out'), (st) => st.fill === 'red');
      assert.equal(s.text, 'pqc-secure-out.status.no-config');
    });
  });

  it('partial redeploy of one node leaves no stale subscription, handler or listener', async function () {
    const flow = baseFlow(
      [secureIn('inA', 'plant/a/#', [['ok']]), secureIn('inKeep', 'plant/keep/#', [['keep']])],
      [{ id: 'ok', type: 'helper' }, { id: 'keep', type: 'helper' }],
    );
    await helper.load(NODES, flow, credentials());
    await ready(['plant/a/#', 'plant/keep/#']);
    const { connection } = readyConfig(helper.getNode('cfgG'));
    const statusListeners = connection.listenerCount('status');

    // Only inA changes (its filter), as a "modified nodes" deploy from the editor does.
    const changed = flow.map((n) => ((n as { id: string }).id === 'inA' ? { ...n, topic: 'plant/b/#' } : n));
    await helper.setFlows(changed, 'nodes', credentials());
    await broker.watch.unsubscribed(connection.clientId, 'plant/a/#');
    await broker.watch.subscribed(connection.clientId, 'plant/b/#');
    assert.equal(readyConfig(helper.getNode('cfgG')).connection, connection, 'config node and its connection kept');
    assert.deepEqual(connection.subscribedFilters().sort(), [
      'plant/b/#', 'plant/keep/#', 'pqc/batches/+', 'pqc/keys/+', 'pqc/revocations', 'pqc/topic-keys/+/plant/b/#', 'pqc/topic-keys/+/plant/keep/#',
    ]);
    assert.equal(connection.listenerCount('status'), statusListeners, 'no leaked status listener');

    const ok = new Inbox(helper.getNode('ok'));
    const out = helper.getNode('out');
    out.receive({ topic: 'plant/a/1', payload: 'old filter' });
    out.receive({ topic: 'plant/b/1', payload: 'new filter' });
    const [first] = await ok.waitFor(1);
    assert.equal(first.topic, 'plant/b/1', 'nothing arrived through the old filter');
    assert.equal(first.payload, 'new filter');
  });

  it('rejections reach output 2 with reasons; duplicates are dropped quietly', async function () {
    await helper.load(
      NODES,
      baseFlow([secureIn('in', 'plant/line1/#', [['ok'], ['rej']])], [{ id: 'ok', type: 'helper' }, { id: 'rej', type: 'helper' }], { replayWindow: '2' }),
      credentials(),
    );
    const ok = new Inbox(helper.getNode('ok'));
    const rej = new Inbox(helper.getNode('rej'));
    await ready(['plant/line1/#']);
    const sensorClient = readyConfig(helper.getNode('cfgS')).connection.clientId;
    const out = helper.getNode('out');
    for (let i = 1; i <= 4; i++) out.receive({ topic: 'plant/line1/temp', payload: `m${i}` });
    // Sent where the gateway does not listen: the broker keeps a copy the gateway never saw.
    out.receive({ topic: 'plant/line9/temp', payload: 'elsewhere' });
    await ok.waitFor(4);
    const captured = () => broker.watch.published(sensorClient, 'plant/line1/temp');
    await broker.watch.wait((e) => e.kind === 'publish' && e.clientId === sensorClient && e.topics[0] === 'plant/line9/temp');
    const [first, , , last] = captured();
    const elsewhere = broker.watch.published(sensorClient, 'plant/line9/temp')[0];

    const attacker = await broker.plainClient();
    await attacker.publishAsync('plant/line1/temp', Buffer.from('garbage from a plain client'), { qos: 1 });
    await attacker.publishAsync('plant/line1/temp', first, { qos: 1 }); // older than the window of 2
    await attacker.publishAsync('plant/line1/temp', last, { qos: 1 }); // exact duplicate: quiet
    await attacker.publishAsync('plant/line1/temp', elsewhere, { qos: 1 }); // re-routed
    out.receive({ topic: 'plant/line1/temp', payload: 'm5' }); // sentinel: the same path, after the attacks

    const [garbage, replayed, rerouted] = (await rej.waitFor(3)).map((m) => m.payload as Record<string, unknown>);
    const okMessages = await ok.waitFor(5);
    assert.deepEqual(okMessages.map((m) => m.payload), ['m1', 'm2', 'm3', 'm4', 'm5'], 'exactly the legitimate messages, once each');
    assert.equal(rej.messages.length, 3, 'the duplicate did not reach output 2');

    assert.ok(REASON_CODES.includes(garbage.reason as never));
    assert.equal(garbage.topic, 'plant/line1/temp');
    assert.equal(garbage.sender, undefined);
    assert.equal(replayed.reason, 'replay');
    assert.equal(replayed.sender, 'sensor-1');
    assert.equal(typeof replayed.description, 'string');
    assert.equal(rerouted.reason, 'bad-signature');
    assert.equal(rej.messages[0].topic, 'plant/line1/temp');
    await waitForStatus(helper.getNode('in'), (s) => s.text === 'ok 5 · rej 3 · drop 1');
  });

  describe('send failures reach done(err)', function () {
    it('refuses an envelope larger than maxEnvelopeBytes', async function () {
      await helper.load(NODES, baseFlow([secureIn('in', 'plant/#', [['ok']])], [{ id: 'ok', type: 'helper' }], {}, { maxEnvelopeBytes: '8192' }), credentials());
      const ok = new Inbox(helper.getNode('ok'));
      await ready(['plant/#']);
      const out = helper.getNode('out');
      out.receive({ topic: 'plant/big', payload: Buffer.alloc(20_000) });
      await waitForError(out, /exceeds the limit of 8192/);
      out.receive({ topic: 'plant/small', payload: 'fits' });
      const [msg] = await ok.waitFor(1);
      assert.equal(msg.topic, 'plant/small', 'the oversized message was never published');
      await waitForStatus(out, (s) => s.text === 'sent 1 · err 1');
    });

    it('reports bad messages, unknown recipients and topics the certificate does not allow', async function () {
      // "out2" takes topic, QoS and recipients from the message.
      const out2 = { id: 'out2', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: '', qos: '', retain: '', recipients: '', wires: [] };
      // The gateway's config node connects only while a node uses it.
      await helper.load(NODES, baseFlow([secureIn('in', 'plant/#', [[]])], [out2]), credentials());
      await ready([]);
      const out = helper.getNode('out2');
      out.receive({ payload: 'no topic', recipients: 'gateway' });
      await waitForError(out, /no topic/);
      out.receive({ topic: 'plant/+/x', payload: 'x', recipients: 'gateway' });
      await waitForError(out, /not a valid MQTT topic/);
      out.receive({ topic: 'plant/a', payload: 'x', qos: 7, recipients: 'gateway' });
      await waitForError(out, /msg.qos must be 0, 1 or 2/);
      out.receive({ topic: 'plant/a', payload: 'x', recipients: ['gateway', 'nobody'] });
      await waitForError(out, /recipient "nobody" has no trusted key/);
      out.receive({ topic: 'plant/a', payload: 'x', recipients: 'not valid!' });
      await waitForError(out, /not a valid device id/);
      out.receive({ topic: 'factory/a', payload: 'x', recipients: 'gateway' });
      await waitForError(out, /does not allow publishing on "factory\/a"/);
      out.receive({ topic: 'plant/a', recipients: 'gateway' });
      await waitForError(out, /msg.payload is missing/);
      await waitForStatus(out, (st) => st.text === 'sent 0 · err 7');
    });

    it('reports a full offline queue instead of dropping', async function () {
      await helper.load(NODES, baseFlow([secureIn('in', 'plant/#', [[]])], [], {}, { queueLimit: '1' }), credentials());
      await ready([]);
      const cfgS = helper.getNode('cfgS');
      const { connection } = readyConfig(cfgS);
      const down = new Promise<void>((resolve) => {
        const stop = connection.onStatus((s) => {
          if (s === 'disconnected' || s === 'reconnecting') {
            stop();
            resolve();
          }
        });
      });
      await broker.aedes.close();
      await down;
      const out = helper.getNode('out');
      out.receive({ topic: 'plant/a', payload: 'queued' });
      out.receive({ topic: 'plant/a', payload: 'overflow' });
      await waitForError(out, /queue is full \(1 messages\)/);
      assert.equal(connection.queuedCount, 1);
    });
  });
});

/**
 * pqc-revocation (I7) through the Node-RED runtime and an in-process aedes broker: an operator
 * node revokes a sensor and the gateway's pqc-secure-in rejects the sensor's very next message
 * with `revoked` while other senders continue; device-mode nodes report the entry (and warn on
 * the revoked device itself); a restarted operator continues the sequence from the retained
 * update; a CA key that is not the trust anchor, or bad input, is refused. Waits are on events
 * (node status, helper inputs, broker publishes), never on timers.
 */
import assert from 'node:assert/strict';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import revocationNodeModule from '../../nodes/pqc-revocation';
import {
  ALL_KEYS, EMPTY_REVOCATIONS, applyRevocation, caKeyPairToJson, createCa, createIdentity, decodeRevocation, fingerprintOf,
  issueCertificate, toHex, type IdentityBundle,
} from '../../lib';
import {
  Inbox, NOW, allTexts, brokerPerTest, configNode, credentialsFor, makeFixtures, readyConfig, waitConnected, waitForError,
  waitForPeer, waitForStatus, waitSubscribed, type Fixtures,
} from './node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule, revocationNodeModule] as unknown as Array<(RED: never) => void>;
const TOPIC = 'pqc/revocations';
const ZEROS = toHex(ALL_KEYS);

describe('nodes: pqc-revocation (I7)', function () {
  let fx: Fixtures;
  let sensor2: IdentityBundle;
  let operatorIdentity: IdentityBundle;
  const broker = brokerPerTest({ nodeRed: true });

  before(function () {
    fx = makeFixtures();
    const validity = { notBefore: NOW - 3600_000, notAfter: NOW + 7 * 86400_000 };
    sensor2 = issueCertificate(fx.ca, createIdentity({ deviceId: 'sensor-2', sigAlgorithm: 'ML-DSA-44' }), { roles: 'pub', topics: ['plant/#'], ...validity });
    operatorIdentity = issueCertificate(fx.ca, createIdentity({ deviceId: 'operator', sigAlgorithm: 'ML-DSA-44' }), { roles: 'sub', topics: ['ops/#'], ...validity });
  });

  const caKey = (): Record<string, string> => ({ caKey: caKeyPairToJson(fx.ca) });

  function operatorNode(id: string, cfg: string, wires: string[][] = [[]]): Record<string, unknown> {
    return { id, type: 'pqc-revocation', pqcConfig: cfg, mode: 'operator', wires };
  }

  /** Resolves once an operator node can issue (green status: connected and synchronised). */
  function operatorReady(id: string): Promise<unknown> {
    return waitForStatus(helper.getNode(id), (s) => s.fill === 'green');
  }

  /** Publishes of the update (as the broker saw them) by one config node's connection. */
  function updatesFrom(configId: string): Buffer[] {
    return broker.watch.published(readyConfig(helper.getNode(configId)).connection.clientId, TOPIC);
  }

  it('I7 operator revokes sensor-1: its very next message is rejected (revoked), sensor-2 continues, device nodes report it', async function () {
    const flow = [
      configNode('cfgS1', broker.aedes.port, fx.caText),
      configNode('cfgS2', broker.aedes.port, fx.caText),
      configNode('cfgG', broker.aedes.port, fx.caText),
      configNode('cfgO', broker.aedes.port, fx.caText),
      { id: 'out1', type: 'pqc-secure-out', pqcConfig: 'cfgS1', topic: 'plant/s1', qos: '1', retain: '', recipients: 'gateway', wires: [] },
      { id: 'out2', type: 'pqc-secure-out', pqcConfig: 'cfgS2', topic: 'plant/s2', qos: '1', retain: '', recipients: 'gateway', wires: [] },
      { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: true, outputs: 2, wires: [['ok'], ['rej']] },
      operatorNode('op', 'cfgO', [['opOut']]),
      { id: 'devG', type: 'pqc-revocation', pqcConfig: 'cfgG', mode: 'device', wires: [['devOut']] },
      { id: 'devS', type: 'pqc-revocation', pqcConfig: 'cfgS1', mode: 'device', wires: [[]] },
      ...['ok', 'rej', 'opOut', 'devOut'].map((id) => ({ id, type: 'helper' })),
    ];
    await helper.load(NODES, flow, {
      cfgS1: credentialsFor(fx.sensor), cfgS2: credentialsFor(sensor2), cfgG: credentialsFor(fx.gateway), cfgO: credentialsFor(operatorIdentity),
      op: caKey(),
    });
    const [ok, rej, opOut, devOut] = ['ok', 'rej', 'opOut', 'devOut'].map((id) => new Inbox(helper.getNode(id)));
    for (const id of ['cfgS1', 'cfgS2', 'cfgG', 'cfgO']) await waitConnected(helper.getNode(id));
    await waitForPeer(helper.getNode('cfgG'), 'sensor-1');
    await waitForPeer(helper.getNode('cfgG'), 'sensor-2');
    await waitForPeer(helper.getNode('cfgS1'), 'gateway');
    await waitForPeer(helper.getNode('cfgS2'), 'gateway');
    await waitSubscribed(helper.getNode('cfgG'), 'plant/#');
    await waitSubscribed(helper.getNode('cfgG'), TOPIC);
    await waitSubscribed(helper.getNode('cfgS1'), TOPIC);
    await operatorReady('op');

    helper.getNode('out1').receive({ payload: 'before' });
    await ok.waitFor(1);

    helper.getNode('op').receive({ payload: { device_id: 'sensor-1' } });
    const [issued] = await opOut.waitFor(1);
    assert.equal(issued.topic, TOPIC);
    assert.deepEqual(issued.payload, {
      seq: 0, added: [{ device_id: 'sensor-1', key_id: ZEROS, all_keys: true }], alreadyRevoked: false, revoked: 1,
    });

    // The very next message of sensor-1, then one of sensor-2.
    helper.getNode('out1').receive({ payload: 'after' });
    helper.getNode('out2').receive({ payload: 'other sender' });
    const [rejected] = await rej.waitFor(1);
    const accepted = await ok.waitFor(2);
    assert.deepEqual(accepted.map((m) => [m.payload, (m.pqc as Record<string, unknown>).sender]), [['before', 'sensor-1'], ['other sender', 'sensor-2']]);
    const reason = rejected.payload as Record<string, unknown>;
    assert.equal(reason.reason, 'revoked');
    assert.equal(reason.sender, 'sensor-1');
    assert.equal(rej.messages.length, 1);
    const peers = readyConfig(helper.getNode('cfgG')).session.listPeers().map((p) => p.deviceId);
    assert.ok(peers.includes('sensor-2') && !peers.includes('sensor-1'), 'sensor-1 lost its trust record');

    // Device mode: the gateway reports the entry; sensor-1 learns it was revoked itself.
    const [entry] = await devOut.waitFor(1);
    assert.equal(entry.topic, TOPIC);
    assert.deepEqual(entry.payload, { device_id: 'sensor-1', key_id: ZEROS, all_keys: true, seq: 0 });
    const self = await waitForStatus(helper.getNode('devS'), (s) => s.fill === 'yellow');
    assert.equal(self.text, 'this device is revoked · seq 0');
    await waitForStatus(helper.getNode('devG'), (s) => s.text === 'seq 0 · 1 revoked');
    await waitForStatus(helper.getNode('op'), (s) => s.text === 'seq 0 · 1 revoked' && s.fill === 'green');

    // Already revoked (here: a key of a device whose every key is revoked): nothing new is issued.
    helper.getNode('op').receive({ payload: { device_id: 'sensor-1', key_id: fingerprintOf(fx.sensor.keyId) } });
    const [, again] = await opOut.waitFor(2);
    assert.deepEqual(again.payload, { seq: 0, added: [], alreadyRevoked: true, revoked: 1 });
    assert.equal(updatesFrom('cfgO').length, 1, 'one update on the broker');
    assert.equal(devOut.messages.length, 1);

    // The CA secret key never reached a status, log line or error.
    const secret = Buffer.from(fx.ca.secretKey.subarray(32, 56)).toString('base64');
    const said = ['op', 'devG', 'devS', 'cfgO'].flatMap((id) => allTexts(helper.getNode(id)));
    assert.ok(said.length > 0 && !said.some((t) => t.includes(secret)));
  });

  it('I7 a restarted operator continues the sequence from the retained update (seq + 1, cumulative)', async function () {
    const flowA = [configNode('cfgO', broker.aedes.port, fx.caText), operatorNode('op', 'cfgO', [['opOut']]), { id: 'opOut', type: 'helper' }];
    await helper.load(NODES, flowA, { cfgO: credentialsFor(operatorIdentity), op: caKey() });
    const outA = new Inbox(helper.getNode('opOut'));
    await operatorReady('op');
    helper.getNode('op').receive({ payload: { device_id: 'sensor-1' } });
    const [first] = await outA.waitFor(1);
    assert.equal((first.payload as Record<string, unknown>).seq, 0);
    const firstBytes = updatesFrom('cfgO')[0];

    // A new flow: new config node (new connection, empty session), new operator node.
    const flowB = [configNode('cfgO2', broker.aedes.port, fx.caText), operatorNode('op2', 'cfgO2', [['opOut2']]), { id: 'opOut2', type: 'helper' }];
    await helper.setFlows(flowB, 'full', { cfgO2: credentialsFor(operatorIdentity), op2: caKey() });
    const outB = new Inbox(helper.getNode('opOut2'));
    // Ready only once the retained update was applied, never on an empty state.
    const ready = await waitForStatus(helper.getNode('op2'), (s) => s.fill === 'green');
    assert.equal(ready.text, 'seq 0 · 1 revoked');

    helper.getNode('op2').receive({ payload: { device_id: 'sensor-2', key_id: toHex(sensor2.keyId) } });
    const [second] = await outB.waitFor(1);
    assert.deepEqual(second.payload, {
      seq: 1, added: [{ device_id: 'sensor-2', key_id: toHex(sensor2.keyId), all_keys: false }], alreadyRevoked: false, revoked: 2,
    });

    const [bytes] = updatesFrom('cfgO2');
    const decoded = decodeRevocation(bytes);
    assert.ok(decoded.ok);
    assert.equal(decoded.value.seq, 1n);
    assert.deepEqual(decoded.value.entries.map((e) => [e.deviceId, toHex(e.keyId)]), [['sensor-1', ZEROS], ['sensor-2', toHex(sensor2.keyId)]]);
    // A receiver that holds update 0 accepts it as the successor; a late joiner gets both entries.
    const afterFirst = applyRevocation(EMPTY_REVOCATIONS, firstBytes, TOPIC, TOPIC, fx.ca.publicKey);
    assert.ok(afterFirst.ok);
    const successor = applyRevocation(afterFirst.value.state, bytes, TOPIC, TOPIC, fx.ca.publicKey);
    assert.ok(successor.ok);
    assert.equal(successor.value.added.length, 1);
    const lateJoiner = applyRevocation(EMPTY_REVOCATIONS, bytes, TOPIC, TOPIC, fx.ca.publicKey);
    assert.ok(lateJoiner.ok);
    assert.equal(lateJoiner.value.state.entries.length, 2);
  });

  it('a CA key that is not the trust anchor, a broken one or none: red status, inputs fail, nothing published', async function () {
    const flow = [
      configNode('cfgO', broker.aedes.port, fx.caText),
      operatorNode('opWrong', 'cfgO'),
      operatorNode('opBroken', 'cfgO'),
      operatorNode('opNone', 'cfgO'),
      // Device mode needs no CA key.
      { id: 'dev', type: 'pqc-revocation', pqcConfig: 'cfgO', mode: 'device', wires: [[]] },
    ];
    const broken = '{"format":"pqc-iiot-ca/1","sigAlgorithm":"ML-DSA-44","secretKey":"SECRET-MATERIAL-123"';
    await helper.load(NODES, flow, {
      cfgO: credentialsFor(operatorIdentity),
      opWrong: { caKey: caKeyPairToJson(createCa()) },
      opBroken: { caKey: broken },
    });
    const expected: Record<string, [string, RegExp]> = {
      opWrong: ['pqc-revocation.status.ca-mismatch', /CA key does not match the trust anchor/],
      opBroken: ['pqc-revocation.status.bad-ca-key', /CA key is not valid/],
      opNone: ['pqc-revocation.status.no-ca-key', /no CA key/],
    };
    for (const [id, [status, error]] of Object.entries(expected)) {
      const node = helper.getNode(id);
      const s = await waitForStatus(node, (st) => st.fill === 'red');
      assert.equal(s.text, status);
      node.receive({ payload: { device_id: 'sensor-1' } });
      await waitForError(node, error);
      assert.ok(!allTexts(node).some((t) => t.includes('SECRET-MATERIAL')));
    }
    await waitForStatus(helper.getNode('dev'), (s) => s.fill === 'green');
    assert.equal(broker.watch.events.filter((e) => e.kind === 'publish' && e.topics[0] === TOPIC).length, 0);
  });

  it('bad input reaches done(err): not an object, bad device id, bad key id', async function () {
    const flow = [configNode('cfgO', broker.aedes.port, fx.caText), operatorNode('op', 'cfgO', [['opOut']]), { id: 'opOut', type: 'helper' }];
    await helper.load(NODES, flow, { cfgO: credentialsFor(operatorIdentity), op: caKey() });
    const out = new Inbox(helper.getNode('opOut'));
    await operatorReady('op');
    const op = helper.getNode('op');
    const cases: Array<[unknown, RegExp]> = [
      ['sensor-1', /msg.payload must be an object/],
      [{ key_id: ZEROS }, /device_id missing is not a valid device id/],
      [{ device_id: 'bad id!' }, /device_id "bad id!" is not a valid device id/],
      [{ device_id: 'x'.repeat(129) }, /is not a valid device id/],
      [{ device_id: 'sensor-1', key_id: 'xyz' }, /key_id "xyz" must be 32 hex digits/],
      [{ device_id: 'sensor-1', key_id: 'ab'.repeat(15) }, /key_id "a?b?.*" must be 32 hex digits/],
      [{ device_id: 'sensor-1', key_id: 42 }, /key_id of type number must be 32 hex digits/],
    ];
    for (const [payload, error] of cases) {
      op.receive({ payload });
      await waitForError(op, error);
    }
    // A valid request after the bad ones still works, and is the only update.
    op.receive({ payload: { device_id: 'sensor-1', key_id: fingerprintOf(fx.sensor.keyId) } });
    const [msg] = await out.waitFor(1);
    assert.equal((msg.payload as Record<string, unknown>).seq, 0);
    assert.equal(out.messages.length, 1);
    assert.equal(updatesFrom('cfgO').length, 1);
  });
});

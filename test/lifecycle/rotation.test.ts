/**
 * Trust over time, end to end through an in-process aedes broker.
 *
 * Rotation (through the Node-RED nodes): sensor-1 rotates with the CLI (`identity rotate`, then
 * `ca issue`) and its config node is redeployed with the new identity. The gateway moves to key
 * epoch 2 and accepts the new messages; afterwards an envelope made with the epoch-1 key (new or
 * captured before the rotation) is `stale-key`, a replayed epoch-1 announcement is
 * `epoch-rollback`, and the replay window carried over (a replayed epoch-2 envelope is a duplicate).
 *
 * Expiry and renewal (config/endpoint level: the node does not expose the clock, buildFromConfig
 * takes it): a peer whose certificate has expired is rejected with `expired`, setting the clock
 * back does not revive it (time floor), the device itself refuses to send, and a renewed
 * certificate (`ca issue` again: same key, same epoch, new validity) is accepted again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import helper from 'node-red-node-test-helper';
import configNodeModule from '../../nodes/pqc-config';
import outNodeModule from '../../nodes/pqc-secure-out';
import inNodeModule from '../../nodes/pqc-secure-in';
import {
  SecureSession, SoftwareProvider, caKeyPairToJson, createIdentity, identityToJson, issueCertificate, parseIdentityJson, toHex,
  type IdentityBundle,
} from '../../lib';
import { buildFromConfig, type ConfigOutcome } from '../../lib/io/config';
import type { Verdict } from '../../lib/io/endpoint';
import { EXIT } from '../../lib/cli/main';
import { CliSandbox } from '../cli/cli-harness';
import {
  brokerPerTest, configNode, credentialsFor, type Fixtures, Inbox, makeFixtures, nodeRedPerTest, readyConfig, waitForPeer, waitForStatus, waitPaired,
  waitSubscribed,
} from '../nodes/node-harness';

helper.init(require.resolve('node-red'));

const NODES = [configNodeModule, outNodeModule, inNodeModule] as unknown as Array<(RED: never) => void>;
const HOUR = 3600_000;

describe('lifecycle: key rotation and certificate expiry', function () {
  let fx: Fixtures;
  const broker = brokerPerTest();

  before(function () {
    fx = makeFixtures();
  });

  describe('rotation through the nodes', function () {
    let box: CliSandbox;
    nodeRedPerTest();

    beforeEach(function () {
      box = new CliSandbox();
    });

    afterEach(function () {
      box.cleanup();
    });

    /** The operator's side of a rotation, with the CLI as documented: rotate, then certify. */
    async function rotateWithCli(current: IdentityBundle): Promise<string> {
      fs.mkdirSync(box.path('ca'));
      fs.writeFileSync(box.path('ca', 'ca-key.json'), caKeyPairToJson(fx.ca), { mode: 0o600 });
      fs.writeFileSync(box.path('sensor-1.json'), identityToJson(current), { mode: 0o600 });
      const rotate = await box.run(['identity', 'rotate', '--in', 'sensor-1.json', '--out', 'sensor-1.e2.json']);
      assert.equal(rotate.code, EXIT.ok, rotate.stderr);
      const issue = await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'sensor-1.e2.json', '--roles', 'pub', '--topics', 'plant/#']);
      assert.equal(issue.code, EXIT.ok, issue.stderr);
      return fs.readFileSync(box.path('sensor-1.e2.json'), 'utf8');
    }

    it('receivers move to epoch 2, then refuse the epoch-1 key (stale-key) and its announcement (epoch-rollback)', async function () {
      const flow = (sensorName: string): Array<Record<string, unknown>> => [
        configNode('cfgS', broker.aedes.port, fx.caText, { name: sensorName }),
        configNode('cfgG', broker.aedes.port, fx.caText),
        { id: 'out', type: 'pqc-secure-out', pqcConfig: 'cfgS', topic: 'plant/a', qos: '1', retain: '', recipients: 'gateway', wires: [] },
        { id: 'in', type: 'pqc-secure-in', pqcConfig: 'cfgG', topic: 'plant/#', qos: '1', datatype: 'utf8', rejections: true, outputs: 2, wires: [['ok'], ['rej']] },
        { id: 'ok', type: 'helper' },
        { id: 'rej', type: 'helper' },
      ];
      await helper.load(NODES, flow('sensor epoch 1'), { cfgS: credentialsFor(fx.sensor), cfgG: credentialsFor(fx.gateway) });
      const ok = new Inbox(helper.getNode('ok'));
      const rej = new Inbox(helper.getNode('rej'));
      const cfgG = helper.getNode('cfgG');
      await waitPaired(helper.getNode('cfgS'), cfgG);
      await waitSubscribed(cfgG, 'plant/#');
      const gatewayClient = readyConfig(cfgG).connection.clientId;
      const oldSensorClient = readyConfig(helper.getNode('cfgS')).connection.clientId;

      helper.getNode('out').receive({ payload: 'epoch 1' });
      const [first] = await ok.waitFor(1);
      assert.equal((first.pqc as Record<string, unknown>).keyEpoch, 1);
      const [oldEnvelope] = broker.watch.published(oldSensorClient, 'plant/a');
      const [oldAnnouncement] = broker.watch.published(oldSensorClient, 'pqc/keys/sensor-1');
      const [gatewayAnnouncement] = broker.watch.published(gatewayClient, 'pqc/keys/gateway');

      // Rotate, then redeploy only the sensor's config node (its out node follows) with the new identity.
      const rotatedText = await rotateWithCli(fx.sensor);
      const rotated = parseIdentityJson(rotatedText);
      assert.equal(rotated.keyEpoch, 2);
      const { endpoint: gatewayEndpoint, session: gatewaySession } = readyConfig(cfgG);
      const movedToEpoch2 = new Promise<void>((resolve) => {
        const onPeer = (p: { deviceId: string; keyEpoch: number }): void => {
          if (p.deviceId === 'sensor-1' && p.keyEpoch === 2) {
            gatewayEndpoint.off('peer', onPeer);
            resolve();
          }
        };
        gatewayEndpoint.on('peer', onPeer);
      });
      // A plain redeploy with the new identity: the config node sets the epoch-1 state aside
      // (it is sealed with the old keys) and starts fresh. The gateway is not touched.
      const stateDir = (readyConfig(helper.getNode('cfgS')) as { stateDir?: string }).stateDir;
      const creds = { cfgS: { identity: rotatedText }, cfgG: credentialsFor(fx.gateway) };
      const redeployed = flow('sensor epoch 2').map((n) => (n.id === 'cfgS' ? { ...n, credentials: { identity: rotatedText } } : n));
      await helper.setFlows(redeployed, 'nodes', creds);
      assert.equal(readyConfig(helper.getNode('cfgG')).endpoint, gatewayEndpoint, 'the gateway was not redeployed');
      await movedToEpoch2;
      assert.deepEqual(gatewaySession.listPeers().filter((p) => p.deviceId === 'sensor-1').map((p) => [p.keyEpoch, p.keyId]), [[2, toHex(rotated.keyId)]]);
      await waitForPeer(helper.getNode('cfgS'), 'gateway');
      assert.ok(stateDir !== undefined && fs.existsSync(path.join(stateDir, 'state-generation.json.retired-epoch-1')), 'epoch-1 state set aside');

      helper.getNode('out').receive({ payload: 'epoch 2' });
      const [, second] = await ok.waitFor(2);
      const pqc2 = second.pqc as Record<string, unknown>;
      assert.equal(pqc2.keyEpoch, 2);
      assert.ok(BigInt(pqc2.seq as string) > BigInt((first.pqc as Record<string, unknown>).seq as string), 'sequence numbers keep rising across the switch');

      // 1) an envelope captured before the rotation, replayed; 2) a new envelope made with the old key
      //    by a device that still runs epoch 1.
      const attacker = await broker.plainClient();
      await attacker.publishAsync('plant/a', oldEnvelope, { qos: 1 });
      const stale = new SecureSession({ provider: new SoftwareProvider(fx.sensor), caPublicKey: fx.ca.publicKey });
      assert.ok((await stale.handleAnnouncement('pqc/keys/gateway', gatewayAnnouncement, Date.now())).ok);
      await attacker.publishAsync('plant/a', Buffer.from(await stale.sealDirect('plant/a', Buffer.from('old key'), 'gateway', Date.now())), { qos: 1 });
      const rejected = (await rej.waitFor(2)).map((m) => m.payload as Record<string, unknown>);
      assert.deepEqual(rejected.map((r) => [r.reason, r.sender]), [['stale-key', 'sensor-1'], ['stale-key', 'sensor-1']]);

      // 3) the epoch-1 announcement replayed: refused, trust stays on epoch 2.
      const rollback = new Promise<string>((resolve) => {
        gatewayEndpoint.once('announcement-rejected', (r) => resolve(r.reason));
      });
      await attacker.publishAsync('pqc/keys/sensor-1', oldAnnouncement, { qos: 1 });
      assert.equal(await rollback, 'epoch-rollback');
      assert.equal(gatewaySession.listPeers().find((p) => p.deviceId === 'sensor-1')?.keyEpoch, 2);

      // 4) the replay window carried over: a copy of the epoch-2 envelope is a quiet duplicate,
      //    and the rotated sensor keeps sending.
      const newSensorClient = readyConfig(helper.getNode('cfgS')).connection.clientId;
      const [newEnvelope] = broker.watch.published(newSensorClient, 'plant/a');
      await attacker.publishAsync('plant/a', newEnvelope, { qos: 1 });
      await waitForStatus(helper.getNode('in'), (s) => /drop 1$/.test(s.text ?? ''));
      helper.getNode('out').receive({ payload: 'still epoch 2' });
      const messages = await ok.waitFor(3);
      assert.deepEqual(messages.map((m) => m.payload), ['epoch 1', 'epoch 2', 'still epoch 2']);
      assert.equal(rej.messages.length, 2);
      await waitForStatus(helper.getNode('in'), (s) => s.text === 'ok 3 · rej 2 · drop 1');
    });
  });

  describe('expiry and renewal (clock injected through buildFromConfig)', function () {
    const opened: Array<Extract<ConfigOutcome, { ok: true }>> = [];

    afterEach(async function () {
      for (const o of opened.splice(0)) await o.close();
    });

    async function device(identity: IdentityBundle, clock: () => number): Promise<Extract<ConfigOutcome, { ok: true }>> {
      const outcome = buildFromConfig(
        { broker: '127.0.0.1', port: String(broker.aedes.port), caPublicKey: fx.caText, strict: true },
        { identity: identityToJson(identity) },
        { ownerId: `cfg-${identity.deviceId}`, clock, reconnectPeriodMs: 200 },
      );
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      opened.push(outcome);
      outcome.connection.register('test');
      await (outcome as { ready?: Promise<unknown> }).ready;
      return outcome;
    }

    function peerEvent(o: Extract<ConfigOutcome, { ok: true }>, deviceId: string): Promise<void> {
      if (o.session.listPeers().some((p) => p.deviceId === deviceId)) return Promise.resolve();
      return new Promise((resolve) => {
        const listener = (p: { deviceId: string }): void => {
          if (p.deviceId !== deviceId) return;
          o.endpoint.off('peer', listener);
          resolve();
        };
        o.endpoint.on('peer', listener);
      });
    }

    it('an expired peer is rejected with `expired`, a clock set back does not revive it, a renewed certificate does', async function () {
      const t0 = Date.now();
      const shortLived = issueCertificate(fx.ca, createIdentity({ deviceId: 'sensor-x', sigAlgorithm: 'ML-DSA-44' }), {
        roles: 'pub', topics: ['plant/#'], notBefore: t0 - HOUR, notAfter: t0 + HOUR,
      });
      let sensorNow = t0;
      let gatewayNow = t0;
      const gateway = await device(fx.gateway, () => gatewayNow);
      const sensor = await device(shortLived, () => sensorNow);
      await peerEvent(gateway, 'sensor-x');
      await peerEvent(sensor, 'gateway');

      const verdicts: Verdict[] = [];
      const waiters: Array<() => void> = [];
      gateway.endpoint.subscribe('plant/#', 1, (v) => {
        verdicts.push(v);
        waiters.splice(0).forEach((w) => w());
      }, 'in');
      if (!gateway.connection.isSubscribed('plant/#')) {
        await new Promise<void>((resolve) => {
          const listener = (f: string): void => {
            if (f !== 'plant/#') return;
            gateway.connection.off('subscribed', listener);
            resolve();
          };
          gateway.connection.on('subscribed', listener);
        });
      }
      const next = async (from: Extract<ConfigOutcome, { ok: true }>, text: string): Promise<Verdict> => {
        const count = verdicts.length;
        await from.endpoint.send('plant/x', Buffer.from(text), { qos: 1, retain: false, recipients: ['gateway'] });
        while (verdicts.length <= count) await new Promise<void>((resolve) => waiters.push(resolve));
        return verdicts[count];
      };
      const reason = (v: Verdict): string => (v.ok ? 'accepted' : v.rejection.reason);

      assert.equal(reason(await next(sensor, 'valid')), 'accepted');
      gatewayNow = t0 + 2 * HOUR; // the gateway's time passes the sensor's notAfter
      assert.equal(reason(await next(sensor, 'after expiry')), 'expired');
      gatewayNow = t0; // the clock is set back: the time floor keeps the certificate expired
      assert.equal(reason(await next(sensor, 'clock set back')), 'expired');
      sensorNow = t0 + 2 * HOUR; // the sensor itself knows its certificate expired
      await assert.rejects(sensor.endpoint.send('plant/x', Buffer.from('x'), { qos: 1, retain: false, recipients: ['gateway'] }), /certificate is expired/);

      // Renewal: `ca issue` again on the same identity (same keys and epoch, new validity), redeployed.
      await sensor.close();
      opened.splice(opened.indexOf(sensor), 1);
      const renewed = issueCertificate(fx.ca, shortLived, { roles: 'pub', topics: ['plant/#'], notBefore: t0, notAfter: t0 + 30 * 24 * HOUR });
      const renewedPeer = new Promise<{ keyEpoch: number; keyId: string }>((resolve) => {
        gateway.endpoint.once('peer', resolve);
      });
      const sensor2 = await device(renewed, () => sensorNow);
      const peer = await renewedPeer;
      assert.equal(peer.keyEpoch, shortLived.keyEpoch);
      assert.equal(peer.keyId, toHex(shortLived.keyId));
      await peerEvent(sensor2, 'gateway');
      const renewedVerdict = await next(sensor2, 'renewed');
      assert.equal(reason(renewedVerdict), 'accepted');
      assert.ok(renewedVerdict.ok && renewedVerdict.message.data.toString() === 'renewed');
    });
  });
});

/** Config node settings + credentials → connection, session, endpoint, or a named problem (lib/io/config.ts). */
import assert from 'node:assert/strict';
import { buildFromConfig, connectionOptionsFrom, type ConfigOutcome, type ConfigSettings } from '../../lib/io/config';
import {
  DEFAULT_LIMITS, SecureSession, SoftwareProvider, decodeBatchManifest, identityToJson, type ManifestMessage, type OpenedMessage, type Result,
} from '../../lib';
import { cryptoOffload } from '../../lib/crypto/worker-pool';
import { DEFAULT_BATCH_OPTIONS } from '../../lib/session/batch';
import { regionsOf } from '../lib/fixtures';
import { makeFixtures, secretSamples, type Fixtures } from '../nodes/node-harness';

type ReadySet = Extract<ConfigOutcome, { ok: true }>;

describe('io/config', function () {
  let fx: Fixtures;
  let settings: ConfigSettings;

  before(function () {
    fx = makeFixtures();
  });

  beforeEach(function () {
    settings = { broker: 'localhost', port: '1883', protocol: '4', strict: true, caPublicKey: fx.caText };
  });

  it('maps editor values to connection options', function () {
    const o = connectionOptionsFrom(
      { broker: ' broker.local ', port: '8883', protocol: '5', clientid: 'plc-1', keepalive: '30', cleansession: 'false', queueLimit: '5' },
      { user: 'u', password: 'p' },
      { tls: { rejectUnauthorized: true } },
    );
    assert.deepEqual(o, {
      host: 'broker.local', port: 8883, protocolVersion: 5, clientId: 'plc-1', keepaliveSeconds: 30, cleanSession: false,
      queueLimit: 5, username: 'u', password: 'p', tls: { rejectUnauthorized: true },
    });
    const d = connectionOptionsFrom({ broker: 'h' }, {});
    assert.equal(d.port, 1883);
    assert.equal(d.protocolVersion, 4);
    assert.equal(d.keepaliveSeconds, 60);
    assert.equal(d.cleanSession, true);
    assert.equal(d.queueLimit, 100);
  });

  it('names each problem', function () {
    const cases: Array<[ConfigSettings, string | undefined, string]> = [
      [settings, undefined, 'no-identity'],
      [settings, '   ', 'no-identity'],
      [{ ...settings, port: 'abc' }, identityToJson(fx.gateway), 'bad-settings'],
      [{ ...settings, replayWindow: '0' }, identityToJson(fx.gateway), 'bad-settings'],
      [{ ...settings, keysTopicPrefix: 'pqc/#/' }, identityToJson(fx.gateway), 'bad-settings'],
      [settings, '{"not":"a bundle"}', 'bad-identity'],
      [{ ...settings, caPublicKey: '' }, identityToJson(fx.gateway), 'no-ca'],
      [{ ...settings, caPublicKey: 'pqcca1:AAAA' }, identityToJson(fx.gateway), 'bad-ca'],
      [settings, identityToJson(fx.uncertified), 'no-certificate'],
    ];
    for (const [s, identity, problem] of cases) {
      const outcome = buildFromConfig(s, { identity }, { ownerId: 'cfg' });
      assert.equal(outcome.ok, false, problem);
      if (!outcome.ok) assert.equal(outcome.problem, problem, `${JSON.stringify(s)} → ${outcome.message}`);
    }
  });

  it('never quotes the identity in a problem message', function () {
    const json = identityToJson(fx.gateway);
    const broken = json.slice(0, json.length - 5); // truncated JSON still holding the secret keys
    const outcome = buildFromConfig(settings, { identity: broken }, { ownerId: 'cfg' });
    assert.ok(!outcome.ok);
    for (const secret of secretSamples(fx.gateway)) assert.ok(!outcome.message.includes(secret));
  });

  it('builds a working set in strict mode, and without CA or certificate when strict is off', async function () {
    const strictSet = buildFromConfig({ ...settings, clientid: 'gw-1' }, { identity: identityToJson(fx.gateway) }, { ownerId: 'cfg' });
    assert.ok(strictSet.ok);
    assert.equal(strictSet.identity.deviceId, 'gateway');
    assert.equal(strictSet.identity.hasCertificate, true);
    assert.equal(strictSet.connection.clientId, 'gw-1');
    assert.deepEqual(strictSet.connection.subscribedFilters(), ['pqc/keys/+', 'pqc/revocations'], 'the endpoint listens for keys and revocations');
    await strictSet.close();
    assert.equal(strictSet.connection.state, 'closed');

    const relaxed = buildFromConfig({ ...settings, strict: false, caPublicKey: '' }, { identity: identityToJson(fx.uncertified) }, { ownerId: 'cfg' });
    assert.ok(relaxed.ok);
    assert.equal(relaxed.session.strict, false);
    await relaxed.close();
  });

  describe('throughput settings (batching, verified roots, budgets, worker threads)', function () {
    const TOPIC = 'plant/line-1/flow';
    const open: ReadySet[] = [];
    let sensor: SecureSession;

    before(function () {
      sensor = new SecureSession({ provider: new SoftwareProvider(fx.sensor), caPublicKey: fx.ca.publicKey, batch: { maxLeaves: 4, maxDelayMs: 50 } });
    });

    afterEach(async function () {
      for (const set of open.splice(0)) await set.close();
    });

    /** The gateway's config node with these settings, trusting the sensor and trusted by it. */
    async function gateway(extra: ConfigSettings): Promise<ReadySet> {
      const set = buildFromConfig({ ...settings, ...extra }, { identity: identityToJson(fx.gateway) }, { ownerId: 'cfg' });
      assert.ok(set.ok, set.ok ? '' : set.message);
      open.push(set);
      const now = Date.now();
      assert.ok((await set.session.handleAnnouncement(sensor.announcementTopic(), await sensor.buildAnnouncement(now), now)).ok);
      // Every set holds the same gateway identity: the sensor needs to learn it once.
      if (!sensor.listPeers().some((p) => p.deviceId === 'gateway')) {
        assert.ok((await sensor.handleAnnouncement(set.session.announcementTopic(), await set.session.buildAnnouncement(now), now)).ok);
      }
      return set;
    }

    /** A genuine envelope to the gateway with one byte of its signature changed. */
    async function forgery(): Promise<Uint8Array> {
      const genuine = await sensor.sealDirect(TOPIC, new TextEncoder().encode('forged'), 'gateway', Date.now());
      const forged = Uint8Array.from(genuine);
      forged[regionsOf('envelope', genuine).signature.content + 10] ^= 0x01;
      return forged;
    }

    async function openEach(set: ReadySet, envelopes: Uint8Array[]): Promise<Array<Result<OpenedMessage>>> {
      const results: Array<Result<OpenedMessage>> = [];
      for (const e of envelopes) results.push(await set.session.open(TOPIC, e, Date.now()));
      return results;
    }

    it('without the properties the session runs with the core defaults', async function () {
      const set = await gateway({});
      assert.deepEqual(set.session.batching, DEFAULT_BATCH_OPTIONS);
      // Budgets on: counted (announcements may already have taken a token), nothing refused or failed.
      const budget = set.session.throughputStats.budget;
      assert.ok(budget, 'budgets on');
      assert.deepEqual({ refused: budget.refused, failed: budget.failed }, {
        refused: { verify: 0, decapsulate: 0 }, failed: { verify: 0, decapsulate: 0 },
      });
    });

    it('batching settings reach the session; off and a batch size of 1 sign every envelope on its own', async function () {
      assert.deepEqual((await gateway({ batchMaxLeaves: '4', batchMaxDelayMs: '10' })).session.batching, { maxLeaves: 4, maxDelayMs: 10 });
      assert.equal((await gateway({ batching: 'false', batchMaxLeaves: '4' })).session.batching, undefined);
      assert.equal((await gateway({ batching: false })).session.batching, undefined);
      assert.equal((await gateway({ batchMaxLeaves: '1' })).session.batching, undefined);
    });

    it('the verified-roots cache size reaches the session: 0 checks every envelope of a batch again', async function () {
      const batch = await Promise.all([0, 1, 2, 3].map((i) => sensor.sealDirect(TOPIC, new TextEncoder().encode(`m${i}`), 'gateway', Date.now())));
      const cached = await gateway({});
      assert.ok((await openEach(cached, batch)).every((r) => r.ok));
      assert.deepEqual([cached.session.throughputStats.verifications, cached.session.throughputStats.rootHits], [1, 3], 'one batch, one check');

      const uncached = await gateway({ verifiedRoots: '0' });
      assert.ok((await openEach(uncached, batch)).every((r) => r.ok), 'same verdicts without the cache');
      assert.deepEqual([uncached.session.throughputStats.verifications, uncached.session.throughputStats.rootHits], [4, 0]);
    });

    it('budget settings reach the session: a sender\'s burst of failed checks, then reason budget; off checks them all', async function () {
      const forged = await forgery();
      const reasons = (results: Array<Result<OpenedMessage>>): string[] => results.map((r) => (r.ok ? 'accepted' : r.reason));

      const perSender = await gateway({ budgetVerifyPerPeerBurst: '2', budgetVerifyPerPeerRate: '0' });
      assert.deepEqual(reasons(await openEach(perSender, [forged, forged, forged, forged])), ['bad-signature', 'bad-signature', 'budget', 'budget']);
      assert.deepEqual(perSender.session.throughputStats.budget?.refused, { verify: 2, decapsulate: 0 });

      const allSenders = await gateway({ budgetVerifyGlobalBurst: '1', budgetVerifyGlobalRate: '0' });
      assert.deepEqual(reasons(await openEach(allSenders, [forged, forged])), ['bad-signature', 'budget']);

      const off = await gateway({ budget: 'false', budgetVerifyPerPeerBurst: '1' });
      assert.deepEqual(reasons(await openEach(off, [forged, forged, forged])), ['bad-signature', 'bad-signature', 'bad-signature']);
      assert.equal(off.session.throughputStats.budget, undefined);
    });

    /** Polls until `done()` (compact manifests are signed asynchronously). */
    async function until(done: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + 20_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }

    it('compact manifest settings reach the sender: a manifest closes at the configured number of messages, or after the configured delay', async function () {
      const build = (extra: ConfigSettings): { set: ReadySet; manifests: ManifestMessage[] } => {
        const set = buildFromConfig({ ...settings, ...extra }, { identity: identityToJson(fx.sensor) }, { ownerId: 'cfg-sensor' });
        assert.ok(set.ok, set.ok ? '' : set.message);
        open.push(set);
        const manifests: ManifestMessage[] = [];
        set.session.setManifestSink({ manifest: (m) => manifests.push(m), failed: (error) => assert.fail(String(error)) });
        return { set, manifests };
      };
      const seal = (set: ReadySet, n: number) => Promise.all(
        Array.from({ length: n }, (_, i) => set.session.sealTopic(TOPIC, new TextEncoder().encode(`c${i}`), Date.now(), undefined, { compact: true })),
      );

      // Size 2 (delay left at its default of 1 s; the last, short manifest is flushed): with the defaults the five would share one manifest.
      const sized = build({ compactBatchMaxDigests: '2' });
      await seal(sized.set, 5);
      sized.set.session.flushManifests();
      await until(() => sized.manifests.reduce((n, m) => n + m.count, 0) === 5, 'manifests listing all 5 messages');
      const listed = sized.manifests.map((m) => {
        const d = decodeBatchManifest(m.payload);
        assert.ok(d.ok);
        return d.value.digests.length;
      });
      assert.deepEqual(listed, [2, 2, 1]);
      assert.deepEqual(sized.set.session.throughputStats.manifests, { manifests: 3, envelopes: 5, largest: 2 });

      // Delay 0 (the quiet-turn rule): a lone message's manifest follows at once, not after the default second.
      const quick = build({ compactBatchMaxDelayMs: '0' });
      const started = Date.now();
      await seal(quick.set, 1);
      await until(() => quick.manifests.length === 1, 'the manifest');
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 900, `manifest after ${elapsed} ms`);
    });

    it('compact-mode limits reach the session, merged with the other limits, and are in effect', async function () {
      const limited = await gateway({ compactWaitMs: '30000', maxCompactPending: '0', maxManifestBytes: '2048', replayWindow: '128' });
      assert.deepEqual(limited.session.limits, { ...DEFAULT_LIMITS, compactWaitMs: 30000, maxCompactPending: 0, maxManifestBytes: 2048, replayWindow: 128 });
      const plain = await gateway({});
      assert.deepEqual(plain.session.limits, DEFAULT_LIMITS);

      // A topic of its own: the first compact message on it comes with a new topic key.
      const topic = 'plant/line-1/compact-limits';
      const manifests: ManifestMessage[] = [];
      sensor.setManifestSink({ manifest: (m) => manifests.push(m), failed: (error) => assert.fail(String(error)) });
      try {
        const now = Date.now();
        const first = await sensor.sealTopic(topic, new TextEncoder().encode('compact-1'), now, undefined, { compact: true });
        const second = await sensor.sealTopic(topic, new TextEncoder().encode('compact-2'), now, undefined, { compact: true });
        sensor.flushManifests();
        await until(() => manifests.length === 1, 'the manifest');
        const keyMessage = first.keyMessage;
        assert.ok(keyMessage, 'a new topic key comes with the first message');
        for (const set of [limited, plain]) assert.ok((await set.session.handleKeyMessage(keyMessage.topic, keyMessage.payload, now)).ok);

        // Held messages 0: a compact message cannot wait for its manifest, so it is refused at once.
        const refused = await limited.session.open(topic, first.envelope, now);
        assert.deepEqual(refused.ok ? 'accepted' : refused.reason, 'unsigned');
        // Max manifest 2048 bytes: this one (an ML-DSA-44 signature alone is 2420 bytes) is too large.
        assert.ok(manifests[0].payload.length > 2048);
        const tooLarge = await limited.session.handleManifest(manifests[0].topic, manifests[0].payload, now);
        assert.deepEqual(tooLarge.ok ? 'accepted' : tooLarge.reason, 'too-large');

        // The defaults hold both messages until the manifest verified, then release them.
        const held = [plain.session.open(topic, first.envelope, now), plain.session.open(topic, second.envelope, now)];
        assert.ok((await plain.session.handleManifest(manifests[0].topic, manifests[0].payload, now)).ok);
        const released = await Promise.all(held);
        assert.deepEqual(released.map((r) => (r.ok ? new TextDecoder().decode(r.value.data) : r.reason)), ['compact-1', 'compact-2']);
      } finally {
        sensor.setManifestSink(undefined);
      }
    });

    it('compact manifest wait reaches the session: a message whose manifest does not come is refused after it', async function () {
      const set = await gateway({ compactWaitMs: '100' });
      assert.equal(set.session.limits.compactWaitMs, 100);
      const topic = 'plant/line-1/compact-wait';
      sensor.setManifestSink({ manifest: () => undefined, failed: () => undefined });
      try {
        const now = Date.now();
        const sealed = await sensor.sealTopic(topic, new TextEncoder().encode('never signed'), now, undefined, { compact: true });
        sensor.flushManifests();
        assert.ok(sealed.keyMessage);
        assert.ok((await set.session.handleKeyMessage(sealed.keyMessage.topic, sealed.keyMessage.payload, now)).ok);
        const held = set.session.open(topic, sealed.envelope, now);
        assert.equal(set.session.expirePending(now + 99), 0, 'still within the wait');
        assert.equal(set.session.expirePending(now + 100), 1);
        const result = await held;
        assert.deepEqual(result.ok ? 'accepted' : result.reason, 'unsigned');
      } finally {
        sensor.setManifestSink(undefined);
      }
    });

    it('worker threads "off" holds for the whole process while the config node is open', async function () {
      const earlier = cryptoOffload();
      const lines: string[] = [];
      const off = buildFromConfig({ ...settings, cryptoWorkers: 'off' }, { identity: identityToJson(fx.gateway) }, { ownerId: 'cfg-a', log: (_l, m) => lines.push(m) });
      assert.ok(off.ok);
      assert.equal(cryptoOffload(), 'never');
      assert.ok(lines.some((l) => /worker threads off for the whole Node-RED process/.test(l)), lines.join('\n'));
      const auto = buildFromConfig({ ...settings, cryptoWorkers: 'auto' }, { identity: identityToJson(fx.gateway) }, { ownerId: 'cfg-b' });
      assert.ok(auto.ok);
      assert.equal(cryptoOffload(), 'never', '"auto" does not overrule another node\'s "off"');
      await auto.close();
      assert.equal(cryptoOffload(), 'never');
      await off.close();
      assert.equal(cryptoOffload(), earlier);
    });

    it('a bad value is the problem bad-settings with the setting named, before anything is opened', function () {
      const earlier = cryptoOffload();
      const cases: Array<[ConfigSettings, RegExp]> = [
        [{ batchMaxLeaves: '0' }, /batchMaxLeaves\) must be an integer from 1 to 255, not "0"/],
        [{ batchMaxLeaves: '256' }, /batchMaxLeaves\) must be an integer from 1 to 255, not "256"/],
        [{ batchMaxLeaves: 'sixteen' }, /batchMaxLeaves/],
        [{ batchMaxDelayMs: '-1' }, /batchMaxDelayMs\) must be an integer from 0 to 1000/],
        [{ verifiedRoots: '1.5' }, /verifiedRoots/],
        [{ budgetVerifyPerPeerBurst: '0' }, /budgetVerifyPerPeerBurst/],
        [{ budgetDecapsulateGlobalRate: '-3' }, /budgetDecapsulateGlobalRate/],
        [{ budget: 'maybe' }, /verification budget \(budget\) must be true or false/],
        [{ cryptoWorkers: 'off', batching: 'sometimes' }, /batching/],
        [{ compactBatchMaxDigests: '0' }, /^manifest size \(messages per manifest\) \(compactBatchMaxDigests\) must be an integer from 1 to 255, not "0"$/],
        [{ compactBatchMaxDelayMs: '1001' }, /compactBatchMaxDelayMs\) must be an integer from 0 to 1000, not "1001"/],
        [{ compactWaitMs: '1e3' }, /^manifest wait \(ms\) \(compactWaitMs\) must be an integer from 0 to 600000, not "1e3"$/],
        [{ maxCompactPending: '-1' }, /maxCompactPending\) must be an integer from 0 to 100000, not "-1"/],
        [{ maxManifestBytes: '512' }, /maxManifestBytes\) must be an integer from 1024 to 1048576, not "512"/],
        [{ cryptoWorkers: 'off', maxManifestBytes: '16 ' }, /maxManifestBytes/],
      ];
      for (const [extra, message] of cases) {
        const outcome = buildFromConfig({ ...settings, ...extra }, { identity: identityToJson(fx.gateway) }, { ownerId: 'cfg' });
        assert.equal(outcome.ok, false, JSON.stringify(extra));
        if (outcome.ok) continue;
        assert.equal(outcome.problem, 'bad-settings', JSON.stringify(extra));
        assert.match(outcome.message, message);
      }
      assert.equal(cryptoOffload(), earlier, 'a refused config node holds nothing process-wide');
    });
  });
});

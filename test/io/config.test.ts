/** Config node settings + credentials → connection, session, endpoint, or a named problem (lib/io/config.ts). */
import assert from 'node:assert/strict';
import { buildFromConfig, connectionOptionsFrom, type ConfigSettings } from '../../lib/io/config';
import { identityToJson } from '../../lib';
import { makeFixtures, secretSamples, type Fixtures } from '../nodes/node-harness';

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
});

/**
 * The pqc-config building block with an identity kept in a SoftHSM2 token: the file holds no
 * private key, the PIN comes from the credentials, and every token problem becomes a named
 * config problem with a PIN-free message.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { caPublicKeyToText } from '../../lib';
import { buildFromConfig, type ConfigOutcome, type ConfigSettings } from '../../lib/io/config';
import { pkcs11IdentityToJson, storeIdentityInToken } from '../../lib/io/pkcs11-provider';
import { device, testCa } from '../lib/fixtures';
import { SoftHsm, softHsmModule } from './softhsm';

const PIN = '552901';
const TOKEN = 'pqc-config-test';

describe('pkcs11: pqc-config with a token identity', function () {
  this.timeout(30_000);
  const module = softHsmModule();
  let hsm: SoftHsm;
  let identityText: string;
  let dir: string;
  const outcomes: ConfigOutcome[] = [];

  before(function () {
    if (!module) throw new Error('SoftHSM2 is not installed: apt-get install softhsm2 (or set SOFTHSM2_MODULE)');
    hsm = new SoftHsm(module);
    hsm.initToken(TOKEN, PIN);
    identityText = pkcs11IdentityToJson(storeIdentityInToken(device({ id: 'cfg-tok' }), { module, token: TOKEN, pin: PIN }).identity);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-cfg-tok-'));
  });

  afterEach(async () => {
    for (const o of outcomes.splice(0)) if (o.ok) await o.close();
  });

  after(() => {
    hsm?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function build(settings: Partial<ConfigSettings>, pin: string | undefined): ConfigOutcome {
    const o = buildFromConfig(
      { broker: '127.0.0.1', port: '1', caPublicKey: caPublicKeyToText(testCa().publicKey), ...settings },
      { identity: identityText, ...(pin === undefined ? {} : { pkcs11Pin: pin }) },
      { ownerId: 'cfg', stateDir: path.join(dir, String(outcomes.length)), reconnectPeriodMs: 60_000 },
    );
    outcomes.push(o);
    return o;
  }

  it('opens the token with the PIN from the credentials; the identity text holds no private key', async () => {
    assert.ok(!/SecretKey/.test(identityText));
    const o = build({}, PIN);
    assert.ok(o.ok, o.ok ? '' : `${o.problem}: ${o.message}`);
    assert.equal(o.identity.deviceId, 'cfg-tok');
    const started = await o.ready;
    assert.ok(started.ok, 'state restored with the token\'s counters');
    assert.equal(o.auditMode, 'evidence-grade', 'a non-exportable key makes the audit log evidence');
  });

  const cases: Array<[string, Partial<ConfigSettings>, string | undefined, string]> = [
    ['a wrong PIN', {}, '000000', 'pkcs11-pin'],
    ['no PIN', {}, undefined, 'pkcs11-pin'],
    ['a module path that does not exist', { pkcs11Module: '/nonexistent/libpkcs11.so' }, PIN, 'pkcs11-module'],
    ['a token label that is not present', { pkcs11Token: 'no-such-token' }, PIN, 'pkcs11-token'],
    ['a key label that is not in the token', { pkcs11KeyLabel: 'pqc-iiot/nobody' }, PIN, 'pkcs11-key'],
  ];
  for (const [what, settings, pin, problem] of cases) {
    it(`${what} → ${problem}, with a message that holds no PIN`, () => {
      const o = build(settings, pin);
      assert.equal(o.ok ? 'ok' : o.problem, problem);
      if (!o.ok) {
        assert.ok(!o.message.includes(PIN) && !o.message.includes('000000'), o.message);
        assert.ok(o.message.length > 10);
      }
    });
  }
});

/**
 * `pqc-iiot identity new --pkcs11-module … --token …` and `identity import` against a SoftHSM2
 * token created in a temporary directory, then `pqc-iiot ca issue` on the token identity file,
 * and the issued identity used by a strict SecureSession through the PKCS#11 provider.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { SecureSession, SoftwareProvider, cryptoBackend, parseCaPublicKeyText, parseIdentityJson, verifyCertificate } from '../../lib';
import { EXIT } from '../../lib/cli/main';
import { PIN_ENV } from '../../lib/cli/identity-pkcs11';
import { openPkcs11Provider, parsePkcs11IdentityJson, type Pkcs11Provider } from '../../lib/io/pkcs11-provider';
import { loadedModuleCount } from '../../lib/io/pkcs11/token';
import { CliSandbox, type CliResult } from '../cli/cli-harness';
import { SoftHsm, containsSecret, softHsmModule } from './softhsm';

const PIN = '482019';
const TOKEN = 'cli-token';

function ok(r: CliResult): CliResult {
  assert.equal(r.code, EXIT.ok, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

function fails(r: CliResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.ok(!r.stderr.includes(PIN) && !r.stdout.includes(PIN), 'the PIN was printed');
}

describe('pqc-iiot identity in a PKCS#11 token (SoftHSM2)', function () {
  this.timeout(60_000);
  const module = softHsmModule();
  let hsm: SoftHsm;
  let box: CliSandbox;
  const savedPin = process.env[PIN_ENV];
  const opened: Pkcs11Provider[] = [];

  before(async function () {
    // A missing token library is a broken install (.ci/run installs softhsm2), not a reason to skip.
    if (!module) throw new Error('SoftHSM2 is not installed: apt-get install softhsm2 (or set SOFTHSM2_MODULE)');
    hsm = new SoftHsm(module);
    hsm.initToken(TOKEN, PIN);
    box = new CliSandbox();
    ok(await box.run(['ca', 'init', '--dir', 'ca']));
  });

  beforeEach(() => {
    process.env[PIN_ENV] = PIN;
  });

  afterEach(() => {
    for (const p of opened.splice(0)) p.close();
    assert.equal(loadedModuleCount(), 0, 'the CLI or a test left the PKCS#11 module loaded');
  });

  after(() => {
    if (savedPin === undefined) delete process.env[PIN_ENV];
    else process.env[PIN_ENV] = savedPin;
    box?.cleanup();
    hsm?.cleanup();
  });

  it('identity new in the token → ca issue → strict session through the provider', async () => {
    const r = ok(await box.run([
      'identity', 'new', '--id', 'press-7', '--out', 'press-7.json', '--sig', 'ml-dsa-44', '--pkcs11-module', module!, '--token', TOKEN,
    ]));
    assert.match(r.stdout, /identity created in PKCS#11 token "cli-token" \(key label "pqc-iiot\/press-7"\)/);
    assert.match(r.stdout, /no private key/);
    assert.match(r.stdout, /the token offers no ML-KEM \/ ML-DSA mechanism/);
    assert.match(r.stdout, /SoftHSM v2 is a software token/);
    const file = box.path('press-7.json');
    const before = parsePkcs11IdentityJson(fs.readFileSync(file, 'utf8'));
    assert.equal(before.certificate, undefined);
    assert.deepEqual(before.pkcs11, { module: module!, token: TOKEN, keyLabel: 'pqc-iiot/press-7', keyStorage: 'wrapped-aes-256-gcm' });

    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'press-7.json', '--roles', 'both', '--topics', 'plant/#']));
    const text = fs.readFileSync(file, 'utf8');
    assert.throws(() => parseIdentityJson(text), 'still no secret keys: not a software bundle');
    const issued = parsePkcs11IdentityJson(text);
    const shown = ok(await box.run(['inspect', 'press-7.json', '--ca', 'ca/ca.pub']));
    assert.match(shown.stdout, /"secretKeys": "none in this file: in PKCS#11 token \\"cli-token\\"/);
    assert.match(shown.stdout, /"verification": \{\s*"ok": true/);
    const caPub = parseCaPublicKeyText(fs.readFileSync(box.path('ca', 'ca.pub'), 'utf8'));
    assert.ok(caPub.ok);
    assert.ok(verifyCertificate(issued.certificate!, caPub.value, box.now).ok);

    const p = openPkcs11Provider(issued, { pin: PIN });
    opened.push(p);
    const a = new SecureSession({ provider: p, caPublicKey: caPub.value, strict: true });
    // The peer: a software identity from the same CA, over the same CLI.
    ok(await box.run(['identity', 'new', '--id', 'scada', '--out', 'scada.json', '--sig', 'ml-dsa-44']));
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'scada.json', '--roles', 'both', '--topics', 'plant/#']));
    const b = new SecureSession({ provider: new SoftwareProvider(parseIdentityJson(fs.readFileSync(box.path('scada.json'), 'utf8'))), caPublicKey: caPub.value });
    const now = box.now;
    assert.ok((await b.handleAnnouncement(a.announcementTopic(), await a.buildAnnouncement(now), now)).ok);
    assert.ok((await a.handleAnnouncement(b.announcementTopic(), await b.buildAnnouncement(now), now)).ok);
    const env = await a.sealDirect('plant/press/7', new TextEncoder().encode('cycle 1'), 'scada', now);
    const got = await b.open('plant/press/7', env, now);
    assert.ok(got.ok && got.value.sender === 'press-7');
  });

  it('identity import moves a software identity (same keys, same certificate) into the token', async () => {
    ok(await box.run(['identity', 'new', '--id', 'valve-2', '--out', 'valve-2.json', '--sig', 'ml-dsa-44']));
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'valve-2.json', '--roles', 'pub', '--topics', 'plant/valves/#']));
    const soft = parseIdentityJson(fs.readFileSync(box.path('valve-2.json'), 'utf8'));
    const r = ok(await box.run([
      'identity', 'import', '--from', 'valve-2.json', '--out', 'valve-2.token.json', '--pkcs11-module', module!, '--token', TOKEN, '--key-label', 'valve',
    ]));
    assert.match(r.stdout, /identity imported/);
    assert.match(r.stdout, /certificate: kept/);
    assert.match(r.stdout, /now delete valve-2\.json/);
    const moved = parsePkcs11IdentityJson(fs.readFileSync(box.path('valve-2.token.json'), 'utf8'));
    assert.deepEqual(moved.keyId, soft.keyId);
    assert.deepEqual(moved.certificate, soft.certificate);
    const out = fs.readFileSync(box.path('valve-2.token.json'));
    const pks = [soft.kemPublicKey, soft.sigPublicKey];
    assert.ok(!containsSecret(out, soft.kemSecretKey, pks) && !containsSecret(out, soft.sigSecretKey, pks));
    const p = openPkcs11Provider(moved, { pin: PIN });
    opened.push(p);
    const msg = new TextEncoder().encode('probe');
    assert.ok(cryptoBackend().verify(soft.sigAlgorithm, await p.sign(msg), msg, soft.sigPublicKey), 'the imported keys sign');
  });

  it('PIN only from the environment or a terminal; clear errors for module, token, PIN and key label', async () => {
    const base = ['identity', 'new', '--id', 'dev-x', '--out', 'dev-x.json', '--sig', 'ml-dsa-44'];
    fails(await box.run([...base, '--pkcs11-module', module!, '--token', TOKEN, '--pin', PIN]), EXIT.usage, /unknown option --pin/);
    delete process.env[PIN_ENV];
    fails(await box.run([...base, '--pkcs11-module', module!, '--token', TOKEN]), EXIT.failure, /set PQC_PKCS11_PIN, or run in a terminal/);
    process.env[PIN_ENV] = '000000';
    fails(await box.run([...base, '--pkcs11-module', module!, '--token', TOKEN]), EXIT.failure, /token "cli-token" refused the PIN/);
    process.env[PIN_ENV] = PIN;
    fails(await box.run([...base, '--pkcs11-module', '/opt/missing/libp11.so', '--token', TOKEN]), EXIT.failure, /PKCS#11 module \/opt\/missing\/libp11\.so not found/);
    fails(await box.run([...base, '--pkcs11-module', module!, '--token', 'absent']), EXIT.failure, /no token labelled "absent"/);
    fails(await box.run([...base, '--token', TOKEN]), EXIT.usage, /need --pkcs11-module/);
    fails(await box.run([...base, '--pkcs11-module', module!]), EXIT.usage, /needs --token/);
    // The key label of the first test is taken: refused unless --force, and no file written.
    fails(await box.run([...base, '--pkcs11-module', module!, '--token', TOKEN, '--key-label', 'pqc-iiot/press-7']), EXIT.failure, /already holds a key labelled/);
    assert.equal(fs.existsSync(box.path('dev-x.json')), false);
    // An existing file is refused before the token is touched.
    fails(await box.run(['identity', 'new', '--id', 'dev-y', '--out', 'scada.json', '--pkcs11-module', module!, '--token', TOKEN]), EXIT.failure, /already exists/);
    assert.equal(box.leaks().length, 0, 'a secret key appeared in CLI output');
  });
});

/**
 * `pqc-iiot identity rotate` (key rotation) and certificate renewal (`ca issue` again on the
 * same identity), in-process: the rotated file keeps the device id, raises the key epoch, has new
 * keys and no certificate, is written 0600 and never printed; the old file is left alone.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { decodeCertificate, toHex } from '../../lib/index';
import { EXIT } from '../../lib/cli/main';
import { CliSandbox, fails, modeOf, ok } from './cli-harness';

const DAY = 86_400_000;

describe('pqc-iiot identity rotate and certificate renewal', function () {
  this.timeout(60_000);
  const box = new CliSandbox();

  before(async () => {
    ok(await box.run(['ca', 'init', '--dir', 'ca']));
    ok(await box.run(['identity', 'new', '--id', 'sensor-7', '--sig', 'ml-dsa-44', '--out', 'sensor-7.json']));
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'sensor-7.json', '--roles', 'pub', '--topics', 'plant/a/#,plant/b']));
  });

  after(() => {
    assert.deepEqual(box.leaks(), [], 'a secret key reached stdout or stderr');
    box.cleanup();
  });

  it('writes the next epoch: same device and algorithms, new keys, no certificate, mode 0600; the old file is untouched', async () => {
    const before = fs.readFileSync(box.path('sensor-7.json'));
    const r = ok(await box.run(['identity', 'rotate', '--in', 'sensor-7.json', '--out', 'sensor-7.e2.json']));
    const old = box.readIdentity('sensor-7.json');
    const next = box.readIdentity('sensor-7.e2.json');
    assert.deepEqual(fs.readFileSync(box.path('sensor-7.json')), before, 'old identity unchanged');
    assert.equal(next.deviceId, 'sensor-7');
    assert.equal(next.keyEpoch, old.keyEpoch + 1);
    assert.equal(next.kemAlgorithm, old.kemAlgorithm);
    assert.equal(next.sigAlgorithm, 'ML-DSA-44');
    assert.notEqual(toHex(next.keyId), toHex(old.keyId));
    assert.equal(next.certificate, undefined, 'the certificate of the old keys is not carried over');
    assert.equal(modeOf(box.path('sensor-7.e2.json')), 0o600);
    assert.match(r.stdout, /key epoch: {3}1 -> 2/);
    assert.ok(r.stdout.includes(toHex(next.keyId)) && r.stdout.includes(toHex(old.keyId)));
    // The hint repeats the old certificate's rights, ready to paste.
    assert.match(r.stdout, /pqc-iiot ca issue --dir CA_DIR --identity sensor-7\.e2\.json --roles pub --topics 'plant\/a\/#,plant\/b'/);

    // The new epoch is certified like any identity, and rotates again to epoch 3.
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'sensor-7.e2.json', '--roles', 'pub', '--topics', 'plant/a/#']));
    const cert = decodeCertificate(box.readIdentity('sensor-7.e2.json').certificate!);
    assert.ok(cert.ok);
    assert.equal(cert.value.keyEpoch, 2);
    assert.equal(toHex(cert.value.keyId), toHex(next.keyId));
    ok(await box.run(['identity', 'rotate', '--in', 'sensor-7.e2.json', '--out', 'sensor-7.e3.json']));
    assert.equal(box.readIdentity('sensor-7.e3.json').keyEpoch, 3);
  });

  it('--kem and --sig choose other algorithms for the new keys', async () => {
    ok(await box.run(['identity', 'rotate', '--in', 'sensor-7.json', '--out', 'sensor-7.alg.json', '--kem', 'ml-kem-1024', '--sig', 'falcon-512']));
    const next = box.readIdentity('sensor-7.alg.json');
    assert.equal(next.kemAlgorithm, 'ML-KEM-1024');
    assert.equal(next.sigAlgorithm, 'Falcon-512');
    assert.equal(next.keyEpoch, 2);
  });

  it('refuses to overwrite without --force, and reports bad input with the right exit code', async () => {
    fails(await box.run(['identity', 'rotate', '--in', 'sensor-7.json', '--out', 'sensor-7.json']), EXIT.failure, /already exists; use --force/);
    fails(await box.run(['identity', 'rotate', '--in', 'missing.json', '--out', 'x.json']), EXIT.failure, /missing\.json: no such file/);
    fs.writeFileSync(box.path('not-identity.json'), '{"format":"something else"}');
    fails(await box.run(['identity', 'rotate', '--in', 'not-identity.json', '--out', 'x.json']), EXIT.failure, /"format" must be/);
    fails(await box.run(['identity', 'rotate', '--in', 'sensor-7.json', '--out', 'x.json', '--kem', 'rsa']), EXIT.usage, /unknown KEM algorithm/);
    fails(await box.run(['identity', 'rotate', '--in', 'sensor-7.json']), EXIT.usage, /missing --out/);
    ok(await box.run(['identity', 'new', '--id', 'last', '--epoch', '4294967295', '--out', 'last.json']));
    fails(await box.run(['identity', 'rotate', '--in', 'last.json', '--out', 'x.json']), EXIT.failure, /the last one/);
    assert.ok(!fs.existsSync(box.path('x.json')), 'nothing written on failure');

    // Replacing the current file in place is allowed when asked for.
    const replaced = fs.readFileSync(box.path('sensor-7.alg.json'));
    ok(await box.run(['identity', 'rotate', '--in', 'sensor-7.json', '--out', 'sensor-7.alg.json', '--force']));
    assert.notDeepEqual(fs.readFileSync(box.path('sensor-7.alg.json')), replaced);
  });

  it('renewal: "ca issue" again on the same identity gives a new validity for the same key and epoch', async () => {
    ok(await box.run(['identity', 'new', '--id', 'renewed', '--sig', 'ml-dsa-44', '--out', 'renewed.json']));
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'renewed.json', '--roles', 'sub', '--topics', 'plant/#', '--days', '30']));
    const first = box.readIdentity('renewed.json');
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'renewed.json', '--roles', 'sub', '--topics', 'plant/#', '--days', '30'], { now: box.now + 20 * DAY }));
    const second = box.readIdentity('renewed.json');
    const [a, b] = [first, second].map((i) => decodeCertificate(i.certificate!));
    assert.ok(a.ok && b.ok);
    assert.equal(toHex(second.keyId), toHex(first.keyId));
    assert.equal(b.value.keyEpoch, a.value.keyEpoch);
    assert.equal(b.value.notAfter - a.value.notAfter, BigInt(20 * DAY));
  });

  it('is listed in the identity group help', async () => {
    const r = ok(await box.run(['identity', '--help']));
    assert.match(r.stdout, /identity rotate/);
    assert.match(ok(await box.run(['identity', 'rotate', '--help'])).stdout, /--in FILE/);
  });
});

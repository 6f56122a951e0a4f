/**
 * `pqc-iiot` end to end, in-process: ca init → identity new → ca issue, then the issued files are
 * used by the protocol core exactly as the nodes use them (certificate verification, strict
 * SecureSession exchanging announcements and a message). Bad input for every verb, file modes,
 * and — checked over every output of the suite — that no secret key is ever printed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { SecureSession, SoftwareProvider, decodeCertificate, parseCaKeyPairJson, verifyCertificate } from '../../lib/index';
import { EXIT } from '../../lib/cli/main';
import { BACKDATE_MS } from '../../lib/cli/ca';
import { CliSandbox, fails, modeOf, ok, show, type CliResult } from './cli-harness';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('pqc-iiot CLI', function () {
  this.timeout(60_000);
  const box = new CliSandbox();
  const NOW = box.now;

  after(() => box.finish(() => {
    assert.ok(box.secrets.size >= 7, `expected the secrets of every file to be collected, got ${box.secrets.size}`);
  }));

  describe('top level', () => {
    it('prints the command overview on --help (exit 0) and on no arguments (exit 2)', async () => {
      const help = ok(await box.run(['--help']));
      for (const verb of ['ca init', 'ca issue', 'identity new', 'inspect']) assert.ok(help.stdout.includes(verb));
      const none = await box.run([]);
      assert.equal(none.code, EXIT.usage);
      assert.match(none.stderr, /Usage: pqc-iiot <command>/);
    });

    it('rejects unknown commands and verbs with exit 2', async () => {
      fails(await box.run(['frobnicate']), EXIT.usage, /unknown command "frobnicate"/);
      fails(await box.run(['ca', 'revoke-all']), EXIT.usage, /unknown command "revoke-all"; choose one of: init, issue/);
      fails(await box.run(['ca']), EXIT.usage, /Usage: pqc-iiot ca <init\|issue\|revoke>/);
    });

    it('prints the package version', async () => {
      const r = ok(await box.run(['--version']));
      assert.match(r.stdout, /^\d+\.\d+\.\d+/);
    });

    for (const verb of [['ca', 'init'], ['ca', 'issue'], ['identity', 'new'], ['inspect']]) {
      it(`"${verb.join(' ')} --help" documents every option and exits 0 without doing anything`, async () => {
        const before = fs.readdirSync(box.dir).length;
        const r = ok(await box.run([...verb, '--help']));
        assert.match(r.stdout, new RegExp(`^Usage: pqc-iiot ${verb.join(' ')}`));
        assert.match(r.stdout, /-h, --help/);
        assert.equal(fs.readdirSync(box.dir).length, before);
      });
    }
  });

  describe('ca init', () => {
    it('writes ca-key.json (0600) and ca.pub, and prints the CA public key text', async () => {
      const r = ok(await box.run(['ca', 'init', '--dir', 'ca']));
      const keyFile = box.path('ca', 'ca-key.json');
      const pubFile = box.path('ca', 'ca.pub');
      assert.equal(modeOf(keyFile), 0o600);
      assert.equal(modeOf(pubFile) & 0o077 & ~0o044, 0, 'ca.pub is at most group/world readable');
      assert.equal(modeOf(box.path('ca')), 0o700);
      const pubText = fs.readFileSync(pubFile, 'utf8').trim();
      assert.ok(r.stdout.split('\n').includes(pubText), 'stdout carries the ca.pub text on its own line');
      const pair = parseCaKeyPairJson(fs.readFileSync(keyFile, 'utf8'));
      assert.equal(pair.publicKey.sigAlgorithm, 'ML-DSA-44');
      assert.deepEqual(box.readCaPub('ca', 'ca.pub').publicKey, pair.publicKey.publicKey);
    });

    it('refuses to overwrite an existing CA without --force, leaving it untouched', async () => {
      const before = fs.readFileSync(box.path('ca', 'ca-key.json'), 'utf8');
      fails(await box.run(['ca', 'init', '--dir', 'ca']), EXIT.failure, /already holds a CA; use --force/);
      assert.equal(fs.readFileSync(box.path('ca', 'ca-key.json'), 'utf8'), before);
    });

    it('replaces a CA with --force and honours --sig', async () => {
      ok(await box.run(['ca', 'init', '--dir', 'ca-replaced', '--sig', 'ml-dsa-44']));
      const first = box.readCaPub('ca-replaced', 'ca.pub');
      ok(await box.run(['ca', 'init', '--dir', 'ca-replaced', '--force', '--sig', 'ML-DSA-65']));
      const second = box.readCaPub('ca-replaced', 'ca.pub');
      assert.equal(second.sigAlgorithm, 'ML-DSA-65');
      assert.notDeepEqual(second.keyId, first.keyId);
      assert.equal(modeOf(box.path('ca-replaced', 'ca-key.json')), 0o600);
      assert.equal(parseCaKeyPairJson(fs.readFileSync(box.path('ca-replaced', 'ca-key.json'), 'utf8')).publicKey.sigAlgorithm, 'ML-DSA-65');
    });

    it('rejects an unknown algorithm, a missing --dir and a file in place of the directory', async () => {
      fails(await box.run(['ca', 'init', '--dir', 'ca-x', '--sig', 'rsa-2048']), EXIT.usage, /unknown signature algorithm "rsa-2048"/);
      assert.equal(fs.existsSync(box.path('ca-x')), false);
      fails(await box.run(['ca', 'init']), EXIT.usage, /missing --dir DIR/);
      fs.writeFileSync(box.path('not-a-dir'), 'x');
      fails(await box.run(['ca', 'init', '--dir', 'not-a-dir']), EXIT.failure, /exists and is not a directory/);
    });
  });

  describe('identity new', () => {
    it('writes a 0600 identity file and prints device id, key id and fingerprint', async () => {
      const r = ok(await box.run(['identity', 'new', '--id', 'sensor-1', '--out', 'sensor-1.json', '--sig', 'ml-dsa-44']));
      const file = box.path('sensor-1.json');
      assert.equal(modeOf(file), 0o600);
      const bundle = box.readIdentity('sensor-1.json');
      assert.equal(bundle.deviceId, 'sensor-1');
      assert.equal(bundle.sigAlgorithm, 'ML-DSA-44');
      assert.equal(bundle.kemAlgorithm, 'ML-KEM-768');
      assert.equal(bundle.keyEpoch, 1);
      assert.equal(bundle.certificate, undefined);
      const keyIdHex = Buffer.from(bundle.keyId).toString('hex');
      assert.match(r.stdout, /device id: +sensor-1$/m);
      assert.match(r.stdout, new RegExp(`key id: +${keyIdHex}$`, 'm'));
      assert.match(r.stdout, new RegExp(`fingerprint: +${keyIdHex.match(/.{4}/g)!.join(':')}$`, 'm'));
    });

    it('uses ML-KEM-768 + Falcon-512 by default', async () => {
      ok(await box.run(['identity', 'new', '--id', 'controller-1', '--out', 'controller-1.json']));
      const bundle = box.readIdentity('controller-1.json');
      assert.equal(bundle.kemAlgorithm, 'ML-KEM-768');
      assert.equal(bundle.sigAlgorithm, 'Falcon-512');
    });

    it('honours --kem and --epoch', async () => {
      ok(await box.run(['identity', 'new', '--id', 'gw.7', '--out', 'gw.json', '--kem', 'ml-kem-1024', '--sig', 'ml-dsa-44', '--epoch', '7']));
      const bundle = box.readIdentity('gw.json');
      assert.equal(bundle.kemAlgorithm, 'ML-KEM-1024');
      assert.equal(bundle.keyEpoch, 7);
    });

    it('refuses to overwrite an identity file without --force, and replaces it with --force', async () => {
      const before = fs.readFileSync(box.path('gw.json'), 'utf8');
      fails(
        await box.run(['identity', 'new', '--id', 'gw.7', '--out', 'gw.json', '--sig', 'ml-dsa-44']),
        EXIT.failure,
        /already exists; use --force/,
      );
      assert.equal(fs.readFileSync(box.path('gw.json'), 'utf8'), before);
      fs.chmodSync(box.path('gw.json'), 0o644);
      ok(await box.run(['identity', 'new', '--id', 'gw.7', '--out', 'gw.json', '--sig', 'ml-dsa-44', '--force']));
      assert.notEqual(fs.readFileSync(box.path('gw.json'), 'utf8'), before);
      assert.equal(modeOf(box.path('gw.json')), 0o600, 'a replaced file gets mode 0600 again');
    });

    const badIds: Array<[string, string]> = [
      ['a space and "!"', 'bad id!'],
      ['129 characters', 'x'.repeat(129)],
      ['a slash (would escape the keys topic)', 'plant/sensor'],
      ['a wildcard', 'sensor+'],
      ['non-ASCII letters', 'sensör'],
    ];
    for (const [what, id] of badIds) {
      it(`rejects a device id with ${what}, writing nothing`, async () => {
        fails(await box.run(['identity', 'new', '--id', id, '--out', 'bad-id.json']), EXIT.usage, /invalid device id/);
        assert.equal(fs.existsSync(box.path('bad-id.json')), false);
      });
    }

    it('accepts a device id of exactly 128 characters', async () => {
      ok(await box.run(['identity', 'new', '--id', 'a'.repeat(128), '--out', 'long-id.json', '--sig', 'ml-dsa-44']));
      assert.equal(box.readIdentity('long-id.json').deviceId.length, 128);
    });

    it('rejects unknown algorithms, bad epochs, missing options and a missing directory', async () => {
      const base = ['identity', 'new', '--id', 'dev', '--out', 'dev.json'];
      fails(await box.run([...base, '--kem', 'ml-kem-512']), EXIT.usage, /unknown KEM algorithm "ml-kem-512" for --kem; choose one of ml-kem-768, ml-kem-1024/);
      fails(await box.run([...base, '--sig', 'ed25519']), EXIT.usage, /unknown signature algorithm "ed25519"/);
      for (const epoch of ['-1', 'seven', '1.5', '4294967296']) {
        fails(await box.run([...base, '--epoch', epoch]), EXIT.usage, /--epoch must be a whole number from 0 to 4294967295/);
      }
      fails(await box.run(['identity', 'new', '--out', 'dev.json']), EXIT.usage, /missing --id/);
      fails(await box.run(['identity', 'new', '--id', 'dev']), EXIT.usage, /missing --out/);
      fails(await box.run(['identity', 'new', '--id', 'dev', '--out', 'no/such/dir/dev.json', '--sig', 'ml-dsa-44']), EXIT.failure, /directory no\/such\/dir does not exist/);
      assert.equal(fs.existsSync(box.path('dev.json')), false);
    });
  });

  describe('ca issue', () => {
    it('writes a certificate into the identity file that verifies under the CA', async () => {
      const r = ok(await box.run([
        'ca', 'issue', '--dir', 'ca', '--identity', 'sensor-1.json', '--roles', 'pub', '--topics', 'plant/line1/#, plant/alarms', '--days', '30',
      ]));
      const file = box.path('sensor-1.json');
      assert.equal(modeOf(file), 0o600);
      const bundle = box.readIdentity('sensor-1.json');
      assert.ok(bundle.certificate, 'bundle has a certificate');
      const ca = box.readCaPub('ca', 'ca.pub');
      const verified = verifyCertificate(bundle.certificate, ca, NOW);
      assert.ok(verified.ok, show(verified));
      const cert = verified.value;
      assert.equal(cert.deviceId, 'sensor-1');
      assert.deepEqual(cert.keyId, bundle.keyId);
      assert.equal(cert.roles, 'pub');
      assert.deepEqual(cert.topics, ['plant/line1/#', 'plant/alarms']);
      assert.equal(cert.notBefore, BigInt(NOW - BACKDATE_MS));
      assert.equal(cert.notAfter, BigInt(NOW + 30 * DAY_MS));
      // Validity is exactly [now − 5 min, now + days]: one ms outside either end fails.
      const early = verifyCertificate(bundle.certificate, ca, NOW - BACKDATE_MS - 1);
      assert.deepEqual(early.ok ? 'ok' : early.reason, 'not-yet-valid');
      const expired = verifyCertificate(bundle.certificate, ca, NOW + 30 * DAY_MS + 1);
      assert.deepEqual(expired.ok ? 'ok' : expired.reason, 'expired');
      assert.match(r.stdout, /certificate issued for sensor-1/);
      assert.match(r.stdout, /topics: +plant\/line1\/#, plant\/alarms/);
    });

    it('defaults to 365 days and restores mode 0600 on a file that was loosened (with a warning)', async () => {
      fs.chmodSync(box.path('controller-1.json'), 0o644);
      const r = ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'controller-1.json', '--roles', 'both', '--topics', 'plant/#']));
      assert.match(r.stderr, /warning: identity file controller-1.json holds private keys but has mode 0644/);
      assert.equal(modeOf(box.path('controller-1.json')), 0o600);
      const cert = decodeCertificate(box.readIdentity('controller-1.json').certificate!);
      assert.ok(cert.ok);
      assert.equal(cert.value.notAfter - cert.value.notBefore, BigInt(365 * DAY_MS + BACKDATE_MS));
      assert.equal(cert.value.roles, 'both');
    });

    it('fails for a missing, empty, damaged or inconsistent CA directory', async () => {
      const args = (dir: string) => ['ca', 'issue', '--dir', dir, '--identity', 'gw.json', '--roles', 'sub', '--topics', 'a/#'];
      const before = fs.readFileSync(box.path('gw.json'), 'utf8');
      fails(await box.run(args('no-such-ca')), EXIT.failure, /CA directory no-such-ca does not exist/);
      fs.mkdirSync(box.path('empty-ca'));
      fails(await box.run(args('empty-ca')), EXIT.failure, /empty-ca holds no CA \(ca-key.json not found\); create one with: pqc-iiot ca init/);
      fails(await box.run(args('sensor-1.json')), EXIT.failure, /sensor-1.json is not a directory/);

      // ca.pub from another CA next to this CA's private key: certificates would not verify anywhere.
      fs.mkdirSync(box.path('mixed-ca'));
      fs.copyFileSync(box.path('ca', 'ca-key.json'), box.path('mixed-ca', 'ca-key.json'));
      fs.copyFileSync(box.path('ca-replaced', 'ca.pub'), box.path('mixed-ca', 'ca.pub'));
      fails(await box.run(args('mixed-ca')), EXIT.failure, /ca.pub does not match .*ca-key.json/);

      fs.mkdirSync(box.path('broken-ca'));
      fs.writeFileSync(box.path('broken-ca', 'ca-key.json'), '{"format":"pqc-iiot-ca/1","sigAlgorithm":"ML-DSA-44"', { mode: 0o600 });
      fails(await box.run(args('broken-ca')), EXIT.failure, /broken-ca\/ca-key.json: CA: not valid JSON/);
      fs.writeFileSync(box.path('broken-ca', 'ca-key.json'), JSON.stringify({ format: 'pqc-iiot-ca/1', sigAlgorithm: 'RSA' }), { mode: 0o600 });
      fails(await box.run(args('broken-ca')), EXIT.failure, /CA: unknown signature algorithm "RSA"/);

      assert.equal(fs.readFileSync(box.path('gw.json'), 'utf8'), before, 'the identity file is untouched by failures');
    });

    it('fails for a missing or invalid identity file', async () => {
      const args = (file: string) => ['ca', 'issue', '--dir', 'ca', '--identity', file, '--roles', 'sub', '--topics', 'a/#'];
      fails(await box.run(args('missing.json')), EXIT.failure, /identity file missing.json: no such file or directory/);
      fails(await box.run(args('.')), EXIT.failure, /is a directory, expected a file/);
      fs.writeFileSync(box.path('garbage.json'), 'not json at all');
      fails(await box.run(args('garbage.json')), EXIT.failure, /garbage.json: identity: not valid JSON/);
      // A CA key file is not an identity.
      fails(await box.run(args('ca/ca-key.json')), EXIT.failure, /identity: "format" must be "pqc-iiot-identity\/1"/);
      // Mixed-up keys: the KEM secret key of another identity.
      const good = JSON.parse(fs.readFileSync(box.path('gw.json'), 'utf8')) as Record<string, unknown>;
      const other = JSON.parse(fs.readFileSync(box.path('long-id.json'), 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(box.path('mixed.json'), JSON.stringify({ ...good, sigSecretKey: other.sigSecretKey }), { mode: 0o600 });
      fails(await box.run(args('mixed.json')), EXIT.failure, /signature secret key does not match its public key/);
    });

    const badArgs: Array<[string, string[], RegExp]> = [
      ['an unknown role', ['--roles', 'admin', '--topics', 'a'], /--roles must be pub, sub or both, not "admin"/],
      ['"#" inside a level', ['--roles', 'pub', '--topics', 'a/#/b'], /"a\/#\/b" is not a valid MQTT topic filter/],
      ['"+" mixed into a level', ['--roles', 'pub', '--topics', 'a/b+'], /"a\/b\+" is not a valid MQTT topic filter/],
      ['an empty entry', ['--roles', 'pub', '--topics', 'a,,b'], /--topics has an empty entry/],
      ['a trailing comma', ['--roles', 'pub', '--topics', 'a,'], /--topics has an empty entry/],
      ['a duplicate filter', ['--roles', 'pub', '--topics', 'a/#,a/#'], /--topics lists "a\/#" twice/],
      ['more filters than receivers accept', ['--roles', 'pub', '--topics', Array.from({ length: 33 }, (_, i) => `t/${i}`).join(',')], /33 filters; receivers accept at most 32/],
      ['a filter longer than receivers accept', ['--roles', 'pub', '--topics', 'x'.repeat(1025)], /is not a valid MQTT topic filter/],
      ['zero days', ['--roles', 'pub', '--topics', 'a', '--days', '0'], /--days must be a whole number from 1 to 36500/],
      ['negative days', ['--roles', 'pub', '--topics', 'a', '--days', '-5'], /--days must be a whole number/],
      ['non-numeric days', ['--roles', 'pub', '--topics', 'a', '--days', 'ten'], /--days must be a whole number/],
      ['too many days', ['--roles', 'pub', '--topics', 'a', '--days', '36501'], /--days must be a whole number from 1 to 36500/],
      ['a missing --topics', ['--roles', 'pub'], /missing --topics/],
      ['a missing --roles', ['--topics', 'a'], /missing --roles/],
    ];
    for (const [what, extra, message] of badArgs) {
      it(`rejects ${what} with exit 2 and leaves the identity untouched`, async () => {
        const before = fs.readFileSync(box.path('gw.json'), 'utf8');
        fails(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'gw.json', ...extra]), EXIT.usage, message);
        assert.equal(fs.readFileSync(box.path('gw.json'), 'utf8'), before);
      });
    }
  });

  describe('issued identities in the protocol core (strict mode)', () => {
    it('two devices enrolled by the CLI trust each other and exchange a message', async () => {
      const ca = box.readCaPub('ca', 'ca.pub');
      const sensor = box.readIdentity('sensor-1.json'); // pub on plant/line1/#, plant/alarms
      const controller = box.readIdentity('controller-1.json'); // both on plant/#
      const sensorSession = new SecureSession({ provider: new SoftwareProvider(sensor), caPublicKey: ca, strict: true });
      const controllerSession = new SecureSession({ provider: new SoftwareProvider(controller), caPublicKey: ca, strict: true });

      const sensorAnnouncement = await sensorSession.buildAnnouncement(NOW);
      const controllerAnnouncement = await controllerSession.buildAnnouncement(NOW);
      const a = await controllerSession.handleAnnouncement(sensorSession.announcementTopic(), sensorAnnouncement, NOW);
      assert.ok(a.ok, show(a));
      assert.equal(a.value.deviceId, 'sensor-1');
      const b = await sensorSession.handleAnnouncement(controllerSession.announcementTopic(), controllerAnnouncement, NOW);
      assert.ok(b.ok, show(b));

      const payload = new TextEncoder().encode('{"temp":21.5}');
      const envelope = await sensorSession.sealDirect('plant/line1/temp', payload, 'controller-1', NOW);
      const opened = await controllerSession.open('plant/line1/temp', envelope, NOW);
      assert.ok(opened.ok, show(opened));
      assert.deepEqual(opened.value.data, payload);
      assert.equal(opened.value.sender, 'sensor-1');
      // The certificate's topic rights hold end to end: re-routed to a topic outside them, it is refused.
      const rerouted = await controllerSession.open('plant/line2/temp', envelope, NOW);
      assert.deepEqual(rerouted.ok ? 'ok' : rerouted.reason, 'not-authorized');
      // Sensor's certificate allows publishing only under its filters.
      await assert.rejects(sensorSession.sealDirect('plant/line2/temp', payload, 'controller-1', NOW), /does not allow publishing/);

      fs.writeFileSync(box.path('sensor-1.announcement.bin'), sensorAnnouncement);
      fs.writeFileSync(box.path('sensor-1.envelope.bin'), envelope);
    });

    it('a device enrolled by another CA is refused, and so is one without a certificate', async () => {
      ok(await box.run(['identity', 'new', '--id', 'intruder', '--out', 'intruder.json', '--sig', 'ml-dsa-44']));
      assert.throws(
        () => new SecureSession({ provider: new SoftwareProvider(box.readIdentity('intruder.json')), caPublicKey: box.readCaPub('ca', 'ca.pub') }),
        /strict mode needs a certificate/,
      );
      ok(await box.run(['ca', 'issue', '--dir', 'ca-replaced', '--identity', 'intruder.json', '--roles', 'both', '--topics', '#']));
      const intruder = box.readIdentity('intruder.json');
      const ca = box.readCaPub('ca', 'ca.pub');
      const wrongCa = verifyCertificate(intruder.certificate!, ca, NOW);
      assert.deepEqual(wrongCa.ok ? 'ok' : wrongCa.reason, 'bad-certificate');

      const intruderSession = new SecureSession({
        provider: new SoftwareProvider(intruder), caPublicKey: box.readCaPub('ca-replaced', 'ca.pub'), strict: true,
      });
      const controllerSession = new SecureSession({
        provider: new SoftwareProvider(box.readIdentity('controller-1.json')), caPublicKey: ca, strict: true,
      });
      const verdict = await controllerSession.handleAnnouncement(
        intruderSession.announcementTopic(), await intruderSession.buildAnnouncement(NOW), NOW,
      );
      assert.deepEqual(verdict.ok ? 'ok' : verdict.reason, 'bad-certificate');
      fs.writeFileSync(box.path('intruder.announcement.bin'), await intruderSession.buildAnnouncement(NOW));
    });
  });

  describe('inspect', () => {
    interface Inspected {
      type: string;
      [field: string]: unknown;
    }
    const json = (r: CliResult): Inspected => JSON.parse(r.stdout) as Inspected;

    it('decodes a captured announcement from a file, from stdin, and as hex or base64 text', async () => {
      const bytes = fs.readFileSync(box.path('sensor-1.announcement.bin'));
      const fromFile = json(ok(await box.run(['inspect', 'sensor-1.announcement.bin'])));
      assert.equal(fromFile.type, 'announcement');
      assert.equal(fromFile.deviceId, 'sensor-1');
      assert.equal(fromFile.keyEpoch, 1);
      assert.equal(fromFile.sigAlgorithm, 'ML-DSA-44');
      assert.equal(fromFile.size, bytes.length);
      assert.equal((fromFile.certificate as Inspected).deviceId, 'sensor-1');
      assert.deepEqual((fromFile.certificate as Inspected).topics, ['plant/line1/#', 'plant/alarms']);
      assert.equal(fromFile.verification, undefined, 'nothing is claimed verified without --ca');

      assert.deepEqual(json(ok(await box.run(['inspect', '-'], { stdin: bytes }))), fromFile);
      assert.deepEqual(json(ok(await box.run(['inspect'], { stdin: bytes }))), fromFile);
      const hex = json(ok(await box.run(['inspect', '-'], { stdin: bytes.toString('hex').replace(/(.{64})/g, '$1\n') })));
      assert.equal(hex.encoding, 'hex');
      assert.equal(hex.deviceId, 'sensor-1');
      const b64 = json(ok(await box.run(['inspect', '-'], { stdin: bytes.toString('base64') + '\n' })));
      assert.equal(b64.encoding, 'base64');
      assert.equal(b64.keyId, fromFile.keyId);
    });

    it('with --ca, checks an announcement the way a strict receiver does', async () => {
      const good = json(ok(await box.run(['inspect', 'sensor-1.announcement.bin', '--ca', 'ca'])));
      assert.deepEqual(good.verification, { ok: true });
      const bad = await box.run(['inspect', 'intruder.announcement.bin', '--ca', 'ca/ca.pub']);
      fails(bad, EXIT.failure, /verification failed: bad-certificate/);
      assert.equal((json(bad).verification as { reason: string }).reason, 'bad-certificate');
    });

    it('decodes a data envelope: sender, recipient, sequence; ciphertext only as length and digest', async () => {
      const e = json(ok(await box.run(['inspect', 'sensor-1.envelope.bin'])));
      assert.equal(e.type, 'directEnvelope');
      assert.equal(e.senderId, 'sensor-1');
      assert.equal(e.recipientId, 'controller-1');
      assert.equal(e.kemAlgorithm, 'ML-KEM-768');
      assert.match(String(e.seq), /^\d+$/);
      assert.match(String(e.timestamp), new RegExp(`^${new Date(NOW).toISOString()} \\(${NOW}\\)$`));
      // Long byte fields are summarised, short ones (nonce, the 13-byte message's ciphertext) shown.
      assert.deepEqual(Object.keys(e.capsule as object).sort(), ['length', 'sha256']);
      assert.equal((e.capsule as { length: number }).length, 1088);
      assert.match(String(e.nonce), /^[0-9a-f]{24}$/);
      assert.match(String(e.ciphertext), /^[0-9a-f]{58}$/);
      const full = json(ok(await box.run(['inspect', '--full', 'sensor-1.envelope.bin'])));
      assert.match(String(full.capsule), /^[0-9a-f]{2176}$/);
    });

    it('decodes a raw certificate and verifies it against the right CA only', async () => {
      fs.writeFileSync(box.path('sensor-1.cert.bin'), box.readIdentity('sensor-1.json').certificate!);
      const c = json(ok(await box.run(['inspect', 'sensor-1.cert.bin', '--ca', 'ca'])));
      assert.equal(c.type, 'certificate');
      assert.equal(c.roles, 'pub');
      assert.deepEqual(c.verification, { ok: true });
      fails(await box.run(['inspect', 'sensor-1.cert.bin', '--ca', 'ca-replaced']), EXIT.failure, /verification failed: bad-certificate/);
      // Expired by the time it is inspected.
      fails(await box.run(['inspect', 'sensor-1.cert.bin', '--ca', 'ca'], { now: NOW + 31 * DAY_MS }), EXIT.failure, /verification failed: expired/);
    });

    it('shows an identity file and a CA key file without their secret keys', async () => {
      const id = json(ok(await box.run(['inspect', 'sensor-1.json', '--ca', 'ca/ca.pub'])));
      assert.equal(id.type, 'identity');
      assert.equal(id.deviceId, 'sensor-1');
      assert.match(String(id.secretKeys), /not shown/);
      assert.deepEqual(id.verification, { ok: true });
      const keyNames = JSON.stringify(id);
      assert.ok(!/kemSecretKey|sigSecretKey/.test(keyNames));
      // An identity without a certificate cannot pass --ca.
      fails(await box.run(['inspect', 'gw.json', '--ca', 'ca']), EXIT.failure, /verification failed: no-certificate/);

      const caKey = json(ok(await box.run(['inspect', 'ca/ca-key.json'])));
      assert.equal(caKey.type, 'caKeyPair');
      assert.equal(caKey.text, fs.readFileSync(box.path('ca', 'ca.pub'), 'utf8').trim());
      assert.match(String(caKey.secretKey), /not shown/);
    });

    it('shows CA public key text, from a file and pasted with line breaks', async () => {
      const text = fs.readFileSync(box.path('ca', 'ca.pub'), 'utf8').trim();
      const fromFile = json(ok(await box.run(['inspect', 'ca/ca.pub'])));
      assert.equal(fromFile.type, 'caPublicKeyText');
      assert.equal(fromFile.sigAlgorithm, 'ML-DSA-44');
      const wrapped = text.replace(/(.{76})/g, '$1\n');
      assert.equal(json(ok(await box.run(['inspect', '-'], { stdin: wrapped }))).keyId, fromFile.keyId);
      fails(await box.run(['inspect', 'ca/ca.pub', '--ca', 'ca-replaced']), EXIT.failure, /verification failed: bad-certificate/);
    });

    it('rejects bad packets with the reason code a receiver would give, and exit 1', async () => {
      const announcement = fs.readFileSync(box.path('sensor-1.announcement.bin'));
      const cases: Array<[string, Buffer, RegExp]> = [
        ['truncated', announcement.subarray(0, announcement.length - 10), /rejected: truncated/],
        ['trailing byte', Buffer.concat([announcement, Buffer.of(0)]), /rejected: trailing-data/],
        ['header only', announcement.subarray(0, 3), /rejected: truncated/],
        ['wrong version', Buffer.concat([announcement.subarray(0, 2), Buffer.of(9), announcement.subarray(3)]), /rejected: bad-version/],
        ['unknown type', Buffer.concat([announcement.subarray(0, 3), Buffer.of(0x7f), announcement.subarray(4)]), /rejected: bad-type/],
        ['unknown algorithm', Buffer.from(announcement).fill(0xee, 4 + 1 + 8 + 4 + 16, 4 + 1 + 8 + 4 + 16 + 1), /rejected: unknown-algorithm/],
        ['random bytes', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x81]), /rejected: bad-magic/],
        ['plain text', Buffer.from('hello world\n'), /rejected: bad-magic/],
        ['CA text with a broken body', Buffer.from(`pqcca1:${Buffer.alloc(8).toString('base64')}`), /rejected: bad-magic/],
        ['CA text cut short', Buffer.from('pqcca1:AAAA'), /rejected: truncated/],
      ];
      for (const [what, bytes, message] of cases) {
        const r = await box.run(['inspect', '-'], { stdin: bytes });
        fails(r, EXIT.failure, message);
        assert.equal(r.stdout, '', `${what}: nothing on stdout`);
      }
    });

    it('rejects missing, empty and unrecognised inputs', async () => {
      fails(await box.run(['inspect', 'nope.bin']), EXIT.failure, /input file nope.bin: no such file or directory/);
      fails(await box.run(['inspect', '-'], { stdin: '' }), EXIT.failure, /stdin is empty/);
      fails(await box.run(['inspect'], { stdinIsTty: true }), EXIT.usage, /give a FILE, or pipe data/);
      fails(await box.run(['inspect', 'a', 'b']), EXIT.usage, /unexpected argument "b"/);
      fails(await box.run(['inspect', '-'], { stdin: '{"format":"something-else"}' }), EXIT.failure, /neither an identity file/);
      fails(await box.run(['inspect', '-'], { stdin: '{"format": ' }), EXIT.failure, /stdin is not valid JSON/);
      fails(await box.run(['inspect', 'sensor-1.json', '--ca', 'no-such-ca']), EXIT.failure, /CA file no-such-ca: no such file/);
      fails(await box.run(['inspect', 'sensor-1.json', '--ca', 'pqcca1:%%%']), EXIT.usage, /--ca is not a valid CA public key/);
    });
  });
});

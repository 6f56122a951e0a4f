/**
 * `pqc-iiot audit verify FILE --pub KEY` (I6): a log written by the AuditLog adapter verifies
 * under the device's identity file or a captured key announcement; every tampering is reported
 * with the exact line and exit status 1. No secret ever reaches the output.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { SoftwareProvider, identityPublicInfo, type IdentityBundle } from '../../lib/index';
import { EXIT } from '../../lib/cli/main';
import { AuditLog } from '../../lib/io/audit-log';
import { buildAnnouncement } from '../../lib/session/announce';
import { AUDIT_LIMITS } from '../../lib/trust/audit';
import { CliSandbox, fails, ok } from './cli-harness';

describe('pqc-iiot audit verify', function () {
  this.timeout(60_000);
  const box = new CliSandbox();
  let identity: IdentityBundle;
  let lines: string[];

  /** Writes `content` as a log file in the sandbox and returns its name. */
  let files = 0;
  function logFile(content: string | Buffer): string {
    const name = `log-${++files}.jsonl`;
    fs.writeFileSync(box.path(name), content);
    return name;
  }
  const join = (l: string[]) => l.map((x) => `${x}\n`).join('');

  before(async () => {
    ok(await box.run(['ca', 'init', '--dir', 'ca']));
    ok(await box.run(['ca', 'init', '--dir', 'other-ca']));
    ok(await box.run(['identity', 'new', '--id', 'gw-1', '--sig', 'ml-dsa-44', '--out', 'gw-1.json']));
    ok(await box.run(['ca', 'issue', '--dir', 'ca', '--identity', 'gw-1.json', '--roles', 'both', '--topics', 'plant/#']));
    ok(await box.run(['identity', 'new', '--id', 'gw-1', '--sig', 'ml-dsa-44', '--out', 'impostor.json']));
    identity = box.readIdentity('gw-1.json');

    const log = await AuditLog.open({ file: box.path('audit.jsonl'), provider: new SoftwareProvider(identity), now: () => box.now });
    await log.record('peer-trusted', { peer: 'sensor-1', epoch: 1 });
    await log.rejected('bad-signature', { peer: 'sensor-9', topic: 'plant/line1' });
    await log.record('revoked', { seq: 0, added: 1 });
    await log.record('rotated', { peer: 'sensor-1', fromEpoch: 1, toEpoch: 2 });
    await log.record('state-rollback', { generation: 4 });
    await log.close();
    lines = fs.readFileSync(box.path('audit.jsonl'), 'utf8').split('\n').filter((l) => l !== '');

    // The device's announcement as captured from pqc/keys/gw-1: raw, hex and base64.
    const provider = new SoftwareProvider(identity);
    const announcement = Buffer.from(await buildAnnouncement(provider, box.now, (d) => provider.sign(d)));
    fs.writeFileSync(box.path('gw-1.announcement.bin'), announcement);
    fs.writeFileSync(box.path('gw-1.announcement.hex'), announcement.toString('hex') + '\n');
    fs.writeFileSync(box.path('gw-1.announcement.b64'), announcement.toString('base64') + '\n');
    fs.writeFileSync(box.path('gw-1.public.json'), JSON.stringify(identityPublicInfo(identity), null, 2));
  });

  after(() => box.finish());

  it('"audit verify --help" documents FILE and --pub and exits 0', async () => {
    const r = ok(await box.run(['audit', 'verify', '--help']));
    assert.match(r.stdout, /^Usage: pqc-iiot audit verify --pub KEY \[--ca CA\] FILE/);
    assert.match(r.stdout, /announcement/);
    const top = ok(await box.run(['--help']));
    assert.match(top.stdout, /audit verify/);
  });

  it('I6 an intact log verifies under the identity file: exit 0 and "N entries verified"', async () => {
    const r = ok(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'gw-1.json']));
    assert.match(r.stdout, /^audit\.jsonl: 5 entries verified$/m);
    assert.match(r.stdout, /device: +gw-1 \(ML-DSA-44, key [0-9a-f:]{39}\)/);
    assert.equal(r.stderr, '');
  });

  it('I6 the key may be the public parts only, or a captured announcement (raw, hex, base64)', async () => {
    ok(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'gw-1.public.json']));
    for (const capture of ['gw-1.announcement.bin', 'gw-1.announcement.hex', 'gw-1.announcement.b64']) {
      const r = ok(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', capture]));
      assert.match(r.stdout, /5 entries verified/);
      assert.match(r.stderr, /warning: the key comes from an announcement whose certificate was not checked; pass --ca/);
      const checked = ok(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', capture, '--ca', 'ca']));
      assert.match(checked.stdout, /certificate verified under the CA/);
      assert.equal(checked.stderr, '');
    }
    ok(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'gw-1.json', '--ca', 'ca/ca.pub']));
  });

  it('I6 a key that the CA did not certify is refused with --ca', async () => {
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'gw-1.announcement.bin', '--ca', 'other-ca']), EXIT.failure, /not trusted under the CA \(bad-certificate\)/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'gw-1.json', '--ca', 'other-ca']), EXIT.failure, /certificate does not verify under the CA \(bad-certificate\)/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'impostor.json', '--ca', 'ca']), EXIT.failure, /holds no certificate/);
  });

  const attacks: Array<{ name: string; line: number; reason: string; tamper: (l: string[]) => string }> = [
    { name: 'an entry is edited', line: 3, reason: 'bad-signature', tamper: (l) => join(l.map((x, i) => (i === 2 ? x.replace('"added":1', '"added":0') : x))) },
    { name: 'an entry is deleted', line: 2, reason: 'bad-seq', tamper: (l) => join(l.filter((_x, i) => i !== 1)) },
    { name: 'two entries are reordered', line: 4, reason: 'bad-seq', tamper: (l) => join([l[0], l[1], l[2], l[4], l[3]]) },
    { name: 'a line is inserted', line: 2, reason: 'bad-seq', tamper: (l) => join([l[0], l[3], ...l.slice(1)]) },
    { name: 'the file is cut in the middle of the last line', line: 5, reason: 'truncated', tamper: (l) => join(l).slice(0, -300) },
  ];
  for (const a of attacks) {
    it(`I6 ${a.name} → exit 1 naming line ${a.line} (${a.reason})`, async () => {
      const name = logFile(a.tamper(lines));
      const r = await box.run(['audit', 'verify', name, '--pub', 'gw-1.json']);
      fails(r, EXIT.failure, new RegExp(`${name.replace('.', '\\.')} line ${a.line}: ${a.reason}: `));
      assert.match(r.stderr, new RegExp(`; ${a.line - 1} entries before it verified`));
      assert.equal(r.stdout, '');
    });
  }

  it('I6 a log checked with another device\'s key fails at line 1 with a hint', async () => {
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'impostor.json']), EXIT.failure, /line 1: bad-signature: .*or KEY is not the key that signed this log/);
  });

  it('I6 an oversized line is refused while streaming, before it is held whole', async () => {
    const name = logFile(`${lines[0]}\n${'x'.repeat(AUDIT_LIMITS.maxLineBytes * 4)}`);
    fails(await box.run(['audit', 'verify', name, '--pub', 'gw-1.json']), EXIT.failure, /line 2: too-large/);
  });

  it('an empty log verifies with a warning', async () => {
    const r = ok(await box.run(['audit', 'verify', logFile(''), '--pub', 'gw-1.json']));
    assert.match(r.stdout, /0 entries verified/);
    assert.match(r.stderr, /holds no entries/);
  });

  it('bad input: missing log or key, wrong kind of key file, missing --pub', async () => {
    fails(await box.run(['audit', 'verify', 'nope.jsonl', '--pub', 'gw-1.json']), EXIT.failure, /audit log nope\.jsonl: no such file or directory/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'nope.json']), EXIT.failure, /key file nope\.json: no such file/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl']), EXIT.usage, /missing --pub KEY/);
    fails(await box.run(['audit', 'verify', '--pub', 'gw-1.json']), EXIT.usage, /missing FILE/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'ca/ca-key.json']), EXIT.failure, /is a CA key file/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'ca/ca.pub']), EXIT.failure, /is a CA public key/);
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'audit.jsonl']), EXIT.failure, /key file audit\.jsonl is not valid JSON/);
    fs.writeFileSync(box.path('garbage.bin'), Buffer.from([0x50, 0x51, 1, 1, 0, 0]));
    fails(await box.run(['audit', 'verify', 'audit.jsonl', '--pub', 'garbage.bin']), EXIT.failure, /not a usable key announcement \(bad-id\)/);
    fails(await box.run(['audit', 'verify', 'ca', '--pub', 'gw-1.json']), EXIT.failure, /is not a regular file/);
  });
});

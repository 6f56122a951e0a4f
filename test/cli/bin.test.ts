/**
 * The compiled `pqc-iiot` binary as users run it: a child process with real stdio, exit codes
 * and files (the in-process tests cover the verbs in depth).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { removeDir, tempDir } from './cli-harness';

// dist/test/cli/bin.test.js → dist/lib/cli/main.js
const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function pqcIiot(args: string[], cwd: string, stdin?: Buffer): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('pqc-iiot binary (child process)', function () {
  this.timeout(30_000);
  let dir: string;

  before(() => {
    dir = tempDir('pqc-bin-');
  });
  after(() => removeDir(dir));

  it('starts with a node shebang so the package bin runs directly', () => {
    assert.equal(fs.readFileSync(MAIN, 'utf8').split('\n')[0], '#!/usr/bin/env node');
  });

  it('provisions a device end to end and inspects it from a pipe', async () => {
    const init = await pqcIiot(['ca', 'init', '--dir', 'ca'], dir);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(fs.statSync(path.join(dir, 'ca', 'ca-key.json')).mode & 0o777, 0o600);

    const made = await pqcIiot(['identity', 'new', '--id', 'pump-7', '--out', 'pump-7.json', '--sig', 'ml-dsa-44'], dir);
    assert.equal(made.code, 0, made.stderr);
    const issued = await pqcIiot(['ca', 'issue', '--dir', 'ca', '--identity', 'pump-7.json', '--roles', 'pub', '--topics', 'pumps/7/#'], dir);
    assert.equal(issued.code, 0, issued.stderr);

    const bundle = fs.readFileSync(path.join(dir, 'pump-7.json'));
    const shown = await pqcIiot(['inspect', '-', '--ca', 'ca'], dir, bundle);
    assert.equal(shown.code, 0, shown.stderr);
    const report = JSON.parse(shown.stdout) as { deviceId: string; verification: unknown };
    assert.equal(report.deviceId, 'pump-7');
    assert.deepEqual(report.verification, { ok: true });

    const secrets = JSON.parse(bundle.toString('utf8')) as { kemSecretKey: string; sigSecretKey: string };
    for (const out of [init, made, issued, shown]) {
      assert.ok(!out.stdout.includes(secrets.kemSecretKey) && !out.stdout.includes(secrets.sigSecretKey));
      assert.ok(!out.stderr.includes(secrets.kemSecretKey) && !out.stderr.includes(secrets.sigSecretKey));
    }
  });

  it('exits 2 on a usage error and 1 on bad input, with the message on stderr', async () => {
    const usage = await pqcIiot(['identity', 'new', '--id', 'bad id!', '--out', 'x.json'], dir);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /invalid device id "bad id!"/);
    assert.equal(usage.stdout, '');

    const bad = await pqcIiot(['inspect', '-'], dir, Buffer.from([0x50, 0x51, 0x01, 0x01]));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /rejected: truncated/);
  });

  it('prints help with exit 0', async () => {
    const help = await pqcIiot(['ca', 'issue', '--help'], dir);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: pqc-iiot ca issue --dir DIR --identity FILE --roles ROLE --topics FILTERS \[--days N\]/);
  });
});

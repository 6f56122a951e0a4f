/**
 * The README's start command, run as a user would: `node dist/demo/start.js` (what `npm start`
 * runs after building) in a fresh demo dir. Proves the broker starts, the demo flow deploys, a
 * verified reading reaches the "verified plaintext" debug node while the plain subscriber sees
 * only ciphertext, that a second start reuses the provisioned identities, and that no secret
 * lands in flows.json.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const START = join(__dirname, '..', '..', 'demo', 'start.js');

interface RunningDemo {
  child: ChildProcess;
  editor: string;
  output: () => string;
}

function startDemo(dir: string): Promise<RunningDemo> {
  const child = spawn(process.execPath, [START], {
    env: { ...process.env, PQC_DEMO_DIR: dir, PQC_DEMO_PORT: '0', PQC_DEMO_BROKER_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /\[pqc-demo\] editor: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) resolve({ child, editor: m[1], output: () => out });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`demo exited with ${code} before it was ready:\n${out}`)));
  });
}

function stopDemo(demo: RunningDemo): Promise<number | null> {
  return new Promise((resolve) => {
    if (demo.child.exitCode !== null) return resolve(demo.child.exitCode);
    demo.child.once('exit', (code) => resolve(code));
    demo.child.kill('SIGINT');
  });
}

interface DebugMessage {
  name: string;
  msg: string;
}

/** Collects debug sidebar messages over the editor's websocket until `done` says enough. */
function watchDebug(editor: string, done: (seen: DebugMessage[]) => boolean): Promise<DebugMessage[]> {
  const ws = new WebSocket(`${editor.replace('http', 'ws')}/comms`);
  const seen: DebugMessage[] = [];
  return new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ subscribe: 'debug' })));
    ws.on('error', reject);
    ws.on('message', (raw) => {
      for (const event of JSON.parse(raw.toString()) as Array<{ topic: string; data: DebugMessage }>) {
        if (event.topic === 'debug') seen.push(event.data);
      }
      if (done(seen)) {
        ws.close();
        resolve(seen);
      }
    });
  });
}

const count = (seen: DebugMessage[], name: string) => seen.filter((m) => m.name === name).length;

describe('npm start: the zero-setup demo', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pqc-demo-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('provisions, starts broker and Node-RED, and delivers verified readings while the broker sees ciphertext', async () => {
    const demo = await startDemo(dir);
    try {
      assert.match(demo.output(), /provisioned a demo CA and identities/);
      assert.match(demo.output(), /embedded MQTT broker \(aedes, MQTT 3\.1\.1\) on mqtt:\/\/127\.0\.0\.1:\d+/);
      const seen = await watchDebug(demo.editor, (s) => count(s, 'verified plaintext') >= 2 && count(s, 'broker sees (ciphertext)') >= 2);
      const verified = JSON.parse(seen.find((m) => m.name === 'verified plaintext')!.msg);
      assert.equal(typeof verified.payload.temperature, 'number');
      assert.equal(verified.pqc.sender, 'demo-sensor');
      assert.equal(verified.topic, 'plant/line-1/temperature');
      for (const m of seen.filter((x) => x.name === 'broker sees (ciphertext)')) {
        const view = JSON.parse(m.msg);
        assert.equal(view.containsPlaintext, false);
        assert.match(view.startsWith, /^5051/, 'the broker sees a pqc-iiot envelope');
      }
      assert.equal(count(seen, 'rejections'), 0, 'nothing legitimate is rejected');
    } finally {
      assert.equal(await stopDemo(demo), 0);
    }
    const flows = readFileSync(join(dir, 'flows.json'), 'utf8');
    const sensor = JSON.parse(readFileSync(join(dir, 'provision', 'demo-sensor.json'), 'utf8'));
    for (const secret of [sensor.kemSecretKey, sensor.sigSecretKey]) {
      assert.ok(!flows.includes(secret.slice(0, 64)), 'a secret key is in flows.json');
      assert.ok(!readFileSync(join(dir, 'flows_cred.json'), 'utf8').includes(secret.slice(0, 64)), 'credentials are not encrypted');
    }
  });

  it('a second start reuses the identities and the saved flow, on whatever ports are free', async () => {
    const demo = await startDemo(dir);
    try {
      assert.doesNotMatch(demo.output(), /provisioned a demo CA/);
      const seen = await watchDebug(demo.editor, (s) => count(s, 'verified plaintext') >= 1);
      assert.equal(JSON.parse(seen.find((m) => m.name === 'verified plaintext')!.msg).pqc.sender, 'demo-sensor');
    } finally {
      assert.equal(await stopDemo(demo), 0);
    }
  });
});

/**
 * `npm start`: the zero-setup demo. Starts an embedded MQTT broker (aedes, MQTT 3.1.1) on
 * loopback, provisions a demo CA and two device identities on first run, starts Node-RED with
 * this pack from the repository, deploys the demo flow and prints the editor URL.
 * Everything lives in the demo user dir (default `.demo/`, or PQC_DEMO_DIR); delete it to start
 * over. Ports: PQC_DEMO_PORT (editor, default 1880) and PQC_DEMO_BROKER_PORT (broker, default
 * 1884), each falling back to a free port when taken (0 = any free port).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { join, resolve } from 'node:path';
import { provisionDemo, type DemoProvision } from './provision';
import { buildDemoFlow, DEMO_BROKER_NODE_IDS } from './flow';

const repoRoot = resolve(__dirname, '..', '..');

interface DemoState {
  brokerPort: number;
  editorPort: number;
}

function log(line: string): void {
  process.stdout.write(`[pqc-demo] ${line}\n`);
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', () => done(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
  });
}

async function freePort(preferred: number): Promise<number> {
  if (preferred > 0 && (await portIsFree(preferred))) return preferred;
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => done(port));
    });
  });
}

function envPort(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  // 0 asks for any free port (tests run several demos side by side).
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name} must be a port number (0 = any free port)`);
  return port;
}

async function startBroker(port: number): Promise<{ server: Server; close(): Promise<void> }> {
  // aedes 1.x is created asynchronously, once its persistence is ready.
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => done());
  });
  return {
    server,
    close: async () => {
      await new Promise<void>((done) => broker.close(() => done()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

function writeSettings(dir: string, editorPort: number): string {
  const settingsPath = join(dir, 'settings.js');
  const secretPath = join(dir, '.credential-secret');
  if (!existsSync(secretPath)) writeFileSync(secretPath, randomBytes(32).toString('hex'), { mode: 0o600 });
  const settings = `// Written by the pqc-iiot demo (npm start). Credentials are encrypted with the secret in
// .credential-secret; the pack is loaded from the repository.
const fs = require('fs');
const path = require('path');
module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${editorPort},
  flowFile: 'flows.json',
  credentialSecret: fs.readFileSync(path.join(__dirname, '.credential-secret'), 'utf8').trim(),
  nodesDir: [${JSON.stringify(repoRoot)}],
  editorTheme: { tours: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`;
  writeFileSync(settingsPath, settings, { mode: 0o600 });
  return settingsPath;
}

async function waitForEditor(base: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Node-RED exited with code ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/settings`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('Node-RED did not start within 90 s');
}

async function deploy(base: string, flow: unknown[]): Promise<void> {
  const res = await fetch(`${base}/flows`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flow),
  });
  if (!res.ok) throw new Error(`deploying the demo flow failed: HTTP ${res.status} ${await res.text()}`);
}

/** The broker port moved since the last run: point the demo's broker config nodes at it. */
async function repointBroker(base: string, brokerPort: number): Promise<void> {
  const res = await fetch(`${base}/flows`);
  if (!res.ok) throw new Error(`reading flows failed: HTTP ${res.status}`);
  const flows = (await res.json()) as Array<Record<string, unknown>>;
  let changed = false;
  for (const node of flows) {
    if (DEMO_BROKER_NODE_IDS.includes(String(node.id)) && Number(node.port) !== brokerPort) {
      node.port = String(brokerPort);
      changed = true;
    }
  }
  if (changed) await deploy(base, flows);
}

async function main(): Promise<void> {
  const dir = resolve(process.env.PQC_DEMO_DIR || join(repoRoot, '.demo'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const statePath = join(dir, 'demo.json');
  const previous: Partial<DemoState> = existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) : {};

  const firstRun = !existsSync(join(dir, 'flows.json'));
  const provision: DemoProvision = provisionDemo(join(dir, 'provision'), Date.now());
  if (provision.created) log(`provisioned a demo CA and identities in ${join(dir, 'provision')}`);

  const brokerPort = await freePort(envPort('PQC_DEMO_BROKER_PORT') ?? previous.brokerPort ?? 1884);
  const editorPort = await freePort(envPort('PQC_DEMO_PORT') ?? previous.editorPort ?? 1880);
  writeFileSync(statePath, JSON.stringify({ brokerPort, editorPort }, null, 2));

  const broker = await startBroker(brokerPort);
  log(`embedded MQTT broker (aedes, MQTT 3.1.1) on mqtt://127.0.0.1:${brokerPort}`);

  const settingsPath = writeSettings(dir, editorPort);
  const redMain = require.resolve('node-red/red.js');
  const child = spawn(process.execPath, [redMain, '--userDir', dir, '--settings', settingsPath], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, NODE_RED_ENABLE_PROJECTS: 'false' },
  });
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (child.exitCode === null) child.kill('SIGINT');
    await broker.close();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  child.on('exit', (code) => void stop(code ?? 0));

  const base = `http://127.0.0.1:${editorPort}`;
  await waitForEditor(base, child);
  if (firstRun) {
    await deploy(base, buildDemoFlow({ brokerPort, provision }));
    log('deployed the demo flow');
  } else {
    await repointBroker(base, brokerPort);
  }
  log(`editor: ${base}/   (Ctrl-C stops Node-RED and the broker)`);
  log('open the Debug sidebar: "verified plaintext" shows decrypted readings, "broker sees" the ciphertext');
}

main().catch((error: unknown) => {
  process.stderr.write(`[pqc-demo] ${(error as Error).message}\n`);
  process.exit(1);
});

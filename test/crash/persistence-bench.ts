/**
 * Cost of durable state on the receive path (not a test; figures only):
 *
 *   node dist/test/crash/persistence-bench.js [messages] [dir]
 *
 * Opens N direct envelopes (ML-KEM-768 + ML-DSA-44) the way the endpoint does — each MQTT
 * message in its own macrotask, `open()` then the durability hook — and reports messages/s:
 *   memory       no persistence (durable hook resolves at once)
 *   group        StateStore.flush() with group commit, fsync on (what the config node runs)
 *   per-message  one awaited write per message, fsync on (what a naive store costs)
 * plus the number of writes each run made. `dir` defaults to a folder under the OS temp dir;
 * pass a folder on the disk Node-RED's userDir lives on for realistic fsync figures.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecureSession, SoftwareProvider, createCa, createIdentity, issueCertificate, type IdentityBundle } from '../../lib';
import { StateStore, restoreInto } from '../../lib/io/state-store';

const TOPIC = 'plant/bench/temp';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? '400');
  const base = process.argv[3] ?? os.tmpdir();
  const now = Date.now();
  const ca = createCa();
  const cert = (id: string, roles: 'pub' | 'sub'): IdentityBundle =>
    issueCertificate(ca, createIdentity({ deviceId: id, sigAlgorithm: 'ML-DSA-44' }), { roles, topics: ['plant/#'], notBefore: now - 3600_000, notAfter: now + 86400_000 });
  const gw = cert('gw', 'sub');
  const sensor = cert('sensor', 'pub');
  const sender = new SecureSession({ provider: new SoftwareProvider(sensor), caPublicKey: ca.publicKey });

  const receiver = async (): Promise<SecureSession> => {
    const s = new SecureSession({ provider: new SoftwareProvider(gw), caPublicKey: ca.publicKey });
    const a = await s.handleAnnouncement('pqc/keys/sensor', await sender.buildAnnouncement(now), now);
    if (!a.ok) throw new Error(a.reason);
    if (!sender.listPeers().length) {
      const b = await sender.handleAnnouncement('pqc/keys/gw', await s.buildAnnouncement(now), now);
      if (!b.ok) throw new Error(b.reason);
    }
    return s;
  };

  await receiver();
  const runs: Array<[string, 'memory' | 'group' | 'per-message']> = [['memory', 'memory'], ['group commit', 'group'], ['one write per message', 'per-message']];
  console.log(`${n} direct envelopes per run, state folder under ${base}`);
  for (const [label, mode] of runs) {
    const envelopes: Uint8Array[] = [];
    for (let i = 0; i < n; i++) envelopes.push(await sender.sealDirect(TOPIC, Buffer.from(`reading ${i}`), 'gw', now));
    const s = await receiver();
    let store: StateStore | undefined;
    const dir = fs.mkdtempSync(path.join(base, 'pqc-bench-'));
    if (mode !== 'memory') {
      store = await StateStore.open({ dir, provider: new SoftwareProvider(gw) });
      const r = await restoreInto(store, s, now);
      if (!r.ok) throw new Error(r.message);
    }
    const durable = (): Promise<void> => (store ? store.flush() : Promise.resolve());
    const started = process.hrtime.bigint();
    if (mode === 'per-message') {
      for (const e of envelopes) {
        const r = await s.open(TOPIC, e, now);
        if (!r.ok) throw new Error(r.reason);
        await durable();
      }
    } else {
      // As MQTT delivers them: one macrotask per message, released after the durability hook.
      await Promise.all(envelopes.map((e) => new Promise<void>((resolve, reject) => setImmediate(() => {
        s.open(TOPIC, e, now).then(async (r) => {
          if (!r.ok) throw new Error(r.reason);
          await durable();
        }).then(resolve, reject);
      }))));
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`${label.padEnd(22)} ${(n / (ms / 1000)).toFixed(0).padStart(6)} msg/s  (${ms.toFixed(0)} ms, ${store ? store.writes : 0} writes)`);
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // A paced stream (one message every `gapMs`): the latency durability adds to each release.
  const gapMs = 5;
  const m = Math.min(n, 200);
  for (const persist of [false, true]) {
    const envelopes: Uint8Array[] = [];
    for (let i = 0; i < m; i++) envelopes.push(await sender.sealDirect(TOPIC, Buffer.from(`reading ${i}`), 'gw', now));
    const s = await receiver();
    const dir = fs.mkdtempSync(path.join(base, 'pqc-bench-'));
    let store: StateStore | undefined;
    if (persist) {
      store = await StateStore.open({ dir, provider: new SoftwareProvider(gw) });
      const r = await restoreInto(store, s, now);
      if (!r.ok) throw new Error(r.message);
    }
    const latencies: number[] = [];
    await Promise.all(envelopes.map((e, i) => new Promise<void>((resolve, reject) => setTimeout(() => {
      const arrived = performance.now();
      s.open(TOPIC, e, now).then(async (r) => {
        if (!r.ok) throw new Error(r.reason);
        if (store) await store.flush();
        latencies.push(performance.now() - arrived);
      }).then(resolve, reject);
    }, i * gapMs))));
    latencies.sort((a, b) => a - b);
    const q = (p: number): string => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(1);
    console.log(`paced ${1000 / gapMs}/s ${persist ? 'group commit' : 'memory      '}  release latency p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${q(1)} ms (${store ? store.writes : 0} writes for ${m} messages)`);
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

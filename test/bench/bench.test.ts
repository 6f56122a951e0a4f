/**
 * The benchmark's pure parts (bench/): statistics, the SVG chart, the forged envelopes of the
 * flood scenario, and the npm script. The benchmark itself is `npm run bench`, never a test:
 * nothing here measures time.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { throughputCeiling } from '../../bench/ceiling';
import { renderChart } from '../../bench/chart';
import { forgeTopicEnvelope } from '../../bench/forge';
import { markdownTable, median, percentile, round } from '../../bench/stats';
import { decodeTopicEnvelope } from '../../lib/wire/topic-envelope';
import { T0, certify, keysFor, pair, session } from '../lib/fixtures';

const ROOT = join(__dirname, '..', '..', '..');

describe('bench (npm run bench): pure parts', () => {
  it('percentiles by nearest rank, median, rounding', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile(xs, 100), 100);
    assert.equal(percentile(xs, 0), 1);
    assert.equal(median([3, 1, 2]), 2);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.equal(round(1234.56), 1235);
    assert.equal(round(0.012345), 0.0123);
    assert.equal(round(12.345), 12.3);
  });

  it('markdown tables show every column and a dash for missing values', () => {
    const t = markdownTable([{ a: 1, b: 'x' }, { a: undefined, b: Number.NaN as unknown as string }]);
    assert.deepEqual(t.split('\n'), ['| a | b |', '|---|---|', '| 1 | x |', '| — | — |']);
    assert.equal(markdownTable([]), '');
  });

  it('the chart is one SVG with a bar per scenario, labels escaped', () => {
    const svg = renderChart({
      title: 'Node <20> & co',
      subtitle: 'sub',
      throughput: [{ label: 'plain', value: 10_000 }, { label: 'pqc "topic"', value: 2500, note: '(0.25× plain)' }],
      latency: [{ label: 'plain', value: 1 }, { label: 'pqc', value: Number.NaN }],
    });
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.equal((svg.match(/<rect /g) ?? []).length, 1 + 4);
    assert.ok(svg.includes('Node &lt;20&gt; &amp; co'));
    assert.ok(svg.includes('pqc &quot;topic&quot;'));
    assert.ok(!/NaN/.test(svg));
  });

  it('forged flood envelopes decode, name the real publisher, and fail AES-GCM before any signature check', async function () {
    this.timeout(60_000);
    const pub = session(certify(keysFor({ id: 'bench-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const sub = session(certify(keysFor({ id: 'bench-sub' }), { roles: 'sub', topics: ['plant/#'] }));
    await pair(pub, sub);
    const real = await pub.sealTopic('plant/bench', new Uint8Array(100), T0);
    await sub.handleKeyMessage(real.keyMessage!.topic, real.keyMessage!.payload, T0);
    const template = decodeTopicEnvelope(real.envelope);
    assert.ok(template.ok);
    const before = sub.throughputStats.verifications;
    for (let i = 1n; i <= 5n; i++) {
      const forged = forgeTopicEnvelope(real.envelope, template.value.seq + 1000n + i);
      const d = decodeTopicEnvelope(forged);
      assert.ok(d.ok);
      assert.equal(d.value.senderId, 'bench-pub');
      assert.equal(forged.length, real.envelope.length);
      const r = await sub.open('plant/bench', forged, T0);
      assert.equal(r.ok ? 'accepted' : r.reason, 'decrypt-failed');
    }
    assert.equal(sub.throughputStats.verifications, before, 'no signature was checked for a forgery');
    assert.ok((await sub.open('plant/bench', real.envelope, T0)).ok);
  });

  it('npm run bench builds and runs dist/bench/run.js with the Node that runs npm', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.match(pkg.scripts.bench, /npm run build && "\$npm_node_execpath" dist\/bench\/run\.js/);
    assert.ok(existsSync(join(ROOT, 'dist', 'bench', 'run.js')));
    assert.ok(existsSync(join(ROOT, 'dist', 'bench', 'flooder.js')));
  });
  it('the throughput ceiling: plain CPU per message plus the cryptography a secure message needs, over the cores', () => {
    // Plain: 40,000 msg/s using 120 % (Node-RED) + 40 % (broker) → 40 µs CPU per message.
    // Crypto: AES 10 µs + (6 + 254/255) SHA-256 of 1 µs + (5,100 + 1,020 µs) / 255 = 10 + 6.996 + 24 µs.
    const c = throughputCeiling({
      cores: 2, plain: { msgsPerSec: 40_000, cpuPercent: 120, mosquittoCpuPercent: 40 },
      aesMs: 0.010, sha256Ms: 0.001, signMs: 5.1, verifyMs: 1.02, leaves: 255,
    });
    assert.ok(Math.abs(c.plainCpuUs - 40) < 1e-9);
    assert.ok(Math.abs(c.hashesPerMessage - (6 + 254 / 255)) < 1e-12);
    assert.ok(Math.abs(c.cryptoUs - (10 + 6 + 254 / 255 + 24)) < 1e-9);
    assert.ok(Math.abs(c.maxMsgsPerSec - 2e6 / (40 + c.cryptoUs)) < 1e-6);
    assert.ok(Math.abs(c.maxRatio - c.maxMsgsPerSec / 40_000) < 1e-12);
    // More cores or bigger batches raise it; costlier cryptography lowers it.
    const base = { cores: 2, plain: { msgsPerSec: 40_000, cpuPercent: 120, mosquittoCpuPercent: 40 }, aesMs: 0.01, sha256Ms: 0.001, signMs: 5.1, verifyMs: 1.02 };
    assert.ok(throughputCeiling({ ...base, leaves: 16 }).maxRatio < throughputCeiling({ ...base, leaves: 255 }).maxRatio);
    assert.ok(throughputCeiling({ ...base, cores: 4, leaves: 255 }).maxRatio > c.maxRatio);
    assert.ok(throughputCeiling({ ...base, aesMs: 0.02, leaves: 255 }).maxRatio < c.maxRatio);
  });
});

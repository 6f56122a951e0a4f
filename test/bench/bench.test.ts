/**
 * The benchmark's pure parts (bench/): statistics, the SVG chart, the forged envelopes of the
 * flood scenario, and the npm script. The benchmark itself is `npm run bench`, never a test:
 * nothing here measures time.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
});

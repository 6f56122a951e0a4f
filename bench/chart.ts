/**
 * SVG chart of one benchmark run: end-to-end messages per second per scenario (with the ratio to
 * plain MQTT), and p99 latency at 10 messages per second. Hand-written SVG, no dependencies.
 */

export interface ChartInput {
  title: string;
  subtitle: string;
  throughput: ReadonlyArray<{ label: string; value: number; note?: string }>;
  latency: ReadonlyArray<{ label: string; value: number; note?: string }>;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '—';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3);
}

const WIDTH = 860;
const LABEL_W = 250;
const BAR_H = 22;
const GAP = 8;
const COLORS = ['#8c8c8c', '#2f6db5', '#3f8f5a', '#c0792b', '#7a4fa3', '#b5455b', '#3d9a9a'];

function panel(y0: number, heading: string, unit: string, rows: ChartInput['throughput']): { svg: string; height: number } {
  const max = Math.max(1, ...rows.map((r) => (Number.isFinite(r.value) ? r.value : 0)));
  const barMax = WIDTH - LABEL_W - 170;
  const parts = [`<text x="16" y="${y0 + 18}" font-size="15" font-weight="bold">${escapeXml(heading)}</text>`];
  rows.forEach((r, i) => {
    const y = y0 + 32 + i * (BAR_H + GAP);
    const w = Number.isFinite(r.value) ? Math.max(1, (r.value / max) * barMax) : 0;
    parts.push(
      `<text x="${LABEL_W - 8}" y="${y + 15}" font-size="12" text-anchor="end">${escapeXml(r.label)}</text>`,
      `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[i % COLORS.length]}" rx="2"/>`,
      `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + 15}" font-size="12">${escapeXml(`${fmt(r.value)} ${unit}${r.note ? `  ${r.note}` : ''}`)}</text>`,
    );
  });
  return { svg: parts.join('\n'), height: 40 + rows.length * (BAR_H + GAP) };
}

export function renderChart(input: ChartInput): string {
  const top = 58;
  const a = panel(top, 'End-to-end throughput (100-byte payloads, QoS 0, one mosquitto on loopback)', 'msg/s', input.throughput);
  const b = panel(top + a.height + 16, 'p99 latency at 10 messages per second', 'ms', input.latency);
  const height = top + a.height + 16 + b.height + 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="18" font-weight="bold">${escapeXml(input.title)}</text>`,
    `<text x="16" y="46" font-size="12" fill="#555555">${escapeXml(input.subtitle)}</text>`,
    a.svg,
    b.svg,
    '</svg>',
    '',
  ].join('\n');
}

/** The chart of a results file (bench/results/*.json), as `npm run bench` draws it. */
export interface ChartableResult {
  date: string;
  machine: { cores: number; cpu: string };
  runtime: { node: string; backend: string };
  scenarios: ReadonlyArray<{ scenario: string; mode: string; msgsPerSec: number; ratioToPlain?: number }>;
  latency: ReadonlyArray<{ scenario: string; p99Ms: number; addedP99Ms?: number }>;
}

export function chartInputFromResult(r: ChartableResult): ChartInput {
  return {
    title: `pqc-iiot bench — Node ${r.runtime.node}, ${r.runtime.backend}`,
    subtitle: `${r.machine.cores} cores ${r.machine.cpu}, ${r.date.slice(0, 10)}; one run, shared machine: compare ratios`,
    throughput: r.scenarios.map((s) => ({ label: s.scenario, value: s.msgsPerSec, note: s.mode === 'plain' ? '' : `(${s.ratioToPlain}× plain)` })),
    latency: r.latency.map((l) => ({ label: l.scenario, value: l.p99Ms, note: l.addedP99Ms !== undefined && l.scenario !== 'plain' ? `(+${l.addedP99Ms} ms)` : '' })),
  };
}

/**
 * Small statistics for the benchmark (pure, tested in test/bench/bench.test.ts).
 */

/** The p-th percentile (0..100) by nearest rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** Rounds for tables and JSON: 3 significant digits below 100, integers above. */
export function round(n: number): number {
  if (!Number.isFinite(n)) return n;
  if (Math.abs(n) >= 100) return Math.round(n);
  return Number(n.toPrecision(3));
}

/** A markdown table from rows of equal keys. */
export function markdownTable(rows: ReadonlyArray<Record<string, string | number | undefined>>): string {
  if (rows.length === 0) return '';
  const keys = Object.keys(rows[0]);
  const cell = (v: string | number | undefined) => (v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? '—' : String(v));
  return [
    `| ${keys.join(' | ')} |`,
    `|${keys.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${keys.map((k) => cell(r[k])).join(' | ')} |`),
  ].join('\n');
}

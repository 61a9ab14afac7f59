// Benchmark results: one row per figure, printed as a table or as JSON.

export interface Row {
  suite: string;
  /** A stable id for scripts (default: the suite and the name, slugged); parameters go in `params`. */
  id?: string;
  name: string;
  /** What the figure was measured with (sizes, rates, kinds), as fields. */
  params?: Record<string, string | number | boolean>;
  /** The figure: the median of `samples` when there are several. */
  value: number;
  unit: string;
  /** Every run's figure, after warm-up, in `unit`. */
  samples?: number[];
  /** The baseline measured in the same run, when there is one. */
  baseline?: { name: string; value: number };
  /** A goal the figure must meet: value >= min or value <= max (after `ratio` when set). */
  target?: { min?: number; max?: number; of?: "value" | "ratio" };
  note?: string;
}

/** hyperfine's summary of samples. */
export interface Summary {
  n: number;
  mean: number;
  sd: number;
  median: number;
  min: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  const n = samples.length;
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((s, x) => s + x, 0) / n;
  const sd = n > 1 ? Math.sqrt(samples.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0;
  const median = n % 2 ? sorted[n >> 1] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { n, mean, sd, median, min: sorted[0], max: sorted[n - 1] };
}

export const rowId = (r: Row) => r.id ?? `${r.suite}.${r.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;

/** A row as JSON: its id, its parameters, the summary of its samples, and whether it met its target. */
export function rowJson(r: Row): Record<string, unknown> {
  return { id: rowId(r), ...r, stats: r.samples && r.samples.length > 0 ? summarize(r.samples) : undefined, ratio: ratioOf(r), ok: meets(r) };
}

export function ratioOf(row: Row): number | undefined {
  return row.baseline ? row.value / row.baseline.value : undefined;
}

export function meets(row: Row): boolean | undefined {
  if (!row.target) return undefined;
  const x = row.target.of === "ratio" ? ratioOf(row) : row.value;
  if (x === undefined) return undefined;
  return (row.target.min === undefined || x >= row.target.min) && (row.target.max === undefined || x <= row.target.max);
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

export function printTable(rows: Row[]): string {
  const header = ["suite", "measure", "value", "baseline", "ratio", "target", "ok"];
  const lines = rows.map((r) => {
    const ratio = ratioOf(r);
    const t = r.target;
    const target = t ? `${t.of === "ratio" ? "ratio " : ""}${t.min !== undefined ? `≥ ${t.min}` : ""}${t.max !== undefined ? `≤ ${t.max}` : ""}` : "";
    const ok = meets(r);
    const spread = r.samples && r.samples.length > 1 ? summarize(r.samples) : undefined;
    return [
      r.suite,
      r.name,
      `${fmt(r.value)} ${r.unit}${spread ? ` ± ${fmt(spread.sd)} (${fmt(spread.min)}…${fmt(spread.max)}, n=${spread.n})` : ""}`,
      r.baseline ? `${fmt(r.baseline.value)} (${r.baseline.name})` : "",
      ratio !== undefined ? `${fmt(ratio)}×` : "",
      target,
      ok === undefined ? "" : ok ? "yes" : "NO",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const notes = rows.filter((r) => r.note).map((r) => `  ${r.name}: ${r.note}`);
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(line), ...(notes.length ? ["", "notes:", ...notes] : [])].join("\n");
}

/** Timings (ms) of `runs` calls of fn, after `warmup` calls that are not counted. */
export function timings(runs: number, fn: () => void, warmup = 1): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return times;
}

/** The median of `runs` timings (ms) of fn, after one warm-up call. */
export function medianMs(runs: number, fn: () => void): number {
  return summarize(timings(runs, fn)).median;
}

export function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

// Benchmark results: one row per figure, printed as a table or as JSON.

export interface Row {
  suite: string;
  name: string;
  value: number;
  unit: string;
  /** The baseline measured in the same run, when there is one. */
  baseline?: { name: string; value: number };
  /** A goal the figure must meet: value >= min or value <= max (after `ratio` when set). */
  target?: { min?: number; max?: number; of?: "value" | "ratio" };
  note?: string;
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
    return [
      r.suite,
      r.name,
      `${fmt(r.value)} ${r.unit}`,
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

/** Median of `runs` timings (ms) of fn, after one warm-up call. */
export function medianMs(runs: number, fn: () => void): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

export function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

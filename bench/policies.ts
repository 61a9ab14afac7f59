// `npm run bench -- policies`: every policy against every workload, uncapped and at 1 Gbit/s,
// each a real two-process migration of a live kernel (`pagewire migrate --workload --json`),
// several runs each, medians reported. Also churn's three ways of treating freed memory under
// pre-copy (Gad et al. 2016). Writes the chart docs/policies-SIZE.svg and the medians as JSON
// beside it.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { writeFileSync } from "node:fs";
import { POLICIES } from "../src/policy/index.js";
import { KERNELS } from "../src/workload/kernels.js";
import { type Row, progress } from "./report.js";
import { policyChart } from "./chart.js";
import type { Cell, Measured } from "./cells.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const run = promisify(execFile);

export interface PolicyBenchOptions {
  bytes: number;
  runs: number;
  links: Array<{ name: string; bandwidth?: string }>;
  policies: string[];
  /** Write the chart and the medians into docs/, named by the guest size. */
  chart: boolean;
}

export const LINKS = [
  { name: "uncapped", bandwidth: undefined },
  { name: "1 Gbit/s", bandwidth: "1gbit" },
];
export const policyDefaults: PolicyBenchOptions = { bytes: 2 ** 30, runs: 3, links: LINKS, policies: Object.keys(POLICIES), chart: true };
export const policyQuick: PolicyBenchOptions = { bytes: 32 << 20, runs: 1, links: [LINKS[0]], policies: Object.keys(POLICIES), chart: false };

interface MigrateJson {
  source: { transferred: number; "total-time": number; downtime: number; rounds: unknown[] };
  destination: { "postcopy-faults": number; "postcopy-blocked-ms": number };
  workload: { before: number; during?: number; after?: number; lastStepAt: number; firstStepAt?: number };
}

async function migrateOnce(kernel: string, freeMode: string, policy: string, bytes: number, bandwidth?: string): Promise<Measured> {
  const args = [CLI, "migrate", "--workload", kernel, "--free-mode", freeMode, "--policy", policy, "--size", String(bytes), "--json", "--warmup-seconds", "0.5"];
  if (bandwidth) args.push("--bandwidth", bandwidth);
  // A run that hangs must not hold up the rest: ten minutes is many times the slowest one.
  const { stdout } = await run(process.execPath, args, { maxBuffer: 64 << 20, timeout: 600_000, killSignal: "SIGKILL" });
  const m = JSON.parse(stdout) as MigrateJson;
  const w = m.workload;
  return {
    totalMs: m.source["total-time"],
    downtimeMs: m.source.downtime,
    appDowntimeMs: w.firstStepAt ? w.firstStepAt - w.lastStepAt : NaN,
    sentPerMemory: m.source.transferred / bytes,
    rounds: m.source.rounds.length,
    during: w.before > 0 && w.during !== undefined ? w.during / w.before : NaN,
    after: w.before > 0 && w.after !== undefined ? w.after / w.before : NaN,
    faults: m.destination["postcopy-faults"],
    blockedMs: m.destination["postcopy-blocked-ms"],
  };
}

/** 134217728 -> "128m", 2^30 -> "1g": the suffixes --size reads. */
function formatSize(bytes: number): string {
  return bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30}g` : `${Math.round(bytes / 2 ** 20)}m`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function medians(runs: Measured[]): Measured {
  const out = {} as Measured;
  for (const key of Object.keys(runs[0]) as Array<keyof Measured>) out[key] = median(runs.map((r) => r[key]));
  return out;
}

export async function runPolicies(o: PolicyBenchOptions): Promise<Row[]> {
  const cases = [
    ...Object.keys(KERNELS).map((kernel) => ({ workload: kernel, kernel, freeMode: "dirty", policies: o.policies })),
    // Gad et al.: freed memory zeroed or hinted, against left dirty (the churn row above).
    { workload: "churn, freed zeroed", kernel: "churn", freeMode: "zero", policies: o.policies.filter((p) => p === "precopy") },
    { workload: "churn, freed hinted", kernel: "churn", freeMode: "hint", policies: o.policies.filter((p) => p === "precopy") },
  ];
  const cells: Cell[] = [];
  const total = o.links.length * cases.reduce((n, c) => n + c.policies.length, 0) * o.runs;
  let done = 0;
  // Runs interleave (all cells once, then again) so that a noisy minute spreads over every cell.
  const grid = o.links.flatMap((link) => cases.flatMap((c) => c.policies.map((policy) => ({ link, c, policy, runs: [] as Measured[] }))));
  for (let r = 0; r < o.runs; r++) {
    for (const g of grid) {
      progress(`[${++done}/${total}] ${g.policy} on ${g.c.workload}, ${g.link.name}, run ${r + 1}`);
      g.runs.push(await migrateOnce(g.c.kernel, g.c.freeMode, g.policy, o.bytes, g.link.bandwidth));
    }
    cells.length = 0;
    for (const g of grid) cells.push({ link: g.link.name, workload: g.c.workload, policy: g.policy, median: medians(g.runs), runs: g.runs });
    // Written after every pass, so that a long run interrupted still leaves its figures.
    if (o.chart) {
      const path = `docs/policies-${formatSize(o.bytes)}`;
      writeFileSync(`${path}.svg`, policyChart(cells, { bytes: o.bytes, runs: r + 1 }));
      writeFileSync(`${path}.json`, JSON.stringify({ date: new Date().toISOString(), bytes: o.bytes, runs: r + 1, cells }, null, 1) + "\n");
    }
  }
  return cells.flatMap(({ link, workload, policy, median: m, runs }) => {
    const name = (what: string) => `${policy} · ${workload} · ${link}: ${what}`;
    const params = { policy, workload, link, bytes: o.bytes };
    const row = (id: string, what: string, key: keyof Measured, unit: string, note?: string): Row => ({ suite: "policies", id: `policies.${id}`, params, name: name(what), value: m[key], unit, samples: runs.map((r) => r[key]), note });
    const rows: Row[] = [
      row("sent-per-memory", "pages sent / memory", "sentPerMemory", "x", `${m.rounds} rounds`),
      row("total-time", "total time", "totalMs", "ms"),
      row("downtime", "downtime, engine / application", "downtimeMs", "ms", `application saw ${m.appDowntimeMs.toFixed(0)} ms`),
      row("rate-during", "application rate during / after, vs before", "during", "x", `after, on the destination: ${m.after.toFixed(2)}x`),
    ];
    if (m.faults > 0) rows.push(row("postcopy-faults", "post-copy faults", "faults", "", `guest blocked ${m.blockedMs.toFixed(0)} ms`));
    return rows;
  });
}

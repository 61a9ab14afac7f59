// `npm run bench -- workloads`: each kernel on its own (distinct pages dirtied per second, how
// well its memory compresses), then a live pre-copy migration of it with the real command line
// (`pagewire migrate --workload`, destination in its own process).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { IO_HEADROOM } from "../src/memory/layout.js";
import { Workload } from "../src/workload/workload.js";
import { KERNELS } from "../src/workload/kernels.js";
import { type Row, progress } from "./report.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const run = promisify(execFile);

export interface WorkloadBenchOptions {
  bytes: number;
  /** Seconds each kernel runs alone before its dirty rate is measured over one more second. */
  warmupSeconds: number;
}

export const workloadDefaults: WorkloadBenchOptions = { bytes: 2 ** 30, warmupSeconds: 1 };
export const workloadQuick: WorkloadBenchOptions = { bytes: 64 << 20, warmupSeconds: 0.3 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Distinct pages dirtied per second, and the LZ4 ratio of the memory (zero pages included). */
async function alone(kernel: string, o: WorkloadBenchOptions): Promise<{ dirtyPerSecond: number; ratio: number; stepsPerSecond: number }> {
  const region = Region.create({ pageCount: o.bytes / 4096 });
  region.prefault();
  const core = new Core(region);
  const workload = Workload.start(region, kernel);
  await workload.ready;
  await sleep(o.warmupSeconds * 1000);
  core.sync(0); // drops every mark so far
  const start = { at: performance.now(), steps: workload.steps };
  await sleep(1000);
  const { taken: dirty } = core.sync(0);
  const seconds = (performance.now() - start.at) / 1000;
  const stepsPerSecond = (workload.steps - start.steps) / seconds;
  await workload.pause();
  core.setEncoding({ lz4: true });
  const out = region.layout.ioBuffers[0] + IO_HEADROOM;
  let encoded = 0;
  for (let first = 0; first < region.pageCount; first += region.layout.batchPages) {
    const n = Math.min(region.layout.batchPages, region.pageCount - first);
    for (let k = 0; k < n; k++) core.list[k] = first + k;
    encoded += core.encode(n, out);
  }
  await workload.stop();
  return { dirtyPerSecond: dirty / seconds, ratio: (region.pageCount * 4096) / encoded, stepsPerSecond };
}

interface MigrateJson {
  source: { rounds: unknown[]; transferred: number; "total-time": number; downtime: number; "total-pages": number; policy: { "stop-reason": string } };
  workload: { before: number; during?: number; after?: number; lastStepAt: number; firstStepAt?: number };
}

export async function runWorkloads(o: WorkloadBenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const size = `${o.bytes}`;
  for (const kernel of Object.keys(KERNELS)) {
    progress(`${kernel}: alone for ${o.warmupSeconds + 1} s`);
    const a = await alone(kernel, o);
    progress(`${kernel}: live migration (pagewire migrate --workload ${kernel} --size ${size})`);
    const { stdout } = await run(process.execPath, [CLI, "migrate", "--workload", kernel, "--size", size, "--json", "--warmup-seconds", String(o.warmupSeconds)], { maxBuffer: 64 << 20 });
    const m = JSON.parse(stdout) as MigrateJson;
    const w = m.workload;
    const name = (what: string) => `${kernel}: ${what}`;
    const params = { kernel, bytes: o.bytes, policy: "precopy" };
    rows.push(
      { suite: "workloads", id: "workloads.distinct-pages-dirtied-per-second-alone", params, name: name("distinct pages dirtied per second, alone"), value: a.dirtyPerSecond, unit: "pages/s", note: `${a.stepsPerSecond.toFixed(0)} steps/s; at most ${o.bytes / 4096} (every page)` },
      { suite: "workloads", id: "workloads.lz4-ratio-of-its-memory", params, name: name("LZ4 ratio of its memory"), value: a.ratio, unit: "x" },
      { suite: "workloads", id: "workloads.pre-copy-rounds", params, name: name("pre-copy rounds"), value: m.source.rounds.length, unit: "", note: m.source.policy["stop-reason"] },
      { suite: "workloads", id: "workloads.bytes-sent-memory", params, name: name("bytes sent / memory"), value: m.source.transferred / o.bytes, unit: "x" },
      { suite: "workloads", id: "workloads.total-time", params, name: name("total time"), value: m.source["total-time"], unit: "ms" },
      { suite: "workloads", id: "workloads.downtime-engine", params, name: name("downtime, engine"), value: m.source.downtime, unit: "ms" },
      { suite: "workloads", id: "workloads.downtime-as-the-application-saw-it", params, name: name("downtime, as the application saw it"), value: w.firstStepAt ? w.firstStepAt - w.lastStepAt : NaN, unit: "ms" },
      { suite: "workloads", id: "workloads.rate-during-migration-before", params, name: name("rate during migration / before"), value: w.before > 0 && w.during !== undefined ? w.during / w.before : NaN, unit: "x", note: `${w.before.toFixed(0)} → ${w.during?.toFixed(0) ?? "-"} → ${w.after?.toFixed(0) ?? "?"} steps/s (before, during, after on the destination)` },
    );
  }
  return rows;
}

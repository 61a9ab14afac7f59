// Runs a source from command-line options: builds the guest, starts its writers, migrates with
// a live progress line, and prints the result. Shared by `send` and `migrate`.
import { Source } from "../migration/source.js";
import type { MigrationStats } from "../migration/stats.js";
import { policyByName, type PolicyParameters } from "../policy/index.js";
import { parseRate } from "../transport/token-bucket.js";
import { createGuest, startWriters, regionPages, REGION_BYTES } from "./guest.js";
import { Region } from "../memory/region.js";
import type { SourceHooks } from "../migration/source.js";
import { Workload } from "../workload/workload.js";
import { KERNELS, FREE_MODES, kernelByName, type FreeMode } from "../workload/kernels.js";
import { PagewireError } from "../errors.js";
import { parseSize, formatBytes } from "./units.js";
import { ProgressLine, progressText, sourceTable, workloadTable, type WorkloadReport } from "./render.js";

export const sourceOptionSpec = {
  size: { type: "string", default: "1g" },
  "page-size": { type: "string", default: "4096" },
  "dirty-rate": { type: "string", default: "0" },
  channels: { type: "string", default: "1" },
  policy: { type: "string", default: "precopy" },
  "downtime-limit": { type: "string" },
  "max-rounds": { type: "string" },
  param: { type: "string", multiple: true },
  compress: { type: "boolean", default: false },
  delta: { type: "boolean", default: false },
  "delta-cache": { type: "string", default: "64m" },
  bandwidth: { type: "string" },
  secret: { type: "string", default: "" },
  seed: { type: "string", default: "1" },
  json: { type: "boolean", default: false },
  workload: { type: "string" },
  "free-mode": { type: "string", default: "dirty" },
  "warmup-seconds": { type: "string", default: "1" },
} as const;

type Options = Record<string, string | boolean | string[] | undefined>;

/** The policy the options name, with --downtime-limit, --max-rounds and each --param KEY=VALUE. */
export function policyFromOptions(o: Options) {
  const parameters: PolicyParameters = { "downtime-limit": o["downtime-limit"] as string | undefined, "max-rounds": o["max-rounds"] as string | undefined };
  for (const p of (o.param as string[] | undefined) ?? []) {
    const m = /^([a-z-]+)(?:=(.*))?$/.exec(p);
    if (!m) throw new PagewireError("EOPTION", `--param ${p}: write KEY=VALUE, e.g. --param min-shrink=0.2`);
    parameters[m[1]] = m[2] ?? true;
  }
  return policyByName(String(o.policy), parameters);
}

export async function runSource(host: string, port: number, o: Options): Promise<{ stats: MigrationStats; guestBytes: number; workload?: WorkloadReport }> {
  const line = new ProgressLine();
  const quiet = o.json === true;
  const size = parseSize(String(o.size));
  const pageSize = parseSize(String(o["page-size"]));
  const seed = Number(o.seed);
  const prepareStart = performance.now();
  const guest = o.workload
    ? await startWorkloadGuest({ size, pageSize, seed, kernel: String(o.workload), freeMode: String(o["free-mode"]), deltaCacheBytes: o.delta ? parseSize(String(o["delta-cache"])) : 0 })
    : startSyntheticGuest({ size, pageSize, seed, dirtyRate: Number(o["dirty-rate"]), deltaCacheBytes: o.delta ? parseSize(String(o["delta-cache"])) : 0 }, (f) => line.show(`preparing a ${formatBytes(size)} guest of mixed pages: ${(f * 100).toFixed(0)}%`));
  if (!quiet) line.log(`guest: ${formatBytes(size)} in ${guest.regions.length} region(s), prepared in ${((performance.now() - prepareStart) / 1000).toFixed(1)} s; ${guest.describe}`);
  const before = await guest.rate(Number(o["warmup-seconds"]) * 1000, (r) => !quiet && line.show(`${guest.describe}: ${r.toFixed(1)} ${guest.unit}/s before the migration`));
  const policy = policyFromOptions(o);
  // The guest's progress when it paused: its rate during the migration is over the live phase only.
  let pausedAt: ReturnType<RunningGuest["progress"]> | undefined;
  const cancel = new AbortController();
  const abort = () => cancel.abort();
  process.once("SIGINT", abort);
  const source = new Source(guest.regions, {
    signal: cancel.signal,
    host,
    port,
    secret: String(o.secret),
    channels: Number(o.channels),
    policy,
    compress: o.compress === true,
    delta: o.delta === true,
    freePageHints: o["free-mode"] === "hint",
    bandwidth: o.bandwidth ? parseRate(String(o.bandwidth)) : undefined,
    hooks: {
      ...guest.hooks,
      pause: async () => {
        await guest.hooks.pause?.();
        pausedAt = guest.progress();
      },
    },
  });
  let lastSample = guest.progress();
  let guestRate = before;
  source.on("progress", (p) => {
    const now = guest.progress();
    if (now.at - lastSample.at >= 200) {
      guestRate = ((now.steps - lastSample.steps) * 1000) / (now.at - lastSample.at);
      lastSample = now;
    }
    if (!quiet) line.show(`${progressText(p)} · guest ${guestRate.toFixed(1)} ${guest.unit}/s`);
  });
  source.on("round", (r) => !quiet && line.log(`round ${r.round}${r.phase === "live" ? "" : ` (${r.phase})`}: ${r.pages.toLocaleString("en-US")} pages, ${formatBytes(r.bytes)} in ${r.ms.toFixed(0)} ms`));
  const startedAt = guest.progress();
  try {
    const stats = await source.migrate();
    line.done();
    const live = stats["dirty-sync-count"] > 0 && pausedAt !== undefined ? pausedAt : undefined;
    const during = live && ((live.steps - startedAt.steps) * 1000) / Math.max(1, live.at - startedAt.at);
    const workload = guest.workload ? { kernel: String(o.workload), before, during, lastStepAt: guest.workload.lastStepAt, pausedAt: guest.workload.iterations } : undefined;
    return { stats, guestBytes: size, workload };
  } finally {
    process.off("SIGINT", abort);
    await guest.stop();
  }
}

interface RunningGuest {
  regions: Region[];
  describe: string;
  /** What progress counts: steps of a kernel, or pages written. */
  unit: string;
  hooks: SourceHooks;
  workload?: Workload;
  /** Iterations (or pages written) and steps so far, and when. */
  progress(): { iterations: number; steps: number; at: number };
  /** Measures the rate over `ms`, showing it as it goes. */
  rate(ms: number, show: (perSecond: number) => void): Promise<number>;
  stop(): Promise<void>;
}

async function measure(progress: () => { iterations: number; steps: number; at: number }, ms: number, show: (perSecond: number) => void): Promise<number> {
  const start = progress();
  let last = start;
  while (last.at - start.at < ms) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, ms)));
    last = progress();
    show(((last.steps - start.steps) * 1000) / Math.max(1, last.at - start.at));
  }
  return ((last.steps - start.steps) * 1000) / Math.max(1, last.at - start.at);
}

function startSyntheticGuest(o: { size: number; pageSize: number; seed: number; dirtyRate: number; deltaCacheBytes: number }, onProgress: (f: number) => void): RunningGuest {
  const regions = createGuest({ size: o.size, pageSize: o.pageSize, deltaCacheBytes: o.deltaCacheBytes, seed: o.seed }, onProgress);
  const writers = startWriters(regions, o.dirtyRate, o.seed);
  const progress = () => {
    const written = writers.reduce((s, w) => s + w.written, 0);
    return { iterations: written, steps: written, at: performance.now() };
  };
  return {
    regions,
    describe: writers.length ? `writer threads dirty ${o.dirtyRate.toLocaleString("en-US")} pages/s` : "no writers",
    unit: "pages",
    hooks: {
      pause: () => Promise.all(writers.map((w) => w.pause())).then(() => undefined),
      resume: () => writers.forEach((w) => w.resume()),
      deviceState: () => new TextEncoder().encode(JSON.stringify({ writer: "dirty-writer", seed: o.seed, written: writers.map((w) => w.written) })),
    },
    progress,
    rate: (ms, show) => (writers.length ? measure(progress, ms, show) : Promise.resolve(0)),
    stop: () => Promise.all(writers.map((w) => w.stop())).then(() => undefined),
  };
}

async function startWorkloadGuest(o: { size: number; pageSize: number; seed: number; kernel: string; freeMode: string; deltaCacheBytes: number }): Promise<RunningGuest> {
  kernelByName(o.kernel);
  if (!(FREE_MODES as readonly string[]).includes(o.freeMode)) throw new PagewireError("EOPTION", `--free-mode must be one of ${FREE_MODES.join(", ")}`);
  const pages = regionPages(o.size, o.pageSize);
  if (pages.length > 1) throw new PagewireError("EOPTION", `a workload runs in one region: --size at most ${formatBytes(REGION_BYTES)}`);
  const region = Region.create({ pageSize: o.pageSize, pageCount: pages[0], deltaCacheBytes: o.deltaCacheBytes });
  // Map the memory now (as a VM started with -mem-prealloc), so first touches do not depress the rate measured before.
  region.prefault();
  const workload = Workload.start(region, o.kernel, { seed: o.seed, freeMode: o.freeMode as FreeMode });
  await workload.ready;
  const progress = () => ({ iterations: workload.iterations, steps: workload.steps, at: performance.now() });
  return {
    regions: [region],
    workload,
    describe: `workload ${o.kernel}: ${KERNELS[o.kernel].describe}`,
    unit: "steps",
    hooks: { pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState(), throttle: (f) => workload.throttle(f) },
    progress,
    rate: (ms, show) => measure(progress, ms, show),
    stop: () => workload.stop(),
  };
}

export function printSource(result: { stats: MigrationStats; guestBytes: number; workload?: WorkloadReport }): void {
  process.stdout.write(`\nmigration completed\n${sourceTable(result.stats, result.guestBytes)}\n`);
  if (result.workload) process.stdout.write(`\n${workloadTable(result.workload, result.stats)}\n`);
}

// The guest a source command runs while it migrates or checkpoints: synthetic pages with writer
// threads, an HPC kernel, or a guest restored from a checkpoint; and how fast it goes.
import type { SourceHooks } from "../migration/source-options.js";
import { Region } from "../memory/region.js";
import { Workload } from "../workload/workload.js";
import { KERNELS } from "../workload/kernels.js";
import { restore } from "../checkpoint/restore.js";
import type { CheckpointHeader } from "../checkpoint/format.js";
import { createGuest, startWriters, regionPages } from "./guest.js";
import type { SourceSettings } from "./settings.js";

export interface RunningGuest {
  regions: Region[];
  /** Restored from a checkpoint: its last file's header (the base of a layer taken of this guest). */
  checkpoint?: CheckpointHeader;
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

export function startSyntheticGuest(s: SourceSettings, onProgress: (f: number) => void): RunningGuest {
  // Channel threads encode on a lane each.
  const lanes = s.channelThreads ? s.channels : 1;
  const regions = createGuest({ size: s.size, pageSize: s.pageSize, deltaCacheBytes: s.deltaCacheBytes, seed: s.seed, lanes }, onProgress);
  const writers = startWriters(regions, s.dirtyRate, s.seed);
  const progress = () => {
    const written = writers.reduce((sum, w) => sum + w.written, 0);
    return { iterations: written, steps: written, at: performance.now() };
  };
  return {
    regions,
    describe: writers.length ? `writer threads dirty ${s.dirtyRate.toLocaleString("en-US")} pages/s` : "no writers",
    unit: "pages",
    hooks: {
      pause: () => Promise.all(writers.map((w) => w.pause())).then(() => undefined),
      resume: () => writers.forEach((w) => w.resume()),
      deviceState: () => new TextEncoder().encode(JSON.stringify({ writer: "dirty-writer", seed: s.seed, written: writers.map((w) => w.written) })),
    },
    progress,
    rate: (ms, show) => (writers.length ? measure(progress, ms, show) : Promise.resolve(0)),
    stop: () => Promise.all(writers.map((w) => w.stop())).then(() => undefined),
  };
}

export async function startWorkloadGuest(s: SourceSettings): Promise<RunningGuest> {
  const { kernel, freeMode } = s.workload!;
  const region = Region.create({ pageSize: s.pageSize, pageCount: regionPages(s.size, s.pageSize)[0], deltaCacheBytes: s.deltaCacheBytes, lanes: s.channelThreads ? s.channels : 1 });
  // Map the memory now (as a VM started with -mem-prealloc), so first touches do not depress the rate measured before.
  region.prefault();
  const workload = Workload.start(region, kernel, { seed: s.seed, freeMode });
  await workload.ready;
  const progress = () => ({ iterations: workload.iterations, steps: workload.steps, at: performance.now() });
  return {
    regions: [region],
    workload,
    describe: `workload ${kernel}: ${KERNELS[kernel].describe}`,
    unit: "steps",
    hooks: { pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState(), throttle: (f) => workload.throttle(f) },
    progress,
    rate: (ms, show) => measure(progress, ms, show),
    stop: () => workload.stop(),
  };
}

/**
 * A guest restored from a checkpoint chain (the digest checked): a workload continues from its
 * device state, any other guest sits still with its device state kept for the destination.
 */
export async function startCheckpointGuest(paths: string[], dirtyRate = 0, seed = 1): Promise<RunningGuest> {
  const restored = await restore(paths);
  if (Workload.isState(restored.deviceState)) {
    const { workload, header } = Workload.resumeFrom(restored.regions[0], restored.deviceState);
    await workload.ready;
    const progress = () => ({ iterations: workload.iterations, steps: workload.steps, at: performance.now() });
    return {
      regions: restored.regions,
      checkpoint: restored.header,
      workload,
      describe: `workload ${header.kernel} restored from ${paths[paths.length - 1]} at iteration ${header.iterations}`,
      unit: "steps",
      hooks: { pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState(), throttle: (f) => workload.throttle(f) },
      progress,
      rate: (ms, show) => measure(progress, ms, show),
      stop: () => workload.stop(),
    };
  }
  const writers = startWriters(restored.regions, dirtyRate, seed);
  const progress = () => {
    const written = writers.reduce((sum, w) => sum + w.written, 0);
    return { iterations: written, steps: written, at: performance.now() };
  };
  return {
    regions: restored.regions,
    checkpoint: restored.header,
    describe: `restored from ${paths.join(" + ")}${writers.length ? `, writer threads dirty ${dirtyRate.toLocaleString("en-US")} pages/s` : ""}`,
    unit: "pages",
    hooks: {
      pause: () => Promise.all(writers.map((w) => w.pause())).then(() => undefined),
      resume: () => writers.forEach((w) => w.resume()),
      deviceState: () => restored.deviceState,
    },
    progress,
    rate: (ms, show) => (writers.length ? measure(progress, ms, show) : Promise.resolve(0)),
    stop: () => Promise.all(writers.map((w) => w.stop())).then(() => undefined),
  };
}

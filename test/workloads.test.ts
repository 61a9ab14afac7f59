// The proof: each workload, run N iterations without moving, leaves the same memory as the same
// N iterations with a live pre-copy migration in the middle (the workload dirtying memory during
// the rounds), continued on the destination from the transferred state.
import { describe, it, expect, afterAll } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { Source } from "../src/migration/source.js";
import { Listener } from "../src/migration/destination.js";
import { precopy } from "../src/policy/precopy.js";
import { Workload } from "../src/workload/workload.js";
import type { FreeMode } from "../src/workload/kernels.js";

const PAGES = 4096; // 16 MiB guests
const listeners: Listener[] = [];
afterAll(() => Promise.all(listeners.map((l) => l.close())));

async function digestAfter(kernel: string, stopAt: number, freeMode: FreeMode): Promise<bigint> {
  const region = Region.create({ pageCount: PAGES });
  const workload = Workload.start(region, kernel, { stopAt, freeMode, seed: 5 });
  await workload.done;
  return new Core(region).digest();
}

interface Moved {
  kernel: string;
  stopAt: number;
  freeMode?: FreeMode;
  channels?: number;
  compress?: boolean;
  delta?: boolean;
}

async function digestMovedMidway(m: Moved) {
  const freeMode = m.freeMode ?? "dirty";
  let continued!: (w: { workload: Workload; pausedAt: number }) => void;
  const onDestination = new Promise<{ workload: Workload; pausedAt: number }>((resolve) => (continued = resolve));
  const listener = new Listener({
    hooks: {
      resume: (state, regions) => {
        const { workload, header } = Workload.resumeFrom(regions[0], state, { stopAt: m.stopAt });
        continued({ workload, pausedAt: header.iterations });
      },
    },
  });
  listeners.push(listener);
  const port = await listener.listen(0);
  const region = Region.create({ pageCount: PAGES, deltaCacheBytes: m.delta ? 8 << 20 : 0 });
  const source = Workload.start(region, m.kernel, { stopAt: m.stopAt, freeMode, seed: 5 });
  await source.ready;
  while (source.iterations < 2) await new Promise((resolve) => setTimeout(resolve, 2));
  const received = listener.next();
  received.catch(() => undefined);
  const stats = await new Source([region], {
    host: "127.0.0.1",
    port,
    channels: m.channels,
    compress: m.compress,
    delta: m.delta,
    freePageHints: freeMode === "hint",
    policy: precopy({ downtimeLimitMs: 2, maxRounds: 5 }),
    hooks: { pause: () => source.pause(), resume: () => source.resume(), deviceState: () => source.deviceState() },
  }).migrate();
  await source.stop();
  const { regions } = await received;
  const { workload, pausedAt } = await onDestination;
  await workload.done;
  expect(workload.iterations).toBe(m.stopAt);
  return { digest: new Core(regions[0]).digest(), stats, pausedAt };
}

// Iteration counts that keep each kernel busy for about a second on a 16 MiB guest here,
// several times what the migration takes.
const CASES: Array<Moved> = [
  { kernel: "stencil", stopAt: 300 },
  { kernel: "cg", stopAt: 300 },
  { kernel: "fft", stopAt: 16 },
  { kernel: "sort", stopAt: 40 },
  { kernel: "ep", stopAt: 300 },
  { kernel: "churn", stopAt: 6000 },
  { kernel: "churn", stopAt: 6000, freeMode: "zero" },
  { kernel: "churn", stopAt: 6000, freeMode: "hint" },
  { kernel: "stencil", stopAt: 300, channels: 3, compress: true },
  { kernel: "sort", stopAt: 120, channels: 2, compress: true, delta: true },
];

describe("workloads continue bit for bit after a live migration", () => {
  for (const c of CASES) {
    const label = `${c.kernel}${c.freeMode ? ` (freed memory: ${c.freeMode})` : ""}${c.channels ? `, ${c.channels} channels` : ""}${c.compress ? ", lz4" : ""}${c.delta ? ", delta" : ""}`;
    it(label, async () => {
      const unmoved = await digestAfter(c.kernel, c.stopAt, c.freeMode ?? "dirty");
      const moved = await digestMovedMidway(c);
      expect(moved.pausedAt).toBeLessThan(c.stopAt);
      expect(moved.pausedAt).toBeGreaterThan(0);
      expect(moved.digest).toBe(unmoved);
      if (c.freeMode === "hint") expect(moved.stats["free-pages"]).toBeGreaterThan(0);
    });
  }
});

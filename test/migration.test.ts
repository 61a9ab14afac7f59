// Real two-process migrations over loopback: the destination is `pagewire listen` in a child
// process; the source runs here. In every case the destination's memory must equal the source's
// at pause time, checked by SHA-256 on both sides (not the protocol's own digest).
import { describe, it, expect, afterAll } from "vitest";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { precopy } from "../src/policy/precopy.js";
import type { Policy } from "../src/policy/policy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import type { Region } from "../src/memory/region.js";
import { startDestination, guest, sha256, type DestinationProcess } from "./peers.js";

const SECRET = "test-secret";
let destination: DestinationProcess;
const destinationReady = startDestination("--secret", SECRET).then((d) => (destination = d));

afterAll(() => destination?.kill());

interface Run {
  regions: Region[];
  policy?: Policy;
  channels?: number;
  compress?: boolean;
  delta?: boolean;
  bandwidth?: number;
  /** Pages per second dirtied by writer threads during the migration. */
  dirtyRate?: number;
}

/** Migrates, and checks the destination holds exactly what the source held when it paused. */
async function migrate(run: Run) {
  await destinationReady;
  const writers = run.dirtyRate ? run.regions.map((r, i) => new DirtyWriter(r, run.dirtyRate!, 7 + i)) : [];
  // Let the writers get going, so that pages really change during the migration.
  await Promise.all(writers.map((w) => w.until(200)));
  let atPause = "";
  const source = new Source(run.regions, {
    host: "127.0.0.1",
    port: destination.port,
    secret: SECRET,
    channels: run.channels,
    policy: run.policy,
    compress: run.compress,
    delta: run.delta,
    bandwidth: run.bandwidth,
    hooks: {
      pause: async () => {
        await Promise.all(writers.map((w) => w.pause()));
      },
      resume: () => writers.forEach((w) => w.resume()),
      deviceState: () => {
        atPause = sha256(run.regions);
        return new TextEncoder().encode("cpu state");
      },
    },
  });
  const completed = destination.next("completed");
  try {
    const stats = await source.migrate();
    const received = await completed;
    expect(received.sha256).toBe(atPause);
    expect(Buffer.from(received.deviceState as string, "base64").toString()).toBe("cpu state");
    return { stats, received, writers };
  } finally {
    await Promise.all(writers.map((w) => w.stop()));
  }
}

describe("two-process migration over loopback", () => {
  it("moves static memory with pre-copy", async () => {
    const { stats } = await migrate({ regions: [guest(4096)] });
    expect(stats.rounds.length).toBe(2); // the full pass, then an empty paused round
    expect(stats.duplicate).toBeGreaterThan(1000);
    expect(stats.rounds[1].pages).toBe(0);
  });

  it("moves memory dirtied while it runs, re-sending dirty pages round after round", async () => {
    const { stats } = await migrate({ regions: [guest(8192, 2)], dirtyRate: 40_000, policy: precopy({ downtimeLimitMs: 0, maxRounds: 4 }) });
    // Rounds shrink as they speed up; the policy stops at max-rounds, or earlier if a sync finds nothing dirty.
    expect(stats.rounds.length).toBeGreaterThanOrEqual(3);
    expect(stats.rounds[1].pages).toBeGreaterThan(0);
    expect(stats.rounds.at(-1)!.phase).toBe("paused");
  });

  it("spreads pages over several channels, with LZ4 and delta encoding, under writes", async () => {
    const regions = [guest(8192, 3, { deltaCacheBytes: 32 << 20 })];
    const { stats, received } = await migrate({ regions, channels: 4, compress: true, delta: true, dirtyRate: 40_000, policy: precopy({ downtimeLimitMs: 0, maxRounds: 4 }) });
    expect(stats.channels).toBe(4);
    expect((received.stats as { channels: number }).channels).toBe(4);
    expect(stats["lz4-pages"]).toBeGreaterThan(500);
    expect(stats.xbzrle.pages + stats["unchanged-pages"]).toBeGreaterThan(0);
    expect(stats.transferred).toBeLessThan(8192 * 4096);
  });

  it("migrates a region a second time with delta encoding: the new destination holds none of the first one's bases", async () => {
    const regions = [guest(4096, 6, { deltaCacheBytes: 16 << 20 })];
    const policy = () => precopy({ downtimeLimitMs: 0, maxRounds: 3 });
    await migrate({ regions, delta: true, dirtyRate: 20_000, policy: policy() });
    // Were the first migration's cache kept, pages unchanged since would not go, and others would go as deltas against pages this destination never had.
    const { stats } = await migrate({ regions, delta: true, dirtyRate: 20_000, policy: policy() });
    expect(stats["unchanged-pages"]).toBeLessThan(4096);
    expect(stats.xbzrle["cache-miss"]).toBeGreaterThan(1000);
  });

  it("moves a guest of two regions", async () => {
    const { stats } = await migrate({ regions: [guest(2048, 4), guest(3000, 5)], channels: 2, dirtyRate: 10_000 });
    expect(stats["total-pages"]).toBe(5048);
  });

  it("stops and copies: one pass, everything sent while paused", async () => {
    const { stats } = await migrate({ regions: [guest(4096, 6)], policy: stopCopy(), dirtyRate: 20_000 });
    expect(stats.rounds.length).toBe(1);
    expect(stats.rounds[0].phase).toBe("paused");
    expect(stats["precopy-bytes"]).toBe(0);
  });

  it("moves a guest of 64 KiB pages", async () => {
    const { stats } = await migrate({ regions: [guest(256, 9, { pageSize: 65536, batchPages: 64 })], dirtyRate: 2_000, compress: true });
    expect(stats["page-size"]).toBe(65536);
  });

  it("keeps to a bandwidth cap", async () => {
    const regions = [guest(4096, 8)];
    const rate = 40e6; // bytes per second
    const { stats } = await migrate({ regions, bandwidth: rate, policy: stopCopy() });
    const floorMs = ((stats.transferred - (1 << 20)) / rate) * 1000; // the bucket starts with a 1 MiB burst
    expect(stats["total-time"]).toBeGreaterThan(floorMs * 0.9);
    expect(stats.mbps).toBeLessThan((rate * 8) / 1e6 * 1.25);
  });
});

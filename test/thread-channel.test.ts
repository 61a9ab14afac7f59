// Channels on worker threads (SourceOptions.channelThreads): the same migrations as over channels
// on the main thread, into a destination process that cannot tell them apart; a cut connection
// under a thread ends the migration with a clear error and the guest still running here, and a
// reconnection reopens the threads' channels too.
import { describe, it, expect, afterAll, beforeAll } from "vitest";
import { Source } from "../src/migration/source.js";
import { precopy } from "../src/policy/precopy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { Region } from "../src/memory/region.js";
import { postcopy } from "../src/policy/postcopy.js";
import { Workload } from "../src/workload/workload.js";
import { startDestination, guest, sha256, cuttingProxy, continuingDestination, type DestinationProcess } from "./peers.js";

let destination: DestinationProcess;
beforeAll(async () => {
  destination = await startDestination("--secret", "t");
});
afterAll(() => destination?.kill());

describe("channels on worker threads", () => {
  it("migrate a live guest over three channels, two of them on threads, with LZ4 and a capped link", async () => {
    const region = guest(8192, 21);
    const writer = new DirtyWriter(region, 20_000, 3);
    await writer.until(100);
    let atPause = "";
    try {
      const completed = destination.next("completed");
      const stats = await new Source([region], {
        host: "127.0.0.1", port: destination.port, secret: "t", channels: 3, channelThreads: true, compress: true, bandwidth: 200e6, policy: precopy(),
        hooks: { pause: () => writer.pause(), resume: () => writer.resume(), deviceState: () => ((atPause = sha256([region])), new Uint8Array(0)) },
      }).migrate();
      expect(stats.channels).toBe(3);
      expect(stats.rounds.length).toBeGreaterThan(1);
      expect((await completed).sha256).toBe(atPause);
    } finally {
      await writer.stop();
    }
  });

  it("encode on the threads' own lanes when the regions have them: LZ4 on three threads, a live guest, every page counted", async () => {
    const region = guest(8192, 24, { lanes: 3 });
    const writer = new DirtyWriter(region, 20_000, 5);
    await writer.until(100);
    let atPause = "";
    try {
      const completed = destination.next("completed");
      const stats = await new Source([region], {
        host: "127.0.0.1", port: destination.port, secret: "t", channels: 3, channelThreads: true, compress: true, policy: precopy(),
        hooks: { pause: () => writer.pause(), resume: () => writer.resume(), deviceState: () => ((atPause = sha256([region])), new Uint8Array(0)) },
      }).migrate();
      expect((await completed).sha256).toBe(atPause);
      // The first pass encodes every page once, on whichever lane: the counters of all three add up.
      expect(stats.duplicate + stats.normal + stats["lz4-pages"]).toBeGreaterThanOrEqual(8192);
      expect(stats["lz4-pages"]).toBeGreaterThan(1000);
      const sentPages = stats.rounds.reduce((n, r) => n + r.pages, 0);
      expect(sentPages).toBeGreaterThan(4096);
    } finally {
      await writer.stop();
    }
  });

  it("carry a post-copy: the threads push the pages the destination lacks and answer its requests; the workload ends bit for bit", async () => {
    const stopAt = 300;
    const { unmovedDigest, ending, listener, port } = await continuingDestination("stencil", stopAt, 6, "t");
    const region = Region.create({ pageCount: 4096, lanes: 3 });
    const guest = Workload.start(region, "stencil", { stopAt, seed: 6 });
    try {
      await guest.until(2);
      const received = listener.next();
      const stats = await new Source([region], {
        host: "127.0.0.1", port, secret: "t", channels: 3, channelThreads: true, policy: postcopy(), bandwidth: 24e6,
        hooks: { pause: () => guest.pause(), resume: () => guest.resume(), deviceState: () => guest.deviceState() },
      }).migrate();
      expect(stats.status).toBe("completed");
      expect(stats["postcopy-bytes"]).toBeGreaterThan(0);
      expect(await ending(received)).toEqual({ iterations: stopAt, digest: unmovedDigest });
    } finally {
      await guest.stop();
      await listener.close();
    }
  });

  it("end with a clear error when a thread's connection is cut, the guest running here", async () => {
    // Channel 0's handshake and offer pass; the cut comes once pages flow on every channel.
    const proxy = await cuttingProxy(destination.port, 1 << 20);
    const region = guest(4096, 22);
    const writer = new DirtyWriter(region, 20_000, 4);
    await writer.until(100);
    try {
      const failed = destination.next("failed");
      const source = new Source([region], {
        host: "127.0.0.1", port: proxy.port, secret: "t", channels: 2, channelThreads: true, bandwidth: 20e6,
        hooks: { pause: () => writer.pause(), resume: () => writer.resume() },
      });
      await expect(source.migrate()).rejects.toThrow(/connection|closed/);
      await failed;
      await writer.until(writer.written + 1); // it writes on: the guest was resumed
    } finally {
      proxy.server.close();
      await writer.stop();
    }
  });

  it.each([
    ["that write", 1],
    ["that encode", 2],
  ])("reconnect after cuts, with threads %s, and finish with the memory the source paused with", async (_kind, lanes) => {
    const proxy = await cuttingProxy(destination.port, [2 << 20, 5 << 20]);
    const region = guest(4096, 23, { lanes });
    let atPause = "";
    try {
      const completed = destination.next("completed");
      const reconnected: number[] = [];
      const source = new Source([region], {
        host: "127.0.0.1", port: proxy.port, secret: "t", channels: 2, channelThreads: true, bandwidth: 20e6, reconnect: 3, reconnectDelayMs: 20,
        hooks: { deviceState: () => ((atPause = sha256([region])), new Uint8Array(0)) },
      });
      source.on("reconnected", (e) => reconnected.push(e.attempt));
      const stats = await source.migrate();
      expect(reconnected.length).toBe(2);
      expect((await completed).sha256).toBe(atPause);
      // The cuts fall in the first round, all of whose pages go again: after the last reconnection
      // the 4,096 pages are encoded once more. The counters hold more only if a reopened thread's
      // carried on from before the cuts.
      expect(stats.duplicate + stats.normal + stats["lz4-pages"]).toBeGreaterThan(4096);
    } finally {
      proxy.server.close();
    }
  });
});

// Resumption after a broken connection: a proxy cuts the connections at chosen points, several
// times in a row, and the source reconnects and carries on from what the destination holds,
// sending again only the pages of the rounds it had not acknowledged. The digest proves the
// result each time; when it cannot reconnect, the source's guest runs on, intact.
import { describe, it, expect } from "vitest";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { precopy } from "../src/policy/precopy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { Region } from "../src/memory/region.js";
import { fillPage } from "../src/memory/content.js";
import { postcopy } from "../src/policy/postcopy.js";
import { Workload } from "../src/workload/workload.js";
import { continuingDestination, cuttingProxy, guest, sha256, withListener } from "./peers.js";

const SECRET = "resume";

function randomGuest(pageCount: number, options: { deltaCacheBytes?: number } = {}): Region {
  const region = Region.create({ pageCount, ...options });
  for (let p = 0; p < pageCount; p++) fillPage(region.pages(p), "random", p);
  return region;
}

const withResumable = (run: (listener: Listener, port: number) => Promise<void>, idleTimeoutMs = 5000) => withListener({ secret: SECRET, idleTimeoutMs }, run);

describe("resumption after a broken connection", () => {
  it("stop-and-copy cut twice: reconnects, sends again only what was not acknowledged, and completes with the source's memory", async () => {
    await withResumable(async (listener, port) => {
      const region = randomGuest(4096); // 16 MiB
      const proxy = await cuttingProxy(port, [3 << 20, 9 << 20]);
      try {
        const source = new Source([region], { host: "127.0.0.1", port: proxy.port, secret: SECRET, policy: stopCopy(), reconnect: 3, reconnectDelayMs: 20 });
        const reconnected: number[] = [];
        source.on("reconnected", (e) => reconnected.push(e.requeuedPages));
        const received = listener.next();
        const stats = await source.migrate();
        expect(proxy.cuts()).toBe(2);
        expect(reconnected).toHaveLength(2);
        expect(sha256((await received).regions)).toBe(sha256([region]));
        // Stop-and-copy has one round, never acknowledged before it ends: what each cut requeues is what went before it.
        expect(reconnected[0]).toBeGreaterThan(0);
        expect(stats.status).toBe("completed");
      } finally {
        proxy.server.close();
      }
    });
  });

  it("pre-copy with a live writer on two channels, cut three times: the destination holds the memory at the pause", async () => {
    await withResumable(async (listener, port) => {
      const region = guest(8192, 31); // 32 MiB mixed
      const writer = new DirtyWriter(region, 20_000, 7);
      let atPause = "";
      try {
        await writer.until(200);
        const proxy = await cuttingProxy(port, [4 << 20, 20 << 20, 30 << 20]);
        const source = new Source([region], {
          host: "127.0.0.1", port: proxy.port, secret: SECRET, channels: 2, policy: precopy({ downtimeLimitMs: 50, maxRounds: 8 }), bandwidth: 100e6,
          reconnect: 5, reconnectDelayMs: 20,
          hooks: { pause: async () => { await writer.pause(); atPause = sha256([region]); }, resume: () => writer.resume() },
        });
        const received = listener.next();
        const stats = await source.migrate();
        expect(proxy.cuts()).toBe(3);
        expect(stats.status).toBe("completed");
        expect(sha256((await received).regions)).toBe(atPause);
        // Resumed, not restarted: far less than three full copies went over the wire.
        expect(stats.transferred).toBeLessThan(3 * 32 * 2 ** 20);
        proxy.server.close();
      } finally {
        await writer.stop();
      }
    });
  });

  it("with delta and LZ4, cut in the third round or later: requeued pages go whole, the digest agrees", async () => {
    await withResumable(async (listener, port) => {
      const region = guest(4096, 32, { deltaCacheBytes: 16 << 20 });
      const writer = new DirtyWriter(region, 30_000, 9);
      let atPause = "";
      try {
        await writer.until(200);
        const proxy = await cuttingProxy(port, []);
        const source = new Source([region], {
          host: "127.0.0.1", port: proxy.port, secret: SECRET, compress: true, delta: true, policy: precopy({ downtimeLimitMs: 1, maxRounds: 10 }), bandwidth: 20e6,
          reconnect: 2, reconnectDelayMs: 20,
          hooks: { pause: async () => { await writer.pause(); atPause = sha256([region]); }, resume: () => writer.resume() },
        });
        const cutIn: number[] = [];
        source.on("ack", (round) => {
          if (round === 2) proxy.cutNow(); // a later round is under way, with deltas against earlier rounds' pages
        });
        source.on("reconnected", (e) => cutIn.push(e.round));
        const received = listener.next();
        await source.migrate();
        expect(cutIn).toHaveLength(1);
        expect(cutIn[0]).toBeGreaterThanOrEqual(3);
        expect(sha256((await received).regions)).toBe(atPause);
        proxy.server.close();
      } finally {
        await writer.stop();
      }
    });
  });

  it("gives up after its reconnections, says how many, and the guest runs on; the destination drops the migration when the source does not come back", async () => {
    await withResumable(async (listener, port) => {
      const region = guest(4096, 33);
      const writer = new DirtyWriter(region, 10_000, 3);
      try {
        await writer.until(100);
        const proxy = await cuttingProxy(port, 2 << 20); // cuts every connection once 2 MiB went
        const failed = listener.next();
        failed.catch(() => undefined);
        let resumed = 0;
        const source = new Source([region], {
          host: "127.0.0.1", port: proxy.port, secret: SECRET, policy: precopy(), bandwidth: 50e6, reconnect: 2, reconnectDelayMs: 10,
          hooks: { pause: () => writer.pause(), resume: () => (resumed++, writer.resume()) },
        });
        await expect(source.migrate()).rejects.toMatchObject({ reason: expect.stringMatching(/connection|truncated/), message: expect.stringMatching(/after 2 reconnections/) });
        await expect(failed).rejects.toThrow(/did not reconnect within 0.5 s/);
        const before = writer.written;
        await writer.until(before + 10); // still writing here
        proxy.server.close();
      } finally {
        await writer.stop();
      }
    }, 500);
  });

  it("a resuming source is refused when the destination no longer holds its migration", async () => {
    const region = randomGuest(2048);
    const first = new Listener({ secret: SECRET });
    const port = await first.listen(0);
    const proxy = await cuttingProxy(port, [2 << 20]);
    const source = new Source([region], { host: "127.0.0.1", port: proxy.port, secret: SECRET, policy: stopCopy(), reconnect: 1, reconnectDelayMs: 200 });
    const migrating = source.migrate();
    await proxy.cut;
    await first.close(); // the destination restarts and forgets the migration
    const second = new Listener({ secret: SECRET });
    await second.listen(port);
    try {
      await expect(migrating).rejects.toMatchObject({ reason: "unknownMigration", message: expect.stringMatching(/is not held here/) });
    } finally {
      await second.close();
      proxy.server.close();
    }
  });

  it("post-copy cut twice after the switch-over: the guest waits on missing pages, the source reconnects and pushes only those; the workload ends bit for bit", async () => {
    const stopAt = 300;
    const { unmovedDigest, ending, listener, port } = await continuingDestination("stencil", stopAt, 5, SECRET);
    const proxy = await cuttingProxy(port, []);
    const region = Region.create({ pageCount: 4096 });
    const guest = Workload.start(region, "stencil", { stopAt, seed: 5 });
    try {
      await guest.until(2);
      const source = new Source([region], {
        host: "127.0.0.1", port: proxy.port, secret: SECRET, policy: postcopy(), bandwidth: 24e6, reconnect: 3, reconnectDelayMs: 20,
        hooks: { pause: () => guest.pause(), resume: () => guest.resume(), deviceState: () => guest.deviceState() },
      });
      const reconnections: Array<{ round: number; requeuedPages: number }> = [];
      source.on("switchover", () => setTimeout(() => proxy.cutNow(), 150));
      source.on("reconnected", (e) => {
        reconnections.push(e);
        if (reconnections.length === 1) setTimeout(() => proxy.cutNow(), 150);
      });
      const received = listener.next();
      const stats = await source.migrate();
      expect(stats.status).toBe("completed");
      expect(reconnections).toHaveLength(2);
      // What each reconnection pushes is what the destination still lacked: less every time.
      expect(reconnections[1].requeuedPages).toBeLessThan(reconnections[0].requeuedPages);
      expect(await ending(received)).toEqual({ iterations: stopAt, digest: unmovedDigest });
    } finally {
      await guest.stop();
      proxy.server.close();
      await listener.close();
    }
  });
});

// Dirty tracking without a write barrier: a writer that never marks pages dirty (as a program
// compiled by someone else) changes memory during a live migration; with trackByHash the source
// finds the changed pages by comparing each with what it sent, and the digest proves the result.
// Without it the destination's memory differs, and the digest says so.
import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { Source } from "../src/migration/source.js";
import { precopy } from "../src/policy/precopy.js";
import { fillPage } from "../src/memory/content.js";
import { sha256, withListener } from "./peers.js";

/**
 * Writes words at random places every tick, marking nothing; pausable. Its generator (an LCG
 * computed in doubles, so rounded) repeats: words go back to values they had, so pages change and
 * change back, which a hash kept of anything but the bytes sent would miss.
 */
function foreignWriter(region: Region) {
  const words = new Uint32Array(region.memory.buffer, region.layout.guest, (region.pageCount * region.pageSize) / 4);
  let x = 12345;
  let written = 0;
  let paused = false;
  const timer = setInterval(() => {
    if (paused) return;
    for (let i = 0; i < 64; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      words[x % words.length] = x;
      written++;
    }
  }, 1);
  return { pause: () => void (paused = true), resume: () => void (paused = false), stop: () => clearInterval(timer), get written() { return written; } };
}

function guest(): Region {
  const region = Region.create({ pageCount: 4096, hashTracking: true });
  for (let p = 0; p < region.pageCount; p += 2) fillPage(region.pages(p), "text", p);
  return region;
}

describe("dirty tracking by hash", () => {
  it("marks exactly the pages whose content differs from what was sent", () => {
    const region = guest();
    const core = new Core(region);
    core.setEncoding({ rawRuns: true, trackHashes: true });
    const n = Math.min(region.layout.batchPages, 64);
    for (let k = 0; k < n; k++) core.list[k] = k;
    core.encode(n, region.layout.ioBuffers[0] + 64);
    core.clearBitmap(region.layout.dirtyBitmap);
    region.pages(3, 1)[100] ^= 1;
    region.pages(40, 1)[0] ^= 0xff;
    core.trackByHash();
    const dirty = new Uint32Array(region.memory.buffer, region.layout.dirtyBitmap, region.layout.bitmapBytes / 4);
    const marked = [...Array(n).keys()].filter((p) => ((dirty[p >>> 5] >>> (p & 31)) & 1) === 1);
    expect(marked).toEqual([3, 40]);
  });

  it("migrates memory a writer changes without marking anything, live, and the digest agrees", async () => {
    await withListener({}, async (listener, port) => {
      const region = guest();
      const writer = foreignWriter(region);
      let atPause = "";
      try {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const received = listener.next();
        const stats = await new Source([region], {
          host: "127.0.0.1", port, policy: precopy({ downtimeLimitMs: 5, maxRounds: 5 }), bandwidth: 40e6, trackByHash: true,
          hooks: { pause: () => { writer.pause(); atPause = sha256([region]); }, resume: () => writer.resume() },
        }).migrate();
        expect(stats.status).toBe("completed");
        expect(stats.rounds.length).toBeGreaterThan(1);
        expect(sha256((await received).regions)).toBe(atPause);
      } finally {
        writer.stop();
      }
    });
  });

  it("without it, the same writer's changes are missed and a full digest at the pause fails the migration, the source intact", async () => {
    await withListener({}, async (listener, port) => {
      const region = guest();
      const writer = foreignWriter(region);
      try {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const failed = listener.next();
        failed.catch(() => undefined);
        const source = new Source([region], {
          host: "127.0.0.1", port, policy: precopy({ downtimeLimitMs: 5, maxRounds: 5 }), bandwidth: 40e6, fullDigest: true,
          hooks: { pause: () => writer.pause(), resume: () => writer.resume() },
        });
        await expect(source.migrate()).rejects.toMatchObject({ code: "EDIGEST" });
      } finally {
        writer.stop();
      }
    });
  });
});

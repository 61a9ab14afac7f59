import { describe, it, expect } from "vitest";
import { Worker } from "node:worker_threads";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { debugCore, type DebugExports } from "./helpers.js";

const SIZES = [1, 31, 32, 33, 63, 64, 65, 511, 512, 513, 4103, 100_003];
const DENSITIES = [0, 0.0001, 0.01, 0.5, 1];

function setup(pageCount: number) {
  const region = Region.create({ pageCount, batchPages: 1024 });
  return { region, core: new Core(region), wasm: debugCore(region.memory) };
}

/** Fills a bitmap at `address` with random bits of the given density; returns the set pages. */
function randomBits(region: Region, address: number, density: number, seed: number): Set<number> {
  const set = new Set<number>();
  let x = seed | 1;
  for (let i = 0; i < region.pageCount; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    if ((x >>> 0) / 2 ** 32 < density) set.add(i);
  }
  const words = new Uint32Array(region.memory.buffer, address, region.layout.bitmapBytes / 4);
  words.fill(0);
  for (const i of set) words[i >>> 5] |= 1 << (i & 31);
  return set;
}

function bitsOf(region: Region, address: number): Set<number> {
  const words = new Uint32Array(region.memory.buffer, address, region.layout.bitmapBytes / 4);
  const set = new Set<number>();
  for (let i = 0; i < words.length * 32; i++) if (words[i >>> 5] & (1 << (i & 31))) set.add(i);
  return set;
}

/** Scans [from, to) of a bitmap in batches of at most maxOut, resuming where each call stopped. */
function scanAll(core: Core, wasm: DebugExports, address: number, from: number, to: number, maxOut: number, take = false): number[] {
  const pages: number[] = [];
  const { lane } = core;
  let at = from;
  for (let guard = 0; at < to; guard++) {
    const n = wasm.bitmapScan(address, at, to, lane.list, maxOut, lane.results, take ? 1 : 0);
    pages.push(...core.list.subarray(0, n));
    const next = core.scanEnd;
    expect(next).toBeGreaterThan(at - (n === 0 ? 1 : 0));
    at = next;
    if (guard > 1e6) throw new Error("scan does not progress");
  }
  return pages;
}

describe("dirty bitmaps against a plain JS reference", () => {
  it("sync moves every set bit into the sync bitmap, clears the log, drops pages never sent and counts what is owed", () => {
    for (const size of SIZES) {
      for (const density of DENSITIES) {
        for (const keepBelow of [size, 0, 1, 31, 32, 33, Math.floor(size / 2)]) {
          const { region, core } = setup(size);
          const before = randomBits(region, region.layout.syncBitmap, density, size + 1);
          const dirty = randomBits(region, region.layout.dirtyBitmap, density, size + 2);
          const { taken, owed } = core.sync(keepBelow);
          const want = new Set([...before, ...dirty].filter((p) => p < keepBelow));
          const what = `size ${size} density ${density} keepBelow ${keepBelow}`;
          expect(taken, what).toBe(dirty.size);
          expect(bitsOf(region, region.layout.syncBitmap), what).toEqual(want);
          expect(owed, what).toBe(want.size);
          expect(bitsOf(region, region.layout.dirtyBitmap).size).toBe(0);
        }
      }
    }
  });

  it("scan lists set bits in order, for any range and output limit", () => {
    for (const size of SIZES) {
      for (const density of DENSITIES) {
        const { region, core, wasm } = setup(size);
        const set = randomBits(region, region.layout.syncBitmap, density, size * 3 + 1);
        const all = [...set].sort((a, b) => a - b);
        for (const [from, to] of [[0, size], [Math.floor(size / 3), size], [1, Math.max(1, size - 1)], [size >> 1, (size >> 1) + 70]]) {
          const clampedTo = Math.min(to, size);
          const want = all.filter((p) => p >= from && p < clampedTo);
          for (const maxOut of size > 5000 ? [7, 1024] : [1, 7, 1024]) {
            expect(scanAll(core, wasm, region.layout.syncBitmap, from, clampedTo, maxOut), `size ${size} [${from},${clampedTo}) max ${maxOut}`).toEqual(want);
          }
        }
        expect(core.countBitmap(region.layout.syncBitmap)).toBe(set.size);
        // Taking clears exactly what it went past.
        const [from, to] = [Math.floor(size / 3), size];
        expect(scanAll(core, wasm, region.layout.syncBitmap, from, to, 7, true)).toEqual(all.filter((p) => p >= from && p < to));
        expect(bitsOf(region, region.layout.syncBitmap)).toEqual(new Set(all.filter((p) => p < from)));
      }
    }
  });

  it("filter, mark-range, take-range and move agree with set algebra", () => {
    for (const size of [1, 100, 4103, 100_003]) {
      const { region, core } = setup(size);
      const { dirtyBitmap: a, syncBitmap: b, auxBitmap: c, bitmapBytes } = region.layout;
      const setA = randomBits(region, a, 0.3, size + 5);
      const setB = randomBits(region, b, 0.3, size + 6);
      core.moveBitmap(b, c);
      expect(bitsOf(region, c)).toEqual(setB);
      expect(bitsOf(region, b).size).toBe(0);

      const n = Math.min(size, 1024);
      for (let i = 0; i < n; i++) core.list[i] = (i * 7919) % size;
      const listed = [...core.list.subarray(0, n)];
      const kept = core.dropMarked(n, a);
      expect([...core.list.subarray(0, kept)]).toEqual(listed.filter((p) => !setA.has(p)));

      new Uint32Array(region.memory.buffer, c, bitmapBytes / 4).fill(0);
      const ranges = [[0, 1], [size - 1, 1], [Math.floor(size / 2), Math.min(77, size - Math.floor(size / 2))], [3 % size, Math.min(64, size - (3 % size))]];
      const want = new Set<number>();
      for (const [first, count] of ranges) {
        core.markRange(c, first, count);
        for (let p = first; p < first + count; p++) want.add(p);
      }
      expect(bitsOf(region, c)).toEqual(want);
      expect(core.countBitmap(c)).toBe(want.size);
      const [first, count] = ranges[2];
      expect(core.takeRange(c, first, count)).toBe(true);
      expect(core.takeRange(c, first, count)).toBe(count === 0);
      for (let p = first; p < first + count; p++) want.delete(p);
      expect(bitsOf(region, c)).toEqual(want);
      core.markRange(c, first, count);
      for (let p = first; p < first + count; p++) want.add(p);
      new Uint32Array(region.memory.buffer, c, bitmapBytes / 4).fill(0);
      for (const [first, count] of ranges) region.markDirty(first, count);
      expect(bitsOf(region, region.layout.dirtyBitmap)).toEqual(new Set([...setA, ...want]));
    }
  });
});

describe("dirty logging under a concurrent writer", () => {
  it("loses no write: copying every synced page while a worker writes leaves an exact copy", async () => {
    const options = { pageCount: 2048, pageSize: 4096, batchPages: 256 };
    const source = Region.create(options);
    const core = new Core(source);
    const copy = new Uint8Array(source.pageCount * source.pageSize);
    const worker = new Worker(new URL("./fixtures/dirty-writer.mjs", import.meta.url), {
      workerData: { memory: source.memory, options, writes: 400_000, seed: 12345 },
    });
    let done = false;
    const finished = new Promise<void>((resolve, reject) => {
      worker.once("message", () => {
        done = true;
        resolve();
      });
      worker.once("error", reject);
    });
    const copyDirtyPages = () => {
      core.sync(source.pageCount);
      for (let from = 0; from < source.pageCount; ) {
        const n = core.take(source.layout.syncBitmap, from);
        for (let i = 0; i < n; i++) {
          const page = core.list[i];
          copy.set(source.pages(page), page * source.pageSize);
        }
        from = core.scanEnd;
      }
    };
    let rounds = 0;
    while (!done) {
      copyDirtyPages();
      rounds++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await finished;
    copyDirtyPages();
    expect(rounds).toBeGreaterThan(2);
    expect(Buffer.compare(Buffer.from(copy), Buffer.from(source.pages(0, source.pageCount)))).toBe(0);
  });
});

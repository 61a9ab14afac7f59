// Post-copy at the destination with a guest the test plays itself: it faults on a page that is
// missing, exactly as the kernels' need() does (assembly/workloads/common.ts), so the faults,
// requests and the pages accepted are exact.
import { describe, it, expect, afterAll } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { DigestPool } from "../src/core/digest.js";
import { PostcopyDestination } from "../src/migration/postcopy-destination.js";
import { fillPage } from "../src/memory/content.js";

const pool = new DigestPool();
afterAll(() => pool.close());

const PAGES = 256;

/** The guest's side of a fault: publish the pages wanted, count the fault, wait (here: resolve when released). */
function fault(region: Region, first: number, count: number): Promise<void> {
  const words = new Int32Array(region.memory.buffer, region.layout.presence, 8);
  Atomics.store(words, 2, first);
  Atomics.store(words, 3, count);
  Atomics.add(words, 4, 1);
  Atomics.store(words, 1, 1);
  Atomics.notify(words, 1);
  return (async () => {
    while (Atomics.load(words, 1) === 1) await Atomics.waitAsync(words, 1, 1).value;
  })();
}

describe("post-copy destination", () => {
  it("turns a fault into one request, accepts each missing page once, and sums page hashes as the source does", async () => {
    const source = Region.create({ pageCount: PAGES, batchPages: 64 });
    for (let p = 0; p < PAGES; p++) fillPage(source.pages(p), "random", p);
    const sourceCore = new Core(source);
    const destination = Region.create({ pageCount: PAGES, batchPages: 64 });
    const present = [...Array(PAGES).keys()].filter((p) => p < 100 || p >= 110);
    for (const p of present) destination.pages(p).set(source.pages(p));
    const core = new Core(destination);
    const requests: Array<[number, number, number]> = [];
    let requested!: () => void;
    const firstRequest = new Promise<void>((resolve) => (requested = resolve));
    const postcopy = new PostcopyDestination([core], pool, { ms: 0 }, (region, page, count) => {
      requests.push([region, page, count]);
      requested();
    });
    // The switch-over: pages 100..109 are missing.
    const bitmap = new Uint8Array(destination.layout.bitmapBytes);
    for (let p = 100; p < 110; p++) bitmap[p >> 3] |= 1 << (p & 7);
    postcopy.switchover({ region: 0, bitmap });
    expect(postcopy.active).toBe(true);
    let resumed = false;
    await postcopy.startGuest(() => void (resumed = true), () => false);
    expect(resumed).toBe(true);

    const blocked = fault(destination, 104, 3);
    await firstRequest;
    expect(requests).toEqual([[0, 104, 3]]);
    // The source answers with pages 104..106 as records (the decoder takes them out of the expected set).
    sourceCore.list.set([104, 105, 106]);
    const out = source.layout.ioBuffers[0];
    const bytes = sourceCore.encode(3, out);
    const input = destination.layout.ioBuffers[0];
    destination.bytes.set(source.bytes.subarray(out, out + bytes), input);
    const applied = core.decode(input, bytes);
    postcopy.recordsArrived(0, applied);
    await blocked;
    expect(postcopy.faults).toBe(1);
    expect(requests.length).toBe(1);
    // A second copy of a page is refused; the rest come as a run.
    expect(() => core.decode(input, bytes)).toThrow(/not expect/);
    expect(() => postcopy.acceptRun({ region: 0, round: 0, first: 100, count: 5 })).toThrow(/not all expected/);
    for (const [first, count] of [[100, 4], [107, 3]]) {
      postcopy.acceptRun({ region: 0, round: 0, first, count });
      destination.pages(first, count).set(source.pages(first, count));
      postcopy.runArrived({ region: 0, round: 0, first, count });
    }
    postcopy.checkAllArrived();
    expect(postcopy.pageSums()).toEqual([sourceCore.sumRange(0, PAGES)]);
    postcopy.finish();
  });

  it("refuses to finish while an expected page never came", async () => {
    const destination = Region.create({ pageCount: PAGES, batchPages: 64 });
    const postcopy = new PostcopyDestination([new Core(destination)], pool, { ms: 0 }, () => undefined);
    const bitmap = new Uint8Array(destination.layout.bitmapBytes);
    bitmap[3] = 1; // page 24
    postcopy.switchover({ region: 0, bitmap });
    expect(() => postcopy.checkAllArrived()).toThrow(/1 pages of region 0 never sent/);
    expect(() => postcopy.switchover({ region: 0, bitmap })).toThrow(/after the final round/);
  });
});

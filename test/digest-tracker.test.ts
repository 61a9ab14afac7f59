// The digest kept current while the guest runs (src/core/digest-tracker.ts): after any sequence
// of marked writes, syncs, ticks and received records, digests() must equal a digest of all
// memory computed afresh, while hashing at the end only the pages changed since their term.
import { describe, it, expect, afterAll } from "vitest";
import { DigestPool } from "../src/core/digest.js";
import { DigestTracker } from "../src/core/digest-tracker.js";
import { Core } from "../src/core/core.js";
import { Hasher } from "../src/core/hasher.js";
import { Region } from "../src/memory/region.js";
import { Listener } from "../src/migration/listener.js";
import type { Received } from "../src/migration/listener-types.js";
import { Source } from "../src/migration/source.js";
import { precopy } from "../src/policy/precopy.js";
import { guest, sha256 } from "./peers.js";

const pool = new DigestPool();
afterAll(() => pool.close());

/** 8 MiB of mixed 4 KiB pages: 8 chunks of 256 pages. */
const PAGES = 2048;

/** The digest of all of the region's memory, on this thread, into a copy (the region's own chunk hashes stay as the tracker left them). */
function fresh(region: Region): bigint {
  const copy = Region.create(region.options);
  copy.pages(0, region.pageCount).set(region.pages(0, region.pageCount));
  return new Core(copy).digest();
}

/** Writes a byte into page p and marks it, as a guest does. */
function write(region: Region, p: number, value: number): void {
  region.pages(p)[100] = value;
  region.markDirty(p);
}

describe("the digest tracker on a source", () => {
  it("hashes in the background what the syncs leave quiet, and at the end only the pages written since", async () => {
    const region = guest(PAGES, 3);
    const core = new Core(region);
    const tracker = new DigestTracker([region], pool, "now");
    core.sync(PAGES); // starts logging
    tracker.tick(); // every chunk is hashed in the background now
    await tracker.idle();
    write(region, 10, 1); // chunk 0
    write(region, 1500, 2); // chunk 5
    core.sync(PAGES);
    tracker.tick();
    const end = await tracker.digests();
    expect(end.digests).toEqual([fresh(region)]);
    expect(end.chunks).toBe(2);
    expect(end.bytes).toBe(2 * 16384); // the two 16 KiB groups written, not their 1 MiB chunks
    expect(tracker.backgroundChunks).toBe(8);
  });

  it("redoes a chunk written while its hash was out, and one written after its hash without a later tick", async () => {
    const region = guest(PAGES, 4);
    const core = new Core(region);
    const tracker = new DigestTracker([region], pool, "now");
    core.sync(PAGES);
    tracker.tick();
    write(region, 700, 9); // during the background hashes: its chunk (2) must not count as hashed
    core.sync(PAGES);
    tracker.tick();
    await tracker.idle();
    tracker.tick(); // chunk 2 is quiet now and hashed again
    write(region, 2047, 7); // the last chunk, after every tick
    core.sync(PAGES);
    const end = await tracker.digests();
    expect(end.digests).toEqual([fresh(region)]);
    expect(end.chunks).toBe(1);
  });

  it("relies on the marks: a write nobody marked is not seen (what dirty tracking by hash must not use it for)", async () => {
    const region = guest(PAGES, 5);
    const core = new Core(region);
    const tracker = new DigestTracker([region], pool, "now");
    core.sync(PAGES);
    tracker.tick();
    await tracker.idle();
    region.pages(900)[0] ^= 0xff; // unmarked
    core.sync(PAGES);
    expect((await tracker.digests()).digests).not.toEqual([fresh(region)]);
    tracker.written(0, 900, 1); // the mark that was missing
    expect((await tracker.digests()).digests).toEqual([fresh(region)]);
  });

  it("hashes a first pass's chunks as the sender reads them, and with the guest paused whatever it reads", async () => {
    const region = guest(PAGES, 10);
    const core = new Core(region);
    const tracker = new DigestTracker([region], pool, "as-read");
    core.sync(0);
    write(region, 1500, 7); // chunk 5, written before its first pass
    core.sync(0);
    tracker.tick();
    tracker.tick(); // a tick hashes nothing not yet read, written or not
    expect(tracker.backgroundChunks).toBe(0);
    tracker.passed(0, 0, PAGES, { firstPass: false, frozen: false }); // a dirty pass read none of it
    await tracker.idle();
    expect(tracker.backgroundChunks).toBe(0);
    tracker.passed(0, 0, 300, { firstPass: true, frozen: false }); // chunk 0 read whole, chunk 1 in part
    await tracker.idle();
    expect(tracker.backgroundChunks).toBe(1);
    tracker.passed(0, 300, PAGES, { firstPass: true, frozen: false }); // the rest of the first pass, chunk 5 included
    await tracker.idle();
    expect(tracker.backgroundChunks).toBe(8);
    write(region, 600, 1); // chunk 2
    core.sync(PAGES);
    tracker.passed(0, 0, PAGES, { firstPass: false, frozen: false }); // live: a dirty chunk read again is not hashed yet
    await tracker.idle();
    expect(tracker.backgroundChunks).toBe(8);
    tracker.passed(0, 0, PAGES, { firstPass: false, frozen: true }); // paused: it is
    const end = await tracker.digests();
    expect(tracker.backgroundChunks).toBe(9);
    expect(end.chunks).toBe(0);
    expect(end.digests).toEqual([fresh(region)]);
  });

  it("maps pages to chunks at every page size (64 KiB pages: 16 to a chunk, two chunks to a bitmap word)", async () => {
    const region = guest(64, 6, { pageSize: 65536 });
    const core = new Core(region);
    const tracker = new DigestTracker([region], pool, "now");
    core.sync(64);
    tracker.tick();
    await tracker.idle();
    for (const p of [17, 31, 48]) write(region, p, p); // chunks 1 and 3
    core.sync(64);
    const end = await tracker.digests();
    expect(end.digests).toEqual([fresh(region)]);
    expect(end.chunks).toBe(2);
  });
});

describe("the digest tracker on a destination", () => {
  it("marks the chunks the decoder writes; chunks never written are zero, and not hashed", async () => {
    const source = guest(PAGES, 7);
    const destination = Region.create({ pageCount: PAGES });
    const tracker = new DigestTracker([destination], pool, "zeroed");
    const encoder = new Core(source);
    const decoder = new Core(destination);
    encoder.setEncoding({});
    const out = source.layout.ioBuffers[0];
    const input = destination.layout.ioBuffers[0];
    // Chunks 0-5 arrive as records, ticks between; chunks 6 and 7 never do (they stay zero).
    for (let first = 0; first < 1536; first += 256) {
      encoder.list.set(Array.from({ length: 256 }, (_, i) => first + i));
      const n = encoder.encode(256, out);
      destination.bytes.set(source.bytes.subarray(out, out + n), input);
      decoder.decode(input, n);
      tracker.tick();
      tracker.tick();
    }
    await tracker.idle();
    tracker.tick();
    const end = await tracker.digests();
    expect(end.digests).toEqual([fresh(destination)]);
    expect(end.chunks).toBe(0); // the six received were hashed as they went quiet, the two untouched are zero
    expect(tracker.backgroundChunks).toBe(6);
  });
});

describe("zero chunks", () => {
  it("a destination's untouched chunks, a short last one included, hash as zero without being read", async () => {
    for (const pageSize of [4096, 65536]) {
      const region = Region.create({ pageSize, pageCount: pageSize === 4096 ? 300 : 20 }); // a whole chunk and a short one
      const tracker = new DigestTracker([region], pool, "zeroed");
      const end = await tracker.digests();
      expect(end.chunks).toBe(0);
      expect(end.digests).toEqual([fresh(region)]);
    }
  });
});

describe("pages known to be zero", () => {
  const zeroMap = (region: Region) => region.bytes.subarray(region.layout.zeroPages, region.layout.zeroPages + region.pageCount);

  it("are not read by the hash, which still equals the digest of the memory, at every page size that holds a block", () => {
    for (const pageSize of [1024, 4096, 65536]) {
      const pageCount = (2 ** 20 / pageSize) * 2 + 3; // two chunks and a short one
      const region = guest(pageCount, 11, { pageSize });
      const map = zeroMap(region);
      for (let p = 0; p < pageCount; p++) map[p] = region.pages(p).every((b) => b === 0) ? 1 : 0;
      expect(map.reduce((n, b) => n + b, 0), `page size ${pageSize}`).toBeGreaterThan(pageCount / 4);
      const hasher = new Hasher(region);
      const want = fresh(region);
      const { pageStale, digestChunkCount } = region.layout;
      const allStale = () => region.bytes.fill(1, pageStale, pageStale + pageCount);
      allStale();
      const nonZero = pageCount - map.reduce((n, b) => n + b, 0);
      expect(hasher.hashChunks(0, digestChunkCount, "stale", true)).toBe(nonZero);
      expect(hasher.combineChunks(), `page size ${pageSize}`).toBe(want);
      // Unread: a page the map calls zero hashes as zero whatever it holds (but for the last block
      // of a group, which XXH3 always reads: the page is not last in its group, or its group is
      // all zero).
      const groupPages = Math.max(1, 16384 / pageSize);
      const group = (p: number) => map.subarray(p - (p % groupPages), p - (p % groupPages) + groupPages);
      const lie = map.findIndex((zero, p) => p >= 5 && zero === 1 && ((p + 1) % groupPages !== 0 || group(p).every((b) => b === 1)));
      region.pages(lie).fill(0x5a);
      allStale();
      hasher.hashChunks(0, digestChunkCount, "stale", true);
      expect(hasher.combineChunks()).toBe(want);
      expect(hasher.hashChunks(0, digestChunkCount, "all")).toBe(pageCount);
      expect(hasher.combineChunks()).not.toBe(want);
    }
  });

  it("are what the encoder found zero and the decoder wrote from zero records, until a sync takes a write to them", () => {
    const source = guest(512, 12);
    const destination = Region.create({ pageCount: 512 });
    new DigestTracker([source], pool, "as-read");
    new DigestTracker([destination], pool, "zeroed");
    expect(zeroMap(source).every((b) => b === 0) && zeroMap(destination).every((b) => b === 1)).toBe(true);
    const encoder = new Core(source);
    const decoder = new Core(destination);
    encoder.setEncoding({});
    encoder.list.set(Array.from({ length: 256 }, (_, i) => i));
    const out = source.layout.ioBuffers[0];
    const n = encoder.encode(256, out);
    destination.bytes.set(source.bytes.subarray(out, out + n), destination.layout.ioBuffers[0]);
    decoder.decode(destination.layout.ioBuffers[0], n);
    const zero = Array.from({ length: 256 }, (_, p) => (source.pages(p).every((b) => b === 0) ? 1 : 0));
    expect([...zeroMap(source).subarray(0, 256)]).toEqual(zero);
    expect([...zeroMap(destination).subarray(0, 256)]).toEqual(zero);
    const p = zero.indexOf(1);
    encoder.sync(512); // starts logging
    write(source, p, 1);
    encoder.sync(512);
    expect(zeroMap(source)[p]).toBe(0);
  });
});

describe("a migration", () => {
  it("pauses without hashing all memory again, the digest still checked on both sides", async () => {
    const listener = new Listener({ secret: "s" });
    const port = await listener.listen(0);
    try {
      const g = guest(8192, 8); // 32 MiB, static
      const completed = new Promise<Received>((resolve) => listener.once("completed", resolve));
      const acks: number[] = [];
      let ackedAtPause: number[] = [];
      const source = new Source([g], { host: "127.0.0.1", port, secret: "s", policy: precopy(), hooks: { pause: () => void (ackedAtPause = [...acks]) } });
      source.on("ack", (round: number) => acks.push(round));
      const stats = await source.migrate();
      const received = await completed;
      expect(sha256(received.regions)).toBe(sha256([g]));
      expect(stats.rounds.map((r) => r.phase)).toEqual(["live", "paused"]);
      // The source pauses once the destination has applied and hashed the live round, and its own
      // hashes of what it read are done: with nothing written since, neither end hashes at the pause.
      expect(ackedAtPause).toEqual([1]);
      expect(stats["pause-hashed-bytes"]).toBe(0);
      expect(received.stats["verify-hashed-bytes"]).toBe(0);
      // Both ends count what their digest threads spent on the proof: 32 MiB hashed, not nothing.
      expect(stats["digest-thread-time"]).toBeGreaterThan(0);
      expect(received.stats["digest-thread-time"]).toBeGreaterThan(0);
    } finally {
      await listener.close();
    }
  });
});

import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core, DecodeError } from "../src/core/core.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { RecordType } from "../src/abi/abi.js";
import { randomBytes } from "./helpers.js";

const PAGES = 1024;
const options = { pageCount: PAGES, batchPages: 128, deltaCacheBytes: PAGES * 4096 };

function filledRegion(seed: number): Region {
  const region = Region.create(options);
  for (let p = 0; p < PAGES; p++) fillPage(region.pages(p), mixedClass(p, seed), p, seed);
  return region;
}

/** Encodes `pages` of source batch by batch and applies each batch to the destination. */
function transfer(source: Core, destination: Core, pages: number[]): { records: number; bytes: number } {
  const out = source.region.layout.ioBuffers[0];
  const input = destination.region.layout.ioBuffers[0];
  let records = 0;
  let bytes = 0;
  for (let i = 0; i < pages.length; i += source.region.layout.batchPages) {
    const batch = pages.slice(i, i + source.region.layout.batchPages);
    source.list.set(batch);
    const n = source.encode(batch.length, out);
    destination.region.bytes.set(source.region.bytes.subarray(out, out + n), input);
    records += destination.decode(input, n);
    bytes += n;
  }
  return { records, bytes };
}

const all = Array.from({ length: PAGES }, (_, i) => i);

describe("batch encoder and decoder", () => {
  for (const [name, encoding] of [["raw", {}], ["lz4", { lz4: true }], ["delta", { delta: true }], ["lz4+delta", { lz4: true, delta: true }]] as const) {
    it(`moves a mixed region exactly (${name})`, () => {
      const source = new Core(filledRegion(3));
      const destination = new Core(Region.create(options));
      source.setEncoding(encoding);
      const { records, bytes } = transfer(source, destination, all);
      expect(records).toBe(PAGES);
      expect(destination.digest()).toBe(source.digest());
      if ("lz4" in encoding) expect(bytes).toBeLessThan(PAGES * 4096 * 0.45);
    });
  }

  it("sends re-sent pages as deltas, skips unchanged ones, and tracks received pages", () => {
    const source = new Core(filledRegion(4));
    const destination = new Core(Region.create(options));
    source.setEncoding({ lz4: true, delta: true });
    destination.trackReceived(true);
    transfer(source, destination, all);
    // Round 2: nudge a word in every third non-zero page; re-send every page.
    const changed: number[] = [];
    for (let p = 0; p < PAGES; p += 3) {
      const words = new Uint32Array(source.region.memory.buffer, source.region.pageAddress(p), 1024);
      if (words.some((w) => w !== 0)) {
        words[17] ^= 0xff;
        changed.push(p);
      }
    }
    let deltas = 0;
    let unchanged = 0;
    const out = source.region.layout.ioBuffers[0];
    for (let i = 0; i < PAGES; i += 128) {
      source.list.set(all.slice(i, i + 128));
      const n = source.encode(128, out);
      destination.region.bytes.set(source.region.bytes.subarray(out, out + n), destination.region.layout.ioBuffers[0]);
      destination.decode(destination.region.layout.ioBuffers[0], n);
    }
    // The counters add up over every call.
    ({ delta: deltas, unchanged } = source.encodeStats());
    expect(deltas).toBe(changed.length);
    expect(unchanged).toBeGreaterThan(PAGES / 4);
    expect(destination.digest()).toBe(source.digest());
    const { auxBitmap } = destination.region.layout;
    expect(destination.countBitmap(auxBitmap)).toBe(PAGES);
  });

  it("lists raw pages as runs of consecutive pages and can leave zero pages out", () => {
    const source = new Core(filledRegion(6));
    const destination = new Core(Region.create(options));
    source.setEncoding({ lz4: true, rawRuns: true, skipZero: true });
    const out = source.region.layout.ioBuffers[0];
    let rawPages = 0;
    let zeroPages = 0;
    for (let i = 0; i < PAGES; i += 128) {
      source.list.set(all.slice(i, i + 128));
      source.resetEncodeStats();
      const n = source.encode(128, out);
      const stats = source.encodeStats();
      rawPages += stats.raw;
      zeroPages += stats.zero;
      const runs = source.runs();
      let listed = 0;
      for (let r = 0; r < runs.length; r += 2) {
        const [first, count] = [runs[r], runs[r + 1]];
        expect(count).toBeGreaterThanOrEqual(8); // shorter runs are copied as raw records
        destination.region.pages(first, count).set(source.region.pages(first, count));
        listed += count;
      }
      expect(listed).toBeLessThanOrEqual(stats.raw);
      destination.region.bytes.set(source.region.bytes.subarray(out, out + n), destination.region.layout.ioBuffers[0]);
      expect(source.encodedRecords).toBe(128 - listed - stats.zero);
      expect(destination.decode(destination.region.layout.ioBuffers[0], n)).toBe(128 - listed - stats.zero);
    }
    expect(rawPages).toBeGreaterThan(PAGES / 8);
    expect(zeroPages).toBeGreaterThan(PAGES / 4);
    expect(destination.digest()).toBe(source.digest());
  });

  it("never sends a delta against a page that was zeroed in between", () => {
    const source = new Core(Region.create(options));
    const destination = new Core(Region.create(options));
    source.setEncoding({ delta: true });
    const page = source.region.pages(9);
    page.set(randomBytes(4096, 1));
    transfer(source, destination, [9]);
    page.fill(0);
    transfer(source, destination, [9]);
    page.set(randomBytes(4096, 1));
    page[5] ^= 1;
    transfer(source, destination, [9]);
    expect(source.encodeStats()).toMatchObject({ cacheMiss: 2, delta: 0 }); // first send and after the zeroing
    expect(destination.digest()).toBe(source.digest());
  });
});

describe("post-copy decoding", () => {
  it("accepts each expected page exactly once, lists what it applied, and sums page hashes as the source does", () => {
    const source = new Core(filledRegion(9));
    const destination = new Core(Region.create(options));
    const expected = destination.region.layout.syncBitmap;
    destination.markRange(expected, 100, 50);
    destination.expectPages(expected);
    source.setEncoding({ lz4: true });
    const pages = [100, 120, 149, 101];
    const { records } = transfer(source, destination, pages);
    expect(records).toBe(4);
    expect([...destination.list.subarray(0, 4)]).toEqual(pages);
    expect(destination.sumListed(4)).toBe(source.sumListed(4));
    expect(destination.countBitmap(expected)).toBe(46);
    // A second copy of a page, or a page never missing, is refused before anything is written.
    for (const page of [120, 99, 150]) {
      const before = destination.region.pages(page).slice();
      expect(() => transfer(source, destination, [page])).toThrow(/not expect/);
      expect(destination.region.pages(page)).toEqual(before);
    }
    // Raw runs are taken whole or not at all.
    expect(destination.takeRange(expected, 130, 10)).toBe(true);
    expect(destination.takeRange(expected, 125, 10)).toBe(false);
    expect(destination.countBitmap(expected)).toBe(36);
    source.list.set(Array.from({ length: 128 }, (_, i) => i));
    expect(source.sumRange(0, 128)).toBe(source.sumListed(128));
  });
});

describe("page sizes other than 4 KiB", () => {
  for (const pageSize of [512, 16384, 65536]) {
    it(`moves a mixed region of ${pageSize}-byte pages exactly, with LZ4, deltas and raw runs`, () => {
      const pageCount = (4 << 20) / pageSize;
      const opts = { pageSize, pageCount, batchPages: 64, deltaCacheBytes: 2 << 20 };
      const region = Region.create(opts);
      for (let p = 0; p < pageCount; p++) fillPage(region.pages(p), mixedClass(p, 9), p, 9);
      const source = new Core(region);
      const destination = new Core(Region.create(opts));
      const pages = Array.from({ length: pageCount }, (_, i) => i);
      for (const encoding of [{ lz4: true }, { lz4: true, delta: true }] as const) {
        source.setEncoding(encoding);
        transfer(source, destination, pages);
        for (let p = 0; p < pageCount; p += 5) region.pages(p)[pageSize - 1] ^= 0x5a; // changes for the deltas
      }
      source.setEncoding({ rawRuns: true });
      const out = region.layout.ioBuffers[0];
      for (let i = 0; i < pageCount; i += 64) {
        source.list.set(pages.slice(i, i + 64));
        const n = source.encode(Math.min(64, pageCount - i), out);
        const runs = source.runs();
        for (let r = 0; r < runs.length; r += 2) destination.region.pages(runs[r], runs[r + 1]).set(region.pages(runs[r], runs[r + 1]));
        destination.region.bytes.set(region.bytes.subarray(out, out + n), destination.region.layout.ioBuffers[0]);
        destination.decode(destination.region.layout.ioBuffers[0], n);
      }
      expect(destination.digest()).toBe(source.digest());
    });
  }
});

describe("batch decoder on hostile input", () => {
  const destination = new Core(Region.create(options));
  const { region } = destination;
  const input = region.layout.ioBuffers[0];

  function decode(bytes: Uint8Array): unknown {
    region.bytes.set(bytes, input);
    try {
      return destination.decode(input, bytes.length);
    } catch (error) {
      return error;
    }
  }

  function record(page: number, type: number, payload: Uint8Array | number): Uint8Array {
    const length = typeof payload === "number" ? payload : payload.length;
    const out = new Uint8Array(8 + (typeof payload === "number" ? 0 : payload.length));
    const view = new DataView(out.buffer);
    view.setUint32(0, page, true);
    view.setUint32(4, (type << 24) | length, true);
    if (typeof payload !== "number") out.set(payload, 8);
    return out;
  }

  const failsWith = (bytes: Uint8Array, status: number) => {
    const error = decode(bytes);
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).status).toBe(status);
  };

  it("applies at most a batch of records per frame: a frame of zero records cannot make it clear thousands of pages", () => {
    const zeros = (n: number) => {
      const out = new Uint8Array(8 * n);
      for (let i = 0; i < n; i++) out.set(record(i % PAGES, RecordType.zero, 0), 8 * i);
      return out;
    };
    expect(decode(zeros(options.batchPages))).toBe(options.batchPages);
    failsWith(zeros(options.batchPages + 1), -16);
  });

  it("refuses each kind of malformed record with its own code", () => {
    failsWith(new Uint8Array(5), -10);
    failsWith(record(PAGES, RecordType.zero, 0), -11);
    failsWith(record(0, 9, 0), -12);
    failsWith(record(0, RecordType.zero, new Uint8Array(4)), -13);
    failsWith(record(0, RecordType.raw, new Uint8Array(100)), -13);
    failsWith(record(0, RecordType.lz4, 0), -13);
    failsWith(record(0, RecordType.raw, 4096).subarray(0, 8), -14);
    failsWith(record(0, RecordType.lz4, Uint8Array.of(0x10, 0x61)), -24); // decodes to one byte
    failsWith(record(0, RecordType.lz4, Uint8Array.of(0x10, 0x61, 0x05, 0x00, 0x50, 0x76, 0x77, 0x78, 0x79, 0x7a)), -23);
    failsWith(record(0, RecordType.delta, Uint8Array.of(5, 0)), -32);
    const error = decode(new Uint8Array([...record(1, RecordType.zero, 0), ...record(2, 7, 0)])) as DecodeError;
    expect(error.recordOffset).toBe(8);
    expect(error.message).toMatch(/byte 8 .* unknown type/);
  });

  it("writes nothing outside the pages the records name, whatever the payload", () => {
    const pattern = randomBytes(PAGES * 4096, 77);
    const guest = region.pages(0, PAGES);
    const source = new Core(filledRegion(5));
    source.setEncoding({ lz4: true });
    source.list.set([5]);
    const valid = source.region.bytes.slice(source.region.layout.ioBuffers[0], source.region.layout.ioBuffers[0] + source.encode(1, source.region.layout.ioBuffers[0]));
    source.list.set([5, 6]);
    let x = 0x9e3779b9;
    const rand = () => {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      return x >>> 0;
    };
    for (let trial = 0; trial < 400; trial++) {
      guest.set(pattern);
      const bytes = trial % 4 === 0 ? randomBytes(1 + (rand() % 5000), rand()) : valid.slice();
      if (trial % 4 !== 0) {
        for (let m = 1 + (rand() % 6); m > 0; m--) bytes[8 + (rand() % (bytes.length - 8))] = rand() & 0xff;
        new DataView(bytes.buffer).setUint32(0, 5, true);
      }
      decode(bytes);
      const named = new DataView(bytes.buffer).getUint32(0, true);
      for (let p = 0; p < PAGES; p++) {
        if (p === named) continue;
        const at = p * 4096;
        if (Buffer.compare(Buffer.from(guest.subarray(at, at + 4096)), Buffer.from(pattern.subarray(at, at + 4096))) !== 0) {
          throw new Error(`trial ${trial}: page ${p} changed though no record named it`);
        }
      }
    }
  });
});

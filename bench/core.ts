// `npm run bench -- core`: the WASM core against the limits of this machine, baselines in the same run.
import * as lz4wasm from "lz4-wasm-nodejs";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { instantiateCore } from "../src/runtime/module.js";
import { Hasher } from "../src/core/hasher.js";
import { fillPage, mixedClass, PAGE_CLASSES } from "../src/memory/content.js";
import { type Row, medianMs, timings, summarize, progress } from "./report.js";

const PAGE = 4096;
const GIB = 2 ** 30;

export interface CoreBenchOptions {
  /** Bytes of memory for the zero scan (default 1 GiB). */
  scanBytes: number;
  /** Bits in the enumerated bitmap (default 2^28). */
  bitmapBits: number;
  /** Pages per class for LZ4 (default 2048, 8 MiB). */
  lz4Pages: number;
  runs: number;
}

export const coreDefaults: CoreBenchOptions = { scanBytes: GIB, bitmapBits: 2 ** 28, lz4Pages: 2048, runs: 5 };
export const coreQuick: CoreBenchOptions = { scanBytes: 64 << 20, bitmapBits: 2 ** 22, lz4Pages: 128, runs: 3 };

const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;
const mbps = (bytes: number, ms: number) => bytes / ms / 1e3;

function zeroScan(o: CoreBenchOptions): Row[] {
  const pages = o.scanBytes / PAGE;
  progress(`zero scan: allocating and writing ${(o.scanBytes / GIB).toFixed(2)} GiB (untouched memory would map to one kernel page and lie)`);
  const region = Region.create({ pageCount: pages });
  region.prefault();
  const core = new Core(region);
  const { guest } = region.layout;
  let zeros = 0;
  const oursRuns = timings(o.runs, () => (zeros = core.countZeroPages(0, pages)));
  const ours = summarize(oursRuns).median;
  if (zeros !== pages) throw new Error(`zero scan found ${zeros} of ${pages} zero pages`);

  const memory = Buffer.from(region.memory.buffer);
  const zeroPage = Buffer.alloc(PAGE);
  const js = medianMs(o.runs, () => {
    let n = 0;
    for (let off = guest, end = guest + o.scanBytes; off < end; off += PAGE) if (zeroPage.compare(memory, off, off + PAGE) === 0) n++;
    zeros = n;
  });
  const copyTarget = new Uint8Array(o.scanBytes).fill(1);
  const source = region.pages(0, pages);
  const copy = medianMs(o.runs, () => copyTarget.set(source));
  // The same loop on 256 KiB that stays in cache: what it does when memory is not the limit.
  const hot = 64;
  const cached = medianMs(o.runs, () => {
    for (let r = 0; r < 256; r++) if (core.countZeroPages(0, hot) !== hot) throw new Error("zero scan miscounted");
  });
  const note = "all pages zero, so every byte is read";
  // Dirty tracking by hash (no write barrier): one pass hashing every page against what was sent.
  const tracked = Region.create({ pageCount: pages, hashTracking: true });
  tracked.prefault();
  const tracker = new Core(tracked);
  const trackRuns = timings(o.runs, () => void tracker.trackByHash());
  const track = summarize(trackRuns).median;
  return [
    {
      suite: "core", id: "core.hash-tracking-sync", params: { bytes: o.scanBytes, pageSize: PAGE }, name: "dirty sync by hash (XXH64 of every page, compared)", value: track, unit: "ms",
      samples: trackRuns, baseline: { name: "zero scan of the same bytes (a plain read)", value: ours },
      note: `${gbps(o.scanBytes, track).toFixed(1)} GB/s hashed: a round costs this much more CPU per ${(o.scanBytes / GIB).toFixed(2)} GiB, which a policy should count as pause overhead at the final sync`,
    },
    { suite: "core", name: "zero scan, cache-resident 256 KiB", value: gbps(256 * hot * PAGE, cached), unit: "GB/s", note: "the loop's ceiling when memory bandwidth is not the limit" },
    {
      suite: "core", id: "core.zero-scan", params: { bytes: o.scanBytes, pageSize: PAGE }, name: "zero scan, written memory", value: gbps(o.scanBytes, ours), unit: "GB/s",
      samples: oursRuns.map((ms) => gbps(o.scanBytes, ms)), baseline: { name: "JS Buffer.compare", value: gbps(o.scanBytes, js) }, target: { min: 25 }, note,
    },
    { suite: "core", name: "memory copy, same memory (reference)", value: gbps(o.scanBytes, copy), unit: "GB/s" },
    ...digestRate(o, ours),
  ];
}

/**
 * The digest a migration proves (assembly/page-digest.ts), on one thread, against the zero scan's
 * plain read of as many bytes (`readMs`): random pages, every group hashed; then the mixed image
 * with its zero pages known (layout.zeroPages, as the encoder and decoder keep it), left unread.
 */
function digestRate(o: CoreBenchOptions, readMs: number): Row[] {
  const pages = o.scanBytes / PAGE;
  progress(`digest by 16 KiB group: ${(o.scanBytes / GIB).toFixed(2)} GiB of random pages, then of the mixed image with its zero pages known`);
  const random = Region.create({ pageCount: pages });
  for (let p = 0; p < pages; p++) fillPage(random.pages(p), "random", p);
  const randomRuns = timings(o.runs, () => void new Hasher(random).digest());
  const mixed = Region.create({ pageCount: pages });
  const { zeroPages, pageStale } = mixed.layout;
  for (let p = 0; p < pages; p++) {
    const kind = mixedClass(p);
    if (kind !== "zero") fillPage(mixed.pages(p), kind, p);
    mixed.bytes[zeroPages + p] = kind === "zero" ? 1 : 0;
  }
  const hasher = new Hasher(mixed);
  const mixedRuns = timings(o.runs, () => {
    mixed.bytes.fill(1, pageStale, pageStale + pages);
    hasher.hashChunks(0, mixed.layout.digestChunkCount, "stale", true);
  });
  const baseline = { name: "zero scan of as many bytes (one plain read)", value: gbps(o.scanBytes, readMs) };
  return [
    {
      suite: "core", id: "core.digest", params: { bytes: o.scanBytes, pages: "random" }, name: "digest by 16 KiB group, random pages, one thread", value: gbps(o.scanBytes, summarize(randomRuns).median), unit: "GB/s",
      samples: randomRuns.map((ms) => gbps(o.scanBytes, ms)), baseline, note: "XXH3 of every group, its term, the chunk sums: what each end's digest threads spend per byte of non-zero memory",
    },
    {
      suite: "core", id: "core.digest", params: { bytes: o.scanBytes, pages: "mixed", zeroMap: true }, name: "digest by 16 KiB group, mixed image, zero pages unread", value: gbps(o.scanBytes, summarize(mixedRuns).median), unit: "GB/s",
      samples: mixedRuns.map((ms) => gbps(o.scanBytes, ms)), baseline, note: "bytes of the whole region per second; half its pages are zero and go unread",
    },
  ];
}

function jsEnumerate(words: Uint32Array, out: Uint32Array): number {
  let n = 0;
  for (let w = 0; w < words.length; w++) {
    let v = words[w] | 0;
    while (v !== 0) {
      const low = v & -v;
      out[n++] = (w << 5) + 31 - Math.clz32(low);
      v ^= low;
    }
  }
  return n;
}

function bitmapEnumeration(o: CoreBenchOptions): Row[] {
  const bitmapBytes = o.bitmapBits / 8;
  const listBytes = (o.bitmapBits / 2 + o.bitmapBits / 64) * 4;
  const memoryPages = Math.ceil((65536 + bitmapBytes + listBytes) / 65536);
  const memory = new WebAssembly.Memory({ initial: memoryPages, maximum: memoryPages, shared: true });
  // A raw instance: a 2^28-bit bitmap belongs to no region this machine could hold (1 TiB of pages).
  const wasm = instantiateCore(memory);
  const bm = 65536;
  const next = bm - 16;
  const list = bm + bitmapBytes;
  const words = new Uint32Array(memory.buffer, bm, bitmapBytes / 4);
  const jsOut = new Uint32Array(o.bitmapBits / 2 + o.bitmapBits / 64);
  const rows: Row[] = [];
  for (const [density, target] of [[0.0001, 2], [0.01, undefined], [0.5, undefined]] as const) {
    progress(`bitmap enumeration: 2^${Math.log2(o.bitmapBits)} bits at ${density * 100}%`);
    words.fill(0);
    // Reading the all-zero bitmap with the zero scan's SIMD loop: the floor any flat scan can reach.
    const read = medianMs(o.runs, () => wasm.zeroCountRange(bm, 12, 0, bitmapBytes / PAGE));
    let x = 0x12345679;
    const rand = () => {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      return x >>> 0;
    };
    if (density >= 0.5) for (let i = 0; i < words.length; i++) words[i] = rand();
    else for (let k = Math.round(o.bitmapBits * density); k > 0; k--) { const b = rand() % o.bitmapBits; words[b >>> 5] |= 1 << (b & 31); }
    let n = 0;
    const oursRuns = timings(o.runs, () => (n = wasm.bitmapScan(bm, 0, o.bitmapBits, list, o.bitmapBits, next, 0)));
    const ours = summarize(oursRuns).median;
    let m = 0;
    const js = medianMs(o.runs, () => (m = jsEnumerate(words, jsOut)));
    if (n !== m) throw new Error(`enumeration disagrees: ${n} vs ${m} bits`);
    rows.push({
      suite: "core", id: "core.bitmap-enumeration", params: { bits: o.bitmapBits, density }, name: `bitmap enumeration 2^${Math.log2(o.bitmapBits)} bits, ${density * 100}%`, value: ours, unit: "ms", samples: oursRuns,
      baseline: { name: "JS ctz loop", value: js }, target: target !== undefined && o.bitmapBits === 2 ** 28 ? { max: target } : undefined,
      note: `${n} bits set; one SIMD read of the ${bitmapBytes >> 20} MiB bitmap takes ${read.toFixed(2)} ms`,
    });
  }
  return rows;
}

function lz4Codec(o: CoreBenchOptions): Row[] {
  const rows: Row[] = [];
  const n = o.lz4Pages;
  const region = Region.create({ pageCount: n, batchPages: 1, ioBuffers: Math.ceil((n * (PAGE + 32)) / (PAGE + 72)) + 1 });
  region.prefault();
  const core = new Core(region);
  const out = region.layout.ioBuffers[0];
  const cap = PAGE + 32; // enough for any page: both codecs always produce a block here
  const offsets = new Uint32Array(n + 1);
  for (const kind of PAGE_CLASSES) {
    progress(`LZ4 per 4 KiB page: ${kind}`);
    for (let p = 0; p < n; p++) fillPage(region.pages(p), kind, p * 13 + 1);
    const pages = Array.from({ length: n }, (_, p) => region.pages(p).slice());
    let ourBytes = 0;
    const compressRuns = timings(o.runs, () => {
      let at = out;
      for (let p = 0; p < n; p++) {
        const len = core.compressBlock(region.pageAddress(p), PAGE, at, cap);
        offsets[p] = at - out;
        at += len;
      }
      offsets[n] = at - out;
      ourBytes = at - out;
    });
    let theirBytes = 0;
    let theirBlocks: Uint8Array[] = [];
    const theirsCompress = medianMs(o.runs, () => {
      theirBlocks = pages.map((page) => lz4wasm.compress(page));
      theirBytes = theirBlocks.reduce((s, b) => s + b.length - 4, 0);
    });
    const target = region.layout.lanes[0].snapshot;
    const decompressRuns = timings(o.runs, () => {
      for (let p = 0; p < n; p++) {
        const status = core.decompressBlock(out + offsets[p], offsets[p + 1] - offsets[p], target, PAGE);
        if (status !== PAGE) throw new Error(`our decoder returned ${status}`);
      }
    });
    const theirsDecompress = medianMs(o.runs, () => {
      for (const block of theirBlocks) if (lz4wasm.decompress(block).length !== PAGE) throw new Error("lz4-wasm decode failed");
    });
    const bytes = n * PAGE;
    rows.push(
      {
        suite: "core", id: "core.lz4-compress", params: { kind, pages: n, pageSize: PAGE }, name: `lz4 compress, ${kind}`, value: mbps(bytes, summarize(compressRuns).median), unit: "MB/s",
        samples: compressRuns.map((ms) => mbps(bytes, ms)), baseline: { name: "lz4-wasm-nodejs", value: mbps(bytes, theirsCompress) }, target: { min: 1.3, of: "ratio" },
      },
      {
        suite: "core", id: "core.lz4-decompress", params: { kind, pages: n, pageSize: PAGE }, name: `lz4 decompress, ${kind}`, value: mbps(bytes, summarize(decompressRuns).median), unit: "MB/s",
        samples: decompressRuns.map((ms) => mbps(bytes, ms)), baseline: { name: "lz4-wasm-nodejs", value: mbps(bytes, theirsDecompress) }, target: { min: 2, of: "ratio" },
      },
      { suite: "core", id: "core.lz4-ratio", params: { kind, pages: n, pageSize: PAGE }, name: `lz4 ratio, ${kind}`, value: bytes / ourBytes, unit: "x", baseline: { name: "lz4-wasm-nodejs", value: bytes / theirBytes }, target: { min: 0.97, of: "ratio" } },
    );
  }
  // The page codec gives up as soon as a page cannot shrink below one page: random pages cost little.
  for (let p = 0; p < n; p++) fillPage(region.pages(p), "random", p);
  const giveUp = medianMs(o.runs, () => {
    for (let p = 0; p < n; p++) if (core.compressBlock(region.pageAddress(p), PAGE, out, PAGE - 1) !== 0) throw new Error("random page shrank");
  });
  rows.push({ suite: "core", name: "lz4 compress, random, bounded to one page (as the encoder calls it)", value: mbps(n * PAGE, giveUp), unit: "MB/s" });
  return rows;
}

export function runCore(o: CoreBenchOptions): Row[] {
  return [...zeroScan(o), ...bitmapEnumeration(o), ...lz4Codec(o)];
}

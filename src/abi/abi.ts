// The core's binary interface as TypeScript sees it: record types, context offsets, page-size
// limits and error codes, mirroring assembly/records.ts, assembly/lz4/ and assembly/delta.ts.
// test/abi.test.ts checks every constant here against the globals the debug build exports.
// The bottom layer: memory, core and wire all read it; it imports nothing.

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

export const RECORD_HEADER_BYTES = 8;
export const RecordType = { zero: 1, raw: 2, lz4: 3, delta: 4 } as const;
export const RECORD_MAX_LENGTH = 0xffffff;

export const ENCODE_LZ4 = 1;
export const ENCODE_DELTA = 2;
export const ENCODE_RAW_RUNS = 4;
export const ENCODE_SKIP_ZERO = 8;

export const Enc = {
  guest: 0,
  pageShift: 4,
  flags: 8,
  lz4Table: 12,
  cacheTags: 16,
  cacheData: 20,
  cacheSlots: 24,
  snapshot: 28,
  /** ENCODE_STAT_NAMES.length u64 counters, added to by each call until the Core resets them. */
  stats: 32,
  runs: 96,
  runCount: 100,
  freeBitmap: 104,
  /** u32, out: records the last call wrote. */
  records: 108,
  /** u32: where the encoder stores each page's XXH64 as it sends it (dirty tracking by hash), or 0. */
  pageHashes: 112,
  /** u32: a byte per page the encoder sets to 1 for a page it finds zero, 0 for one it does not (layout.zeroPages), or 0. */
  zeroMap: 116,
  bytes: 128,
} as const;

/** Encoder counters, u64 each from Enc.stats, in this order; `free` counts hinted-free pages among the zero ones. */
export const ENCODE_STAT_NAMES = ["zero", "raw", "lz4", "delta", "unchanged", "cacheMiss", "overflow", "free"] as const;
export type EncodeStats = Record<(typeof ENCODE_STAT_NAMES)[number], number>;

/** The encoder's counters of several lanes, added up. */
export function addEncodeStats(all: EncodeStats[]): EncodeStats {
  const sum = Object.fromEntries(ENCODE_STAT_NAMES.map((name) => [name, 0])) as EncodeStats;
  for (const s of all) for (const name of ENCODE_STAT_NAMES) sum[name] += s[name];
  return sum;
}

export const Dec = {
  guest: 0,
  pageShift: 4,
  pageCount: 8,
  received: 12,
  errorOffset: 16,
  expected: 20,
  list: 24,
  listCapacity: 28,
  stale: 32,
  chunkShift: 36,
  /** u32: a byte per page the decoder sets to 1 for a zero record, 0 for any other (layout.zeroPages), or 0. */
  zeroMap: 40,
  /** u32: a byte per page the decoder sets to 1 for every page a record writes (layout.pageStale), or 0. */
  pageStale: 44,
  bytes: 48,
} as const;

/** Scratch the LZ4 compressor needs per thread (assembly/lz4/compress.ts LZ4_TABLE_BYTES). */
export const LZ4_TABLE_BYTES = 4 + 4 * 4096;

export const LZ4_ERRORS: Record<number, string> = {
  [-1]: "LZ4 block truncated: it ends inside a sequence, or too early for the next",
  [-2]: "LZ4 block decodes to more bytes than the target holds, or breaks the end-of-block rules (the last 5 bytes are literals; no sequence but the last ends within 12 bytes of the end)",
  [-3]: "LZ4 match offset is zero or points before the start of the output",
};

export const DELTA_ERRORS: Record<number, string> = {
  [-1]: "delta truncated: it ends inside a run",
  [-2]: "delta has an empty changed run or an over-long run length",
  [-3]: "delta run extends past the end of the page",
};

export const BATCH_ERRORS: Record<number, string> = {
  [-10]: "record header truncated",
  [-11]: "record names a page outside the region",
  [-12]: "record has an unknown type",
  [-13]: "record length does not fit its type",
  [-14]: "record payload runs past the end of the batch",
  [-15]: "record names a page that post-copy does not expect (never asked for, or sent twice)",
  [-16]: "more records than one batch holds (a batch's worth per frame at most)",
  [-21]: LZ4_ERRORS[-1],
  [-22]: LZ4_ERRORS[-2],
  [-23]: LZ4_ERRORS[-3],
  [-24]: "LZ4 record does not decode to exactly one page",
  [-31]: DELTA_ERRORS[-1],
  [-32]: DELTA_ERRORS[-2],
  [-33]: DELTA_ERRORS[-3],
};

/** The functions the release core exports (assembly/index.ts); pointers are byte addresses. */
export interface CoreExports {
  bitmapSync(live: number, into: number, words: number, keepBelow: number, owedOut: number, stale: number, chunkShift: number, zeroMap: number, pageStale: number): number;
  bitmapMarkChunks(bm: number, words: number, stale: number, chunkShift: number, pageStale: number): void;
  bitmapScan(bm: number, fromBit: number, toBit: number, out: number, maxOut: number, nextOut: number, take: number): number;
  bitmapCount(bm: number, bytes: number): number;
  bitmapFilter(list: number, n: number, bm: number, keepSet: number): number;
  bitmapMarkRange(bm: number, first: number, count: number): void;
  bitmapTakeRange(bm: number, first: number, count: number): number;
  bitmapMarkList(bm: number, list: number, n: number): void;
  bitmapClear(bm: number, bytes: number): void;
  zeroCountRange(base: number, pageShift: number, first: number, count: number): number;
  zeroFreePages(base: number, pageShift: number, free: number, pageCount: number): number;
  xxh64(p: number, len: number, seed: bigint): bigint;
  hashBytes(p: number, len: number, secret: number): bigint;
  digestChunks(
    guest: number, pageShift: number, pageCount: number, chunkShift: number, first: number, end: number,
    secret: number, zeroHash: bigint, zeroHashLast: bigint, terms: number, sums: number, stale: number, zeroMap: number,
  ): number;
  sumU64(p: number, n: number): bigint;
  pageHashSum(base: number, pageShift: number, list: number, n: number): bigint;
  pageHashSumRange(base: number, pageShift: number, first: number, count: number, skip: number): bigint;
  pageHashTrack(base: number, pageShift: number, first: number, count: number, hashes: number, dirty: number): number;
  lz4Compress(src: number, srcLen: number, dst: number, dstCap: number, table: number): number;
  lz4Decompress(src: number, srcLen: number, dst: number, dstCap: number): number;
  encodeBatch(ctx: number, list: number, n: number, out: number): number;
  decodeBatch(ctx: number, input: number, length: number): number;
}

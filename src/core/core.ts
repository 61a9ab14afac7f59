// One thread's handle on the WASM core for a region: an instance on the region's memory plus
// the lane of scratch it owns. The only door into WASM for the layers above: each operation is
// named for what it does, and crosses into WASM once for a whole batch.
import {
  type CoreExports, type EncodeStats, ENCODE_STAT_NAMES, Enc, Dec, ENCODE_LZ4, ENCODE_DELTA, ENCODE_RAW_RUNS,
  ENCODE_SKIP_ZERO, BATCH_ERRORS,
} from "../abi/abi.js";
import { instantiateCore } from "../runtime/module.js";
import type { Region } from "../memory/region.js";
import type { LaneLayout } from "../memory/layout.js";
import { PagewireError } from "../errors.js";
import { Hasher } from "./hasher.js";

export interface EncodingOptions {
  /** LZ4-compress pages that shrink. */
  lz4?: boolean;
  /** Send pages re-sent from the delta cache as XBZRLE deltas (needs deltaCacheBytes in the layout). */
  delta?: boolean;
  /** List raw pages as runs (see runs()) instead of copying them: the sender sends them from guest memory. */
  rawRuns?: boolean;
  /** Count zero pages but write no record for them (a first pass to a zeroed destination). */
  skipZero?: boolean;
  /** Send the pages set in the region's free bitmap (free-page hints) as zero, without reading them. */
  freePageHints?: boolean;
  /** Store each page's hash as it is encoded, for trackByHash() (needs hashTracking in the layout). */
  trackHashes?: boolean;
}

/** What one dirty sync found: bits taken from the log, and pages owed again in the sync bitmap. */
export interface SyncResult {
  taken: number;
  owed: number;
}

/** A batch the destination refused: which record, and why. */
export class DecodeError extends PagewireError {
  constructor(
    readonly status: number,
    readonly recordOffset: number,
  ) {
    super("EDECODE", `bad page record at byte ${recordOffset} of the batch: ${BATCH_ERRORS[status] ?? `error ${status}`}`);
  }
}

/** One thread's handle on a lane: create one Core per lane and thread, never two on the same lane. */
export class Core {
  private readonly wasm: CoreExports;
  private readonly hasher: Hasher;
  readonly lane: LaneLayout;
  /** The lane's page list: fill it, then encode/hash its first n entries. */
  readonly list: Uint32Array;
  private readonly words: Uint32Array;
  /** Index in `words` of the lane's result word (a scan's resume point, a sync's owed count). */
  private readonly result: number;

  /**
   * With `keepEncodeStats`, the lane's encoder counters carry on from what they hold (a channel's
   * thread reopened after a broken connection, within the same migration); otherwise they start at 0.
   */
  constructor(
    readonly region: Region,
    laneIndex = 0,
    options: { keepEncodeStats?: boolean } = {},
  ) {
    const lane = region.layout.lanes[laneIndex];
    if (!lane) throw new PagewireError("ELAYOUT", `lane ${laneIndex} does not exist: the region was laid out with ${region.layout.lanes.length}`);
    this.lane = lane;
    this.wasm = instantiateCore(region.memory);
    this.hasher = new Hasher(region);
    this.words = new Uint32Array(region.memory.buffer);
    this.list = new Uint32Array(region.memory.buffer, lane.list, region.layout.batchPages);
    this.result = lane.results / 4;
    const { layout } = region;
    const enc = lane.encodeContext / 4;
    this.words[enc + Enc.guest / 4] = layout.guest;
    this.words[enc + Enc.pageShift / 4] = layout.pageShift;
    this.words[enc + Enc.lz4Table / 4] = lane.lz4Table;
    this.words[enc + Enc.cacheTags / 4] = layout.cacheTags;
    this.words[enc + Enc.cacheData / 4] = layout.cacheData;
    this.words[enc + Enc.cacheSlots / 4] = layout.cacheSlots;
    this.words[enc + Enc.snapshot / 4] = lane.snapshot;
    this.words[enc + Enc.runs / 4] = lane.runs;
    this.words[enc + Enc.zeroMap / 4] = layout.zeroPages;
    const dec = lane.decodeContext / 4;
    this.words[dec + Dec.guest / 4] = layout.guest;
    this.words[dec + Dec.pageShift / 4] = layout.pageShift;
    this.words[dec + Dec.pageCount / 4] = layout.pageCount;
    // A batch's worth of records per decode, whatever the frame holds.
    this.words[dec + Dec.listCapacity / 4] = layout.batchPages;
    // Every page a record writes makes its digest chunk stale (src/core/digest-tracker.ts).
    this.words[dec + Dec.stale / 4] = layout.digestStale;
    this.words[dec + Dec.chunkShift / 4] = layout.digestChunkShift;
    this.words[dec + Dec.zeroMap / 4] = layout.zeroPages;
    this.words[dec + Dec.pageStale / 4] = layout.pageStale;
    this.setEncoding({});
    if (!options.keepEncodeStats) this.resetEncodeStats();
  }

  // Encoding.

  /** The options of the last setEncoding (skipZero aside, which each batch sets). */
  encoding: EncodingOptions = {};

  setEncoding(options: EncodingOptions): void {
    this.encoding = options;
    if (options.delta && this.region.layout.cacheSlots === 0) {
      throw new PagewireError("EOPTION", "delta encoding needs a delta cache: lay the region out with deltaCacheBytes > 0");
    }
    this.words[this.lane.encodeContext / 4 + Enc.freeBitmap / 4] = options.freePageHints ? this.region.layout.freeBitmap : 0;
    if (options.trackHashes && this.region.layout.pageHashes === 0) throw new PagewireError("EOPTION", "dirty tracking by hash needs room for the hashes: lay the region out with hashTracking: true");
    this.words[this.lane.encodeContext / 4 + Enc.pageHashes / 4] = options.trackHashes ? this.region.layout.pageHashes : 0;
    this.words[this.lane.encodeContext / 4 + Enc.flags / 4] =
      (options.lz4 ? ENCODE_LZ4 : 0) | (options.delta ? ENCODE_DELTA : 0) | (options.rawRuns ? ENCODE_RAW_RUNS : 0) | (options.skipZero ? ENCODE_SKIP_ZERO : 0);
  }

  /** Turns ENCODE_SKIP_ZERO on or off, leaving the other encoding options as they are. */
  skipZero(on: boolean): void {
    const at = this.lane.encodeContext / 4 + Enc.flags / 4;
    this.words[at] = on ? this.words[at] | ENCODE_SKIP_ZERO : this.words[at] & ~ENCODE_SKIP_ZERO;
  }

  /** Encodes the first n pages of the list as records at `out`; returns the bytes written. */
  encode(n: number, out: number): number {
    return this.wasm.encodeBatch(this.lane.encodeContext, this.lane.list, n, out);
  }

  /** Records the last encode wrote (pages in runs() have none). */
  get encodedRecords(): number {
    return this.words[(this.lane.encodeContext + Enc.records) / 4];
  }

  /** Runs of raw pages the last encode listed (rawRuns): [first, count] pairs, a view valid until the next call. */
  runs(): Uint32Array {
    const count = this.words[this.lane.encodeContext / 4 + Enc.runCount / 4];
    return new Uint32Array(this.region.memory.buffer, this.lane.runs, count * 2);
  }

  /** The encoder's counters, added up over every encode since the last reset. */
  encodeStats(): EncodeStats {
    return Core.encodeStatsOf(this.region, this.lane);
  }

  /** The counters of another thread's lane (a channel thread's), read without a Core on it. */
  static encodeStatsOf(region: Region, lane: LaneLayout): EncodeStats {
    const counters = new BigUint64Array(region.memory.buffer, lane.encodeContext + Enc.stats, ENCODE_STAT_NAMES.length);
    const stats = {} as EncodeStats;
    ENCODE_STAT_NAMES.forEach((name, i) => (stats[name] = Number(counters[i])));
    return stats;
  }

  resetEncodeStats(): void {
    new BigUint64Array(this.region.memory.buffer, this.lane.encodeContext + Enc.stats, ENCODE_STAT_NAMES.length).fill(0n);
  }

  // Decoding.

  /** Applies a batch of records from `input`; returns the number applied or throws DecodeError. */
  decode(input: number, length: number): number {
    const status = this.wasm.decodeBatch(this.lane.decodeContext, input, length);
    if (status < 0) throw new DecodeError(status, this.words[this.lane.decodeContext / 4 + Dec.errorOffset / 4]);
    return status;
  }

  /** Makes the decoder set a page's bit in the aux bitmap when it applies a record (or stop, with false). */
  trackReceived(on: boolean): void {
    this.words[this.lane.decodeContext / 4 + Dec.received / 4] = on ? this.region.layout.auxBitmap : 0;
  }

  /**
   * Post-copy: the decoder accepts only pages set in bitmap `bm`, clears each as it applies it,
   * and lists the pages applied in the lane's list (see sumListed). 0 turns this off.
   */
  expectPages(bm: number): void {
    const dec = this.lane.decodeContext / 4;
    this.words[dec + Dec.expected / 4] = bm;
    this.words[dec + Dec.list / 4] = bm ? this.lane.list : 0;
  }

  // Dirty logging and bitmaps.

  /**
   * One dirty sync: moves the dirty log into the sync bitmap (swap-and-clear), drops the pages at
   * or past `keepBelow` (never sent yet), and counts the pages the sync bitmap then holds. The
   * digest chunk of every page taken is marked stale, and the page no longer known to be zero.
   */
  sync(keepBelow: number): SyncResult {
    const { dirtyBitmap, syncBitmap, bitmapBytes, digestStale, digestChunkShift, zeroPages, pageStale } = this.region.layout;
    const taken = this.wasm.bitmapSync(dirtyBitmap, syncBitmap, bitmapBytes / 4, keepBelow, this.lane.results, digestStale, digestChunkShift, zeroPages, pageStale);
    return { taken, owed: this.words[this.result] };
  }

  /**
   * Writes the set pages of bitmap `bm` in [from, to) into the lane's list, at most a batch;
   * returns how many. `scanEnd` then says where to resume (`to` when the range is exhausted).
   */
  scan(bm: number, from: number, to = this.region.layout.pageCount): number {
    return this.wasm.bitmapScan(bm, from, to, this.lane.list, this.region.layout.batchPages, this.lane.results, 0);
  }

  /** As scan(), and clears the bits it went past, so [from, scanEnd) is empty afterwards. */
  take(bm: number, from: number, to = this.region.layout.pageCount): number {
    return this.wasm.bitmapScan(bm, from, to, this.lane.list, this.region.layout.batchPages, this.lane.results, 1);
  }

  /** Where the last scan() or take() stopped. */
  get scanEnd(): number {
    return this.words[this.result];
  }

  /** Removes from the first n pages of the list those set in bitmap `bm`; returns how many are left. */
  dropMarked(n: number, bm: number): number {
    return this.wasm.bitmapFilter(this.lane.list, n, bm, 0);
  }

  /** Sets in bitmap `bm` the bits of the first n pages of the list. */
  markListed(n: number, bm: number): void {
    this.wasm.bitmapMarkList(bm, this.lane.list, n);
  }

  /** Sets the bits of pages [first, first + count) in bitmap `bm` (atomically). */
  markRange(bm: number, first: number, count: number): void {
    this.wasm.bitmapMarkRange(bm, first, count);
  }

  /** If every page of [first, first + count) is set in `bm`, clears them and returns true; else changes nothing. */
  takeRange(bm: number, first: number, count: number): boolean {
    return this.wasm.bitmapTakeRange(bm, first, count) !== 0;
  }

  /** Marks stale the digest chunk of every page set in bitmap `bm` (which this only reads). */
  markChunksStale(bm: number): void {
    const { bitmapBytes, digestStale, digestChunkShift, pageStale } = this.region.layout;
    this.wasm.bitmapMarkChunks(bm, bitmapBytes / 4, digestStale, digestChunkShift, pageStale);
  }

  /** Pages set in bitmap `bm`. */
  countBitmap(bm: number): number {
    return this.wasm.bitmapCount(bm, this.region.layout.bitmapBytes);
  }

  /** Clears a bitmap of the region that only this thread writes (sync or aux). */
  clearBitmap(bm: number): void {
    this.wasm.bitmapClear(bm, this.region.layout.bitmapBytes);
  }

  /**
   * Dirty tracking without a write barrier: marks dirty every page whose content differs from
   * what the encoder last sent of it (encoding with trackHashes stores each page's hash as it
   * sends it). One pass over the region in WASM; returns the pages marked. Pages never sent are
   * marked too (their stored hash is 0), which a sync leaves to the never-sent cursor.
   */
  trackByHash(): number {
    const { guest, pageShift, pageCount, pageHashes, dirtyBitmap } = this.region.layout;
    if (pageHashes === 0) throw new PagewireError("EOPTION", "dirty tracking by hash needs room for the hashes: lay the region out with hashTracking: true");
    return this.wasm.pageHashTrack(guest, pageShift, 0, pageCount, pageHashes, dirtyBitmap);
  }

  /** Sets in bitmap `into` every bit set in `from` (atomically: `into` may be the guest's dirty log). */
  addBitmap(from: number, into: number): void {
    const words = this.region.layout.bitmapBytes / 4;
    const src = new Uint32Array(this.region.memory.buffer, from, words);
    const dst = new Int32Array(this.region.memory.buffer, into, words);
    for (let i = 0; i < words; i++) if (src[i] !== 0) Atomics.or(dst, i, src[i]);
  }

  /** Forgets every page of the delta cache: the next copy of each goes whole (its base at the destination is unknown). */
  forgetDeltaBases(): void {
    const { cacheTags, cacheSlots } = this.region.layout;
    this.region.bytes.fill(0, cacheTags, cacheTags + cacheSlots * 4);
  }

  /** Copies bitmap `from` into `to`, then clears `from`. */
  moveBitmap(from: number, to: number): void {
    const { bitmapBytes } = this.region.layout;
    this.region.bytes.copyWithin(to, from, from + bitmapBytes);
    this.clearBitmap(from);
  }

  // Guest memory.

  /** Zero pages among pages [first, first + count). */
  countZeroPages(first = 0, count = this.region.pageCount - first): number {
    const { guest, pageShift } = this.region.layout;
    return this.wasm.zeroCountRange(guest, pageShift, first, count);
  }

  /** Makes the whole guest zero, writing only when some page is not (a write is a first touch). */
  zeroGuest(): void {
    const { guest, pageCount, pageSize } = this.region.layout;
    // bitmapClear is a memory.fill, several times faster than TypedArray.fill on shared memory.
    if (this.countZeroPages() !== pageCount) this.wasm.bitmapClear(guest, pageCount * pageSize);
  }

  /** Zeroes the guest pages reported free that are not zero (call with the guest paused); returns how many. */
  zeroFreePages(): number {
    const { guest, pageShift, freeBitmap, pageCount } = this.region.layout;
    return this.wasm.zeroFreePages(guest, pageShift, freeBitmap, pageCount);
  }

  // Hashes.

  /** The sum of the page hashes of the first n pages of the list (post-copy's digest). */
  sumListed(n: number): bigint {
    const { guest, pageShift } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.pageHashSum(guest, pageShift, this.lane.list, n));
  }

  /** The sum of the page hashes of pages [first, first + count). */
  sumRange(first: number, count: number): bigint {
    return this.hasher.sumPages(first, first + count);
  }

  /** The region's digest (see hasher.ts), computed on this thread. */
  digest(): bigint {
    return this.hasher.digest();
  }

  // LZ4 blocks, for embedders (and benchmarks) that compress their own buffers.

  /** Compresses `length` bytes at `src` into at most `capacity` bytes at `dst`; returns the block's length, 0 if it does not fit. */
  compressBlock(src: number, length: number, dst: number, capacity: number): number {
    return this.wasm.lz4Compress(src, length, dst, capacity, this.lane.lz4Table);
  }

  /** Decodes the LZ4 block at `src` into at most `capacity` bytes at `dst`; returns the bytes produced, or a negative LZ4 error. */
  decompressBlock(src: number, length: number, dst: number, capacity: number): number {
    return this.wasm.lz4Decompress(src, length, dst, capacity);
  }
}

// One thread's handle on the WASM core for a region: an instance on the region's memory plus
// the lane of scratch it owns. Each call crosses into WASM once for a whole batch.
import {
  type CoreExports, type EncodeStats, ENCODE_STAT_NAMES, Enc, Dec, ENCODE_LZ4, ENCODE_DELTA, ENCODE_RAW_RUNS,
  ENCODE_SKIP_ZERO, BATCH_ERRORS,
} from "./abi.js";
import { instantiateCore } from "./module.js";
import type { Region } from "../memory/region.js";
import type { LaneLayout } from "../memory/layout.js";
import { PagewireError } from "../errors.js";
import { XXH3_SECRET } from "./xxh3-secret.js";
import { digestNow } from "./digest.js";

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
  readonly wasm: CoreExports;
  readonly lane: LaneLayout;
  /** The lane's page list: fill it, then encode/hash/classify its first n entries. */
  readonly list: Uint32Array;
  private readonly words: Uint32Array;

  constructor(
    readonly region: Region,
    laneIndex = 0,
  ) {
    const lane = region.layout.lanes[laneIndex];
    if (!lane) throw new PagewireError("ELAYOUT", `lane ${laneIndex} does not exist: the region was laid out with ${region.layout.lanes.length}`);
    this.lane = lane;
    this.wasm = instantiateCore(region.memory);
    this.words = new Uint32Array(region.memory.buffer);
    this.list = new Uint32Array(region.memory.buffer, lane.list, region.layout.batchPages);
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
    const dec = lane.decodeContext / 4;
    this.words[dec + Dec.guest / 4] = layout.guest;
    this.words[dec + Dec.pageShift / 4] = layout.pageShift;
    this.words[dec + Dec.pageCount / 4] = layout.pageCount;
    region.bytes.set(XXH3_SECRET, layout.hashSecret);
    this.setEncoding({});
  }

  setEncoding(options: EncodingOptions): void {
    if (options.delta && this.region.layout.cacheSlots === 0) {
      throw new PagewireError("EOPTION", "delta encoding needs a delta cache: lay the region out with deltaCacheBytes > 0");
    }
    this.words[this.lane.encodeContext / 4 + Enc.freeBitmap / 4] = options.freePageHints ? this.region.layout.freeBitmap : 0;
    this.words[this.lane.encodeContext / 4 + Enc.flags / 4] =
      (options.lz4 ? ENCODE_LZ4 : 0) | (options.delta ? ENCODE_DELTA : 0) | (options.rawRuns ? ENCODE_RAW_RUNS : 0) | (options.skipZero ? ENCODE_SKIP_ZERO : 0);
  }

  /** Turns ENCODE_SKIP_ZERO on or off, leaving the other encoding options as they are. */
  skipZero(on: boolean): void {
    const at = this.lane.encodeContext / 4 + Enc.flags / 4;
    this.words[at] = on ? this.words[at] | ENCODE_SKIP_ZERO : this.words[at] & ~ENCODE_SKIP_ZERO;
  }

  /**
   * Post-copy: the decoder accepts only pages set in bitmap `bm`, clears each as it applies it,
   * and lists the pages applied in the lane's list (see listed()). 0 turns this off.
   */
  expectPages(bm: number): void {
    const dec = this.lane.decodeContext / 4;
    this.words[dec + Dec.expected / 4] = bm;
    this.words[dec + Dec.list / 4] = bm ? this.lane.list : 0;
    this.words[dec + Dec.listCapacity / 4] = bm ? this.region.layout.batchPages : 0;
  }

  /** Removes from the first n pages of the list those set in bitmap `bm`; returns how many are left. */
  dropMarked(n: number, bm: number): number {
    return this.wasm.bitmapFilter(this.lane.list, n, bm, 0);
  }

  /** Sets in bitmap `bm` the bits of the first n pages of the list. */
  markListed(n: number, bm: number): void {
    this.wasm.bitmapMarkList(bm, this.lane.list, n);
  }

  /** The sum of the page hashes of the first n pages of the list (post-copy's digest). */
  sumListed(n: number): bigint {
    const { guest, pageShift } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.pageHashSum(guest, pageShift, this.lane.list, n));
  }

  /** The sum of the page hashes of pages [first, first + count). */
  sumRange(first: number, count: number): bigint {
    const { guest, pageShift } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.pageHashSumRange(guest, pageShift, first, count, 0));
  }

  /** Makes the decoder set a page's bit in the aux bitmap when it applies a record (or stop, with false). */
  trackReceived(on: boolean): void {
    this.words[this.lane.decodeContext / 4 + Dec.received / 4] = on ? this.region.layout.auxBitmap : 0;
  }

  /** Moves the dirty log into the sync bitmap (swap-and-clear); returns how many bits were taken. */
  syncDirty(): number {
    const { dirtyBitmap, syncBitmap, bitmapBytes } = this.region.layout;
    return this.wasm.bitmapSync(dirtyBitmap, syncBitmap, bitmapBytes / 4);
  }

  /**
   * Writes the set pages of bitmap `bm` from page `from` into the lane's list, at most a batch.
   * Returns [count, next page to scan from] (next = pageCount when the bitmap is exhausted).
   */
  scan(bm: number, from: number, to = this.region.layout.pageCount): [number, number] {
    const n = this.wasm.bitmapScan(bm, from, to, this.lane.list, this.region.layout.batchPages);
    return [n, this.wasm.bitmapScanNext()];
  }

  /** Encodes the first n pages of the list as records at `out`; returns the bytes written. */
  encode(n: number, out: number): number {
    return this.wasm.encodeBatch(this.lane.encodeContext, this.lane.list, n, out);
  }

  /** Runs of raw pages the last encode listed (rawRuns): [first, count] pairs, a view valid until the next call. */
  runs(): Uint32Array {
    const count = this.words[this.lane.encodeContext / 4 + Enc.runCount / 4];
    return new Uint32Array(this.region.memory.buffer, this.lane.runs, count * 2);
  }

  /** Zeroes the guest pages reported free that are not zero (call with the guest paused); returns how many. */
  zeroFreePages(): number {
    const { guest, pageShift, freeBitmap, pageCount } = this.region.layout;
    return this.wasm.zeroFreePages(guest, pageShift, freeBitmap, pageCount);
  }

  /** Clears a bitmap of the region that only this thread writes (sync or aux). */
  clearBitmap(bm: number): void {
    this.wasm.bitmapClear(bm, this.region.layout.bitmapBytes);
  }

  /** Counters of the last encode call. */
  encodeStats(): EncodeStats {
    const base = (this.lane.encodeContext + Enc.stats) / 4;
    const stats = {} as EncodeStats;
    ENCODE_STAT_NAMES.forEach((name, i) => (stats[name] = this.words[base + i]));
    stats.free = this.words[(this.lane.encodeContext + Enc.freeCount) / 4];
    return stats;
  }

  /** Applies a batch of records from `input`; returns the number applied or throws DecodeError. */
  decode(input: number, length: number): number {
    const status = this.wasm.decodeBatch(this.lane.decodeContext, input, length);
    if (status < 0) throw new DecodeError(status, this.words[this.lane.decodeContext / 4 + Dec.errorOffset / 4]);
    return status;
  }

  /** The region's digest (see digest.ts), computed on this thread. */
  digest(): bigint {
    return digestNow(this);
  }
}

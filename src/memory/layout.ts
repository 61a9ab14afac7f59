// Where everything lives in a region's shared WebAssembly.Memory. A pure function of the options,
// so a worker thread given the same options finds the same addresses.
import { PagewireError } from "../errors.js";
import { LZ4_TABLE_BYTES, Enc, Dec, RECORD_HEADER_BYTES, MIN_PAGE_SIZE, MAX_PAGE_SIZE } from "../abi/abi.js";

export const WASM_PAGE = 65536;
/** A WebAssembly memory holds at most 4 GiB; a larger guest is several regions. */
export const MAX_MEMORY_BYTES = 65536 * WASM_PAGE;
/** Bytes reserved before the encoded records of each I/O buffer, for the transport's frame header. */
export const IO_HEADROOM = 64;
/** Bytes per run at the end of each I/O buffer, for the header of the frame that carries the run. */
export const RUN_HEADER_SPACE = 32;
/** Bytes of a workload kernel's state struct. */
export const WORKLOAD_STATE_BYTES = 256;
/** The digest hashes a region in pieces of this size (see src/core/digest.ts). */
export const DIGEST_CHUNK_BYTES = 1 << 20;
/** The digest takes a term per group of this many bytes of pages (one page, where pages are larger): assembly/page-digest.ts GROUP_SHIFT. */
export const DIGEST_GROUP_BYTES = 1 << 14;
/**
 * Address 0 up to here holds no data of ours, so a null pointer never aliases any. The workloads
 * module keeps its constant math tables at 1–5 KiB; every instantiation writes the same bytes.
 */
const RESERVED_BYTES = 65536;

export interface LayoutOptions {
  /** Guest page size in bytes: a power of two from 512 to 65,536. Default 4,096. */
  pageSize?: number;
  /** Guest pages in this region. */
  pageCount: number;
  /** Threads that will run the core on this region, each with scratch of its own. Default 1. */
  lanes?: number;
  /** Pages per encode or decode call. Default 256 (1 MiB of 4 KiB pages). */
  batchPages?: number;
  /** I/O buffers of one encoded batch each, for frames in flight. Default 16. */
  ioBuffers?: number;
  /** Bytes of XBZRLE cache for delta encoding; 0 turns delta encoding off. Default 0. */
  deltaCacheBytes?: number;
  /**
   * Room for one hash per page (8 bytes a page), for dirty tracking without a write barrier
   * (Core.trackByHash, SourceOptions.trackByHash). Default false.
   */
  hashTracking?: boolean;
}

/** The scratch of one thread. */
export interface LaneLayout {
  encodeContext: number;
  decodeContext: number;
  lz4Table: number;
  snapshot: number;
  /** batchPages u32 page indices. */
  list: number;
  /** 16 bytes where a call returns its second result (a scan's resume point, a sync's owed count). */
  results: number;
  /** Runs of raw pages found by the encoder: (u32 first page, u32 count) per run, batchPages at most. */
  runs: number;
}

export interface Layout {
  /** The XXH3 secret the digest reads (written by Region.create). */
  hashSecret: number;
  /** One u64 per DIGEST_CHUNK_BYTES of guest memory: the sum of its pages' digest terms (assembly/page-digest.ts). */
  digestChunks: number;
  digestChunkCount: number;
  /**
   * One byte per digest chunk: whether its hash in digestChunks is stale (see
   * src/core/digest-tracker.ts). The sync and the decoder set 1 for chunks they touch.
   */
  digestStale: number;
  /** Pages per digest chunk, as a power of two. */
  digestChunkShift: number;
  /**
   * One byte per page, 1 where the page is known to be all zero, which the digest then does not
   * read: the encoder sets it for each page it finds zero (0 for one it does not), the decoder for
   * each zero record, the dirty sync clears it for each page taken. The digest tracker starts it.
   */
  zeroPages: number;
  /** One u64 per group of pages (DIGEST_GROUP_BYTES): its digest term, as last taken (assembly/page-digest.ts). */
  groupTerms: number;
  /** Groups of pages in the region (the last may be short). */
  groupCount: number;
  /**
   * One byte per page, 1 where its group's term in groupTerms is stale: the sync sets it for each page
   * taken, the decoder for each page written; the digest clears it as it takes the term again.
   */
  pageStale: number;
  pageSize: number;
  pageShift: number;
  pageCount: number;
  batchPages: number;
  /** Worst-case bytes of one encoded batch: every page raw. */
  batchBytes: number;
  /** Bytes of each I/O buffer: IO_HEADROOM, then batchBytes of records, then run headers. */
  ioBufferBytes: number;
  /** Where the run-header space starts inside each I/O buffer. */
  runHeadersOffset: number;
  lanes: LaneLayout[];
  ioBuffers: number[];
  /** Bytes of each bitmap: one bit per page, padded to 64 bytes. */
  bitmapBytes: number;
  /** Written by the guest's writers (the dirty log). */
  dirtyBitmap: number;
  /** Owned by the migration: what is still to send. */
  syncBitmap: number;
  /** A spare bitmap for policies and the destination (skip sets, received pages). */
  auxBitmap: number;
  /** Pages the guest reports free (free-page hints): their content need not travel. */
  freeBitmap: number;
  /** Post-copy, at the destination: pages that have arrived, which the guest may touch. */
  presentBitmap: number;
  /**
   * At a source that may resume: the pages sent in the rounds the destination has not yet
   * acknowledged, one bitmap for even rounds and one for odd (at most two are unacknowledged).
   */
  sentBitmaps: [number, number];
  /** Post-copy's presence area (32 bytes; see src/migration/presence.ts): how the guest asks for pages. */
  presence: number;
  /** The workload kernels' context (32 bytes) and state struct (256 bytes; it travels as device state). */
  workloadContext: number;
  workloadState: number;
  /** One u64 per page: its XXH64 as last sent (hash tracking), or 0 when the layout has none. */
  pageHashes: number;
  cacheSlots: number;
  cacheTags: number;
  cacheData: number;
  /** Address of guest page 0, aligned to the page size and to 64 KiB. */
  guest: number;
  totalBytes: number;
  /** Size of the WebAssembly.Memory in 64 KiB pages. */
  memoryPages: number;
}

const align = (value: number, to: number) => Math.ceil(value / to) * to;

export function planLayout(options: LayoutOptions): Layout {
  const pageSize = options.pageSize ?? 4096;
  const { pageCount } = options;
  const lanes = options.lanes ?? 1;
  const batchPages = options.batchPages ?? 256;
  const ioBuffers = options.ioBuffers ?? 16;
  const deltaCacheBytes = options.deltaCacheBytes ?? 0;
  if (!Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw new PagewireError("ELAYOUT", `page size ${pageSize} is not a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`);
  }
  if (!Number.isInteger(pageCount) || pageCount < 1) throw new PagewireError("ELAYOUT", `page count ${pageCount} must be a positive integer`);
  for (const [name, value] of [["lanes", lanes], ["batchPages", batchPages], ["ioBuffers", ioBuffers]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new PagewireError("ELAYOUT", `${name} ${value} must be a positive integer`);
  }
  const pageShift = Math.log2(pageSize);
  const batchBytes = batchPages * (RECORD_HEADER_BYTES + pageSize);
  const runHeadersOffset = align(IO_HEADROOM + batchBytes, 64);
  const ioBufferBytes = align(runHeadersOffset + batchPages * RUN_HEADER_SPACE, 64);
  let at = RESERVED_BYTES;
  const take = (bytes: number, alignment = 64) => {
    at = align(at, alignment);
    const address = at;
    at += bytes;
    return address;
  };
  const hashSecret = take(192);
  const digestChunkCount = Math.ceil((pageCount * pageSize) / DIGEST_CHUNK_BYTES);
  const digestChunks = take(digestChunkCount * 8);
  const digestStale = take(digestChunkCount);
  const digestChunkShift = Math.log2(DIGEST_CHUNK_BYTES) - pageShift;
  const zeroPages = take(pageCount);
  const groupCount = Math.ceil(pageCount / Math.max(1, DIGEST_GROUP_BYTES / pageSize));
  const groupTerms = take(groupCount * 8);
  const pageStale = take(pageCount);
  const laneLayouts: LaneLayout[] = [];
  for (let i = 0; i < lanes; i++) {
    laneLayouts.push({
      encodeContext: take(Enc.bytes),
      decodeContext: take(Dec.bytes),
      lz4Table: take(LZ4_TABLE_BYTES),
      snapshot: take(pageSize),
      list: take(batchPages * 4),
      results: take(16),
      runs: take(batchPages * 8),
    });
  }
  const buffers = Array.from({ length: ioBuffers }, () => take(ioBufferBytes));
  const bitmapBytes = align(Math.ceil(pageCount / 8), 64);
  const dirtyBitmap = take(bitmapBytes);
  const syncBitmap = take(bitmapBytes);
  const auxBitmap = take(bitmapBytes);
  const freeBitmap = take(bitmapBytes);
  const presentBitmap = take(bitmapBytes);
  const sentBitmaps: [number, number] = [take(bitmapBytes), take(bitmapBytes)];
  const presence = take(32);
  const workloadContext = take(32);
  const workloadState = take(WORKLOAD_STATE_BYTES);
  const pageHashes = options.hashTracking ? take(pageCount * 8) : 0;
  const cacheSlots = Math.floor(deltaCacheBytes / pageSize);
  const cacheTags = take(cacheSlots * 4);
  const cacheData = take(cacheSlots * pageSize, pageSize);
  const guest = take(pageCount * pageSize, Math.max(pageSize, WASM_PAGE));
  const totalBytes = align(at, WASM_PAGE);
  if (totalBytes > MAX_MEMORY_BYTES) {
    throw new PagewireError(
      "ELAYOUT",
      `a region of ${pageCount} pages of ${pageSize} bytes needs ${(totalBytes / 2 ** 30).toFixed(2)} GiB with its buffers, ` +
        `over the 4 GiB of one WebAssembly memory: split the guest into several regions`,
    );
  }
  return {
    hashSecret, digestChunks, digestChunkCount, digestStale, digestChunkShift, zeroPages, groupTerms, groupCount, pageStale, pageSize, pageShift, pageCount, batchPages, batchBytes, ioBufferBytes, runHeadersOffset,
    lanes: laneLayouts, ioBuffers: buffers,
    bitmapBytes, dirtyBitmap, syncBitmap, auxBitmap, freeBitmap, presentBitmap, sentBitmaps, presence, workloadContext, workloadState, pageHashes,
    cacheSlots, cacheTags, cacheData, guest, totalBytes,
    memoryPages: totalBytes / WASM_PAGE,
  };
}

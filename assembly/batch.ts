// Batch encoder and decoder: a list of pages to a buffer of page records and back, one call a batch.
import { xxh64 } from "./hash";
import { isZeroPage } from "./zero";
import { lz4Compress } from "./lz4/compress";
import { lz4Decompress } from "./lz4/decompress";
import { deltaEncode, deltaDecode } from "./delta";
import {
  RECORD_HEADER_BYTES, RECORD_ZERO, RECORD_RAW, RECORD_LZ4, RECORD_DELTA,
  ENC_GUEST, ENC_PAGE_SHIFT, ENC_FLAGS, ENC_LZ4_TABLE, ENC_CACHE_TAGS, ENC_CACHE_DATA,
  ENC_CACHE_SLOTS, ENC_SNAPSHOT, ENC_STATS, STAT_ZERO, STAT_RAW, STAT_LZ4, STAT_DELTA,
  STAT_UNCHANGED, STAT_CACHE_MISS, STAT_OVERFLOW, STAT_FREE, ENCODE_LZ4, ENCODE_DELTA,
  ENCODE_RAW_RUNS, ENCODE_SKIP_ZERO, ENC_RUNS, ENC_RUN_COUNT, ENC_FREE_BITMAP, ENC_RECORDS, ENC_PAGE_HASHES, ENC_ZERO_MAP,
  DEC_GUEST, DEC_PAGE_SHIFT, DEC_PAGE_COUNT, DEC_RECEIVED, DEC_ERROR_OFFSET, DEC_EXPECTED, DEC_LIST, DEC_LIST_CAPACITY, DEC_STALE, DEC_CHUNK_SHIFT, DEC_ZERO_MAP, DEC_PAGE_STALE,
  BATCH_ERR_TRUNCATED_HEADER, BATCH_ERR_PAGE_RANGE, BATCH_ERR_UNKNOWN_TYPE, BATCH_ERR_BAD_LENGTH,
  BATCH_ERR_TRUNCATED_PAYLOAD, BATCH_ERR_UNEXPECTED, BATCH_ERR_TOO_MANY, BATCH_ERR_LZ4, BATCH_ERR_LZ4_SIZE, BATCH_ERR_DELTA,
} from "./records";

/** Writes a record header at op and counts the record in ENC_RECORDS. */
@inline function writeHeader(ctx: usize, op: usize, page: u32, type: u32, length: u32): void {
  store<u32>(op, page);
  store<u32>(op, (type << 24) | length, 4);
  store<u32>(ctx + ENC_RECORDS, load<u32>(ctx + ENC_RECORDS) + 1);
}

@inline function bump(ctx: usize, stat: usize): void {
  const p = ctx + ENC_STATS + stat;
  store<u64>(p, load<u64>(p) + 1);
}

/** Adds a page to the run list, extending the last run when the page follows it. */
@inline function addToRuns(ctx: usize, page: u32): void {
  const runs = <usize>load<u32>(ctx + ENC_RUNS);
  const count = load<u32>(ctx + ENC_RUN_COUNT);
  if (count > 0) {
    const last = runs + (<usize>(count - 1) << 3);
    const length = load<u32>(last, 4);
    if (load<u32>(last) + length == page) {
      store<u32>(last, length + 1, 4);
      return;
    }
  }
  const run = runs + (<usize>count << 3);
  store<u32>(run, page);
  store<u32>(run, 1, 4);
  store<u32>(ctx + ENC_RUN_COUNT, count + 1);
}

/**
 * Encodes one non-zero page from `data` as LZ4 when that is smaller, else raw (or as part of a
 * run, when `byReference`). Returns the bytes written to the output.
 */
@inline function encodeWhole(ctx: usize, op: usize, page: u32, data: usize, size: u32, flags: u32, byReference: bool): u32 {
  if (flags & ENCODE_LZ4) {
    const packed = lz4Compress(data, size, op + RECORD_HEADER_BYTES, size - 1, load<u32>(ctx + ENC_LZ4_TABLE));
    if (packed != 0) {
      writeHeader(ctx, op, page, RECORD_LZ4, packed);
      bump(ctx, STAT_LZ4);
      return RECORD_HEADER_BYTES + packed;
    }
  }
  bump(ctx, STAT_RAW);
  if (byReference) {
    addToRuns(ctx, page);
    return 0;
  }
  memory.copy(op + RECORD_HEADER_BYTES, data, size);
  writeHeader(ctx, op, page, RECORD_RAW, size);
  return RECORD_HEADER_BYTES + size;
}

/**
 * Writes a record for each page in `list` (u32 indices, n of them) to `out`, choosing per page:
 * zero, delta against the cache (ENCODE_DELTA), LZ4 (ENCODE_LZ4) if smaller, else raw (copied,
 * or listed as runs of at least MIN_RUN_PAGES with ENCODE_RAW_RUNS). A page
 * whose delta is empty is unchanged since it was last sent and gets no record. `out` must hold
 * n * (8 + page size) bytes, the worst case. Returns the bytes written; counters are added to the
 * context's stats, and the number of records written goes to ENC_RECORDS. The guest may write pages meanwhile: a page changed during encoding is dirty
 * again and is sent again, and the delta cache is fed from a private snapshot, so it always
 * equals what the destination decodes.
 */
export function encodeBatch(ctx: usize, list: usize, n: u32, out: usize): u32 {
  const guest = <usize>load<u32>(ctx + ENC_GUEST);
  const shift = load<u32>(ctx + ENC_PAGE_SHIFT);
  const size: u32 = 1 << shift;
  const flags = load<u32>(ctx + ENC_FLAGS);
  const free = <usize>load<u32>(ctx + ENC_FREE_BITMAP);
  const hashes = <usize>load<u32>(ctx + ENC_PAGE_HASHES);
  const zeroMap = <usize>load<u32>(ctx + ENC_ZERO_MAP);
  // Tracking by hash encodes a private snapshot of each page, so the hash kept is of exactly the
  // bytes sent (a page changed and changed back meanwhile must not look unchanged): no page goes
  // by reference then.
  const byReference = (flags & ENCODE_RAW_RUNS) != 0 && (flags & ENCODE_DELTA) == 0 && hashes == 0;
  store<u32>(ctx + ENC_RUN_COUNT, 0);
  store<u32>(ctx + ENC_RECORDS, 0);
  let op = out;
  for (let i: u32 = 0; i < n; i++) {
    const page = load<u32>(list + (<usize>i << 2));
    let data = guest + (<usize>page << shift);
    // Dirty tracking by hash: what this page was when sent, for later syncs to compare with.
    if (hashes != 0) {
      const snapshot = <usize>load<u32>(ctx + ENC_SNAPSHOT);
      memory.copy(snapshot, data, size);
      data = snapshot;
      store<u64>(hashes + (<usize>page << 3), xxh64(data, size, 0));
    }
    // A page the guest reported free travels as zero, unread (its content does not matter).
    const hinted = free != 0 && ((atomic.load<u32>(free + (<usize>(page >>> 5) << 2)) >>> (page & 31)) & 1) != 0;
    if (hinted) bump(ctx, STAT_FREE);
    const zero = !hinted && isZeroPage(data, size);
    if (zeroMap != 0) store<u8>(zeroMap + <usize>page, zero ? 1 : 0);
    if (hinted || zero) {
      if (!(flags & ENCODE_SKIP_ZERO)) {
        writeHeader(ctx, op, page, RECORD_ZERO, 0);
        op += RECORD_HEADER_BYTES;
      }
      bump(ctx, STAT_ZERO);
      if (flags & ENCODE_DELTA) {
        const tag = <usize>load<u32>(ctx + ENC_CACHE_TAGS) + (<usize>(page % load<u32>(ctx + ENC_CACHE_SLOTS)) << 2);
        if (load<u32>(tag) == page + 1) store<u32>(tag, 0);
      }
      continue;
    }
    if (!(flags & ENCODE_DELTA)) {
      op += encodeWhole(ctx, op, page, data, size, flags, byReference);
      continue;
    }
    const snapshot = <usize>load<u32>(ctx + ENC_SNAPSHOT);
    memory.copy(snapshot, data, size);
    const slot = page % load<u32>(ctx + ENC_CACHE_SLOTS);
    const tag = <usize>load<u32>(ctx + ENC_CACHE_TAGS) + (<usize>slot << 2);
    const cached = <usize>load<u32>(ctx + ENC_CACHE_DATA) + (<usize>slot << shift);
    if (load<u32>(tag) == page + 1) {
      // A delta must save at least an eighth of the page to beat sending it whole.
      const delta = deltaEncode(cached, snapshot, size, op + RECORD_HEADER_BYTES, size - (size >>> 3));
      if (delta == 0) {
        bump(ctx, STAT_UNCHANGED);
        continue;
      }
      if (delta > 0) {
        writeHeader(ctx, op, page, RECORD_DELTA, <u32>delta);
        op += RECORD_HEADER_BYTES + <u32>delta;
        bump(ctx, STAT_DELTA);
        memory.copy(cached, snapshot, size);
        continue;
      }
      bump(ctx, STAT_OVERFLOW);
    } else {
      bump(ctx, STAT_CACHE_MISS);
      store<u32>(tag, page + 1);
    }
    memory.copy(cached, snapshot, size);
    op += encodeWhole(ctx, op, page, snapshot, size, flags, false);
  }
  if (byReference) op = copyShortRuns(ctx, op, guest, shift);
  return <u32>(op - out);
}

/** A run shorter than this is cheaper to copy than to send as a frame of its own. */
const MIN_RUN_PAGES: u32 = 8;

/** Turns runs shorter than MIN_RUN_PAGES into raw records at op; keeps the long ones. Returns the new op. */
function copyShortRuns(ctx: usize, op: usize, guest: usize, shift: u32): usize {
  const runs = <usize>load<u32>(ctx + ENC_RUNS);
  const count = load<u32>(ctx + ENC_RUN_COUNT);
  const size: u32 = 1 << shift;
  let kept: u32 = 0;
  for (let r: u32 = 0; r < count; r++) {
    const run = runs + (<usize>r << 3);
    const first = load<u32>(run);
    const length = load<u32>(run, 4);
    if (length >= MIN_RUN_PAGES) {
      const to = runs + (<usize>kept << 3);
      store<u32>(to, first);
      store<u32>(to, length, 4);
      kept++;
      continue;
    }
    for (let page = first; page < first + length; page++) {
      writeHeader(ctx, op, page, RECORD_RAW, size);
      memory.copy(op + RECORD_HEADER_BYTES, guest + (<usize>page << shift), size);
      op += RECORD_HEADER_BYTES + size;
    }
  }
  store<u32>(ctx + ENC_RUN_COUNT, kept);
  return op;
}

@inline function fail(ctx: usize, offset: usize, code: i32): i32 {
  store<u32>(ctx + DEC_ERROR_OFFSET, <u32>offset);
  return code;
}

/**
 * Applies the records in [input, input + length) to the guest. Every record is checked before
 * it is used: a page inside the region, a known type, a length that fits the type and the input,
 * a payload that decodes to exactly one page. Returns the number of records applied, or a
 * BATCH_ERR_* code with the failing record's offset in the context. Never writes outside the
 * page a record names.
 */
export function decodeBatch(ctx: usize, input: usize, length: u32): i32 {
  const guest = <usize>load<u32>(ctx + DEC_GUEST);
  const shift = load<u32>(ctx + DEC_PAGE_SHIFT);
  const size: u32 = 1 << shift;
  const pageCount = load<u32>(ctx + DEC_PAGE_COUNT);
  const received = <usize>load<u32>(ctx + DEC_RECEIVED);
  const expected = <usize>load<u32>(ctx + DEC_EXPECTED);
  const list = <usize>load<u32>(ctx + DEC_LIST);
  const listCapacity = load<u32>(ctx + DEC_LIST_CAPACITY);
  const stale = <usize>load<u32>(ctx + DEC_STALE);
  const chunkShift = load<u32>(ctx + DEC_CHUNK_SHIFT);
  const zeroMap = <usize>load<u32>(ctx + DEC_ZERO_MAP);
  const pageStale = <usize>load<u32>(ctx + DEC_PAGE_STALE);
  const end = input + length;
  let ip = input;
  let applied: i32 = 0;
  while (ip < end) {
    const at = ip - input;
    if (end - ip < RECORD_HEADER_BYTES) return fail(ctx, at, BATCH_ERR_TRUNCATED_HEADER);
    const page = load<u32>(ip);
    const word = load<u32>(ip, 4);
    const type = word >>> 24;
    const len = word & 0xffffff;
    ip += RECORD_HEADER_BYTES;
    if (page >= pageCount) return fail(ctx, at, BATCH_ERR_PAGE_RANGE);
    if (<usize>len > end - ip) return fail(ctx, at, BATCH_ERR_TRUNCATED_PAYLOAD);
    // At most a batch of records per call: a frame of 8-byte zero records could otherwise make
    // one call clear thousands of pages.
    if (listCapacity != 0 && <u32>applied >= listCapacity) return fail(ctx, at, BATCH_ERR_TOO_MANY);
    const bit = <u32>1 << (page & 31);
    if (expected != 0 && (load<u32>(expected + (<usize>(page >>> 5) << 2)) & bit) == 0) return fail(ctx, at, BATCH_ERR_UNEXPECTED);
    const target = guest + (<usize>page << shift);
    if (type == RECORD_ZERO) {
      if (len != 0) return fail(ctx, at, BATCH_ERR_BAD_LENGTH);
      // Reading first spares a write (and a first touch) when the page is zero already.
      if (!isZeroPage(target, size)) memory.fill(target, 0, size);
    } else if (type == RECORD_RAW) {
      if (len != size) return fail(ctx, at, BATCH_ERR_BAD_LENGTH);
      memory.copy(target, ip, size);
    } else if (type == RECORD_LZ4) {
      if (len == 0) return fail(ctx, at, BATCH_ERR_BAD_LENGTH);
      const produced = lz4Decompress(ip, len, target, size);
      if (produced < 0) return fail(ctx, at, BATCH_ERR_LZ4 + produced);
      if (<u32>produced != size) return fail(ctx, at, BATCH_ERR_LZ4_SIZE);
    } else if (type == RECORD_DELTA) {
      if (len == 0) return fail(ctx, at, BATCH_ERR_BAD_LENGTH);
      const result = deltaDecode(ip, len, target, size);
      if (result < 0) return fail(ctx, at, BATCH_ERR_DELTA + result);
    } else {
      return fail(ctx, at, BATCH_ERR_UNKNOWN_TYPE);
    }
    if (received != 0) atomic.or<u32>(received + (<usize>(page >>> 5) << 2), bit);
    if (expected != 0) atomic.and<u32>(expected + (<usize>(page >>> 5) << 2), ~bit);
    if (list != 0) store<u32>(list + (<usize>applied << 2), page);
    if (stale != 0) store<u8>(stale + (<usize>page >>> chunkShift), 1);
    if (zeroMap != 0) store<u8>(zeroMap + <usize>page, type == RECORD_ZERO ? 1 : 0);
    if (pageStale != 0) store<u8>(pageStale + <usize>page, 1);
    ip += len;
    applied++;
  }
  return applied;
}

// Delta encoding of a re-sent page against the copy sent before (XBZRLE, as in QEMU): a sequence
// of (unchanged run, changed run, changed bytes) with run lengths in ULEB128. Unchanged bytes
// after the last changed run are implied. The destination applies it onto the page it holds.

/** deltaEncode: the page equals the old copy; nothing needs sending. */
export const DELTA_UNCHANGED: i32 = 0;
/** deltaEncode: the delta would not fit the bound; send the page whole instead. */
export const DELTA_OVERFLOW: i32 = -1;

export const DELTA_ERR_TRUNCATED: i32 = -1;
export const DELTA_ERR_BAD_RUN: i32 = -2;
export const DELTA_ERR_PAST_END: i32 = -3;

/** Run lengths are below 2^21 (pages are at most 64 KiB), so three ULEB128 bytes suffice. */
const MAX_LEB_BYTES: u32 = 3;

@inline function writeLeb(op: usize, value: u32): usize {
  while (value >= 0x80) {
    store<u8>(op++, <u8>(value | 0x80));
    value >>>= 7;
  }
  store<u8>(op++, <u8>value);
  return op;
}

/** Number of leading bytes that are equal in the u64 words a and b, given a != b. */
@inline function equalLowBytes(diff: u64): u32 {
  return <u32>ctz(diff) >>> 3;
}

/**
 * Encodes `page` (len bytes, a multiple of 8) against `old` into dst. Returns the delta's length,
 * DELTA_UNCHANGED when there is no difference, or DELTA_OVERFLOW when it would exceed dstCap.
 * Runs are found a u64 word at a time: a changed run ends at the first fully unchanged word, so a
 * lone equal byte inside changed data does not cost two run headers.
 */
export function deltaEncode(old: usize, page: usize, len: u32, dst: usize, dstCap: u32): i32 {
  let op = dst;
  const opEnd = dst + dstCap;
  let pos: u32 = 0; // first byte not yet encoded
  let w: u32 = 0; // current word's byte offset
  while (true) {
    // Unchanged run: whole words, then the equal low bytes of the first differing word.
    while (w < len && load<u64>(old + w) == load<u64>(page + w)) w += 8;
    if (w >= len) break;
    const changedStart = w + equalLowBytes(load<u64>(old + w) ^ load<u64>(page + w));
    // Changed run: words that differ; it ends after the last differing byte of the last one.
    let lastDiff: u64 = 0;
    do {
      lastDiff = load<u64>(old + w) ^ load<u64>(page + w);
      w += 8;
    } while (w < len && load<u64>(old + w) != load<u64>(page + w));
    const changedEnd = w - (<u32>clz(lastDiff) >>> 3);
    const changed = changedEnd - changedStart;
    if (op + 2 * MAX_LEB_BYTES + changed > opEnd) return DELTA_OVERFLOW;
    op = writeLeb(op, changedStart - pos);
    op = writeLeb(op, changed);
    memory.copy(op, page + changedStart, changed);
    op += changed;
    pos = changedEnd;
  }
  return <i32>(op - dst);
}

/** Reads a ULEB128 of at most MAX_LEB_BYTES; returns (ip << 32 | value), or -1 when malformed. */
@inline function readLeb(ip: usize, ipEnd: usize): i64 {
  let value: u32 = 0;
  for (let i: u32 = 0; i < MAX_LEB_BYTES; i++) {
    if (ip >= ipEnd) return -1;
    const byte = <u32>load<u8>(ip++);
    value |= (byte & 0x7f) << (7 * i);
    if (byte < 0x80) return <i64>((<u64>ip << 32) | value);
  }
  return -2;
}

/**
 * Applies the delta at src onto the page at dst (pageLen bytes). Returns 0, or
 * DELTA_ERR_TRUNCATED / DELTA_ERR_BAD_RUN (an empty changed run, an over-long length) /
 * DELTA_ERR_PAST_END (a run beyond the page). Never writes outside the page.
 */
export function deltaDecode(src: usize, srcLen: u32, dst: usize, pageLen: u32): i32 {
  let ip = src;
  const ipEnd = src + srcLen;
  let pos: u32 = 0;
  while (ip < ipEnd) {
    const unchanged = readLeb(ip, ipEnd);
    if (unchanged < 0) return unchanged == -1 ? DELTA_ERR_TRUNCATED : DELTA_ERR_BAD_RUN;
    ip = <usize>(unchanged >>> 32);
    const changed = readLeb(ip, ipEnd);
    if (changed < 0) return changed == -1 ? DELTA_ERR_TRUNCATED : DELTA_ERR_BAD_RUN;
    ip = <usize>(changed >>> 32);
    const skip = <u32>unchanged;
    const count = <u32>changed;
    if (count == 0) return DELTA_ERR_BAD_RUN;
    if (<u64>pos + skip + count > <u64>pageLen) return DELTA_ERR_PAST_END;
    if (<usize>count > ipEnd - ip) return DELTA_ERR_TRUNCATED;
    pos += skip;
    memory.copy(dst + pos, ip, count);
    pos += count;
    ip += count;
  }
  return 0;
}

// Dirty bitmaps. Bit i is page i; words are little-endian u32 in memory, so JavaScript's
// Atomics on an Int32Array and this module agree on every bit. Bitmaps are allocated padded
// to 64 bytes (see src/memory/layout.ts) so the wide loops below never need a tail case for
// whole blocks; bits past the last page are kept clear.

@inline function takeWord(liveWord: usize, intoWord: usize, w: u32, stale: usize, chunkShift: u32, zeroMap: usize, pageStale: usize): u32 {
  if (load<u32>(liveWord) == 0) return 0;
  // Swap-and-clear: a writer's atomic.or either lands before the swap (taken now) or after
  // it (left for the next sync). No bit is lost.
  const bits = atomic.xchg<u32>(liveWord, 0);
  store<u32>(intoWord, load<u32>(intoWord) | bits);
  if (stale != 0) markChunks(stale, bits, w, chunkShift);
  // A page written since it was found zero is zero no longer, as far as anyone knows; and its
  // digest term is to be taken again.
  if (zeroMap != 0) {
    for (let b = bits; b != 0; b &= b - 1) store<u8>(zeroMap + (<usize>w << 5) + ctz(b), 0);
  }
  if (pageStale != 0) markPages(pageStale, bits, w);
  return popcnt(bits);
}

/**
 * Marks stale (byte 1) the digest chunk of every set bit of word w: a chunk is 2^chunkShift
 * pages, at least 16 (1 MiB of 64 KiB pages), so a word spans one chunk or two halves.
 */
@inline function markChunks(stale: usize, bits: u32, w: u32, chunkShift: u32): void {
  if (chunkShift >= 5) {
    store<u8>(stale + (<usize>(w << 5) >>> chunkShift), 1);
  } else {
    if ((bits & 0xffff) != 0) store<u8>(stale + (<usize>w << 1), 1);
    if ((bits >>> 16) != 0) store<u8>(stale + (<usize>w << 1) + 1, 1);
  }
}

/** Sets the byte (in `pageStale`, one per page) of every set bit of word w: its digest term is stale (see page-digest.ts). */
@inline function markPages(pageStale: usize, bits: u32, w: u32): void {
  for (let b = bits; b != 0; b &= b - 1) store<u8>(pageStale + (<usize>w << 5) + ctz(b), 1);
}

/**
 * Marks stale the digest chunk and the page term of every page set in bitmap `bm` (reads it
 * only): what a guest frozen since its last sync has changed since, or the pages a pass is about
 * to zero.
 */
export function bitmapMarkChunks(bm: usize, words: u32, stale: usize, chunkShift: u32, pageStale: usize): void {
  for (let i: u32 = 0; i < words; i++) {
    const bits = load<u32>(bm + (<usize>i << 2));
    if (bits != 0) {
      markChunks(stale, bits, i, chunkShift);
      markPages(pageStale, bits, i);
    }
  }
}

/** The bits of 32-bit word w that stand for pages below `keepBelow`. */
@inline function keptBits(w: u32, keepBelow: u32): u32 {
  if ((w + 1) << 5 <= keepBelow) return <u32>-1;
  if (w << 5 >= keepBelow) return 0;
  return (<u32>1 << (keepBelow & 31)) - 1;
}

/**
 * One dirty sync, in one pass: moves every set bit of the live bitmap into `into` (OR) and clears
 * it in `live`, word by word with an atomic swap; writers may set bits concurrently. Then drops
 * from `into` the pages at or past `keepBelow` (never sent yet: they go, current, when their turn
 * comes). Returns how many bits were taken from `live`; writes to `owedOut` (a u32) how many bits
 * `into` holds afterwards, the pages owed again. `words` is a multiple of 4 (bitmaps are padded
 * to 64 bytes). With `stale` (0: none), marks the digest chunk of every bit taken (see
 * markChunks), pages never sent included: the digest must hash them again; with `zeroMap` (0:
 * none), a byte per page, clears the byte of every page taken (see ENC_ZERO_MAP); with
 * `pageStale` (0: none), a byte per page, sets it (see markPages).
 */
export function bitmapSync(live: usize, into: usize, words: u32, keepBelow: u32, owedOut: usize, stale: usize, chunkShift: u32, zeroMap: usize, pageStale: usize): u32 {
  let taken: u32 = 0;
  let owed: u32 = 0;
  // Words from here on may need masking; below it `into` only gains bits.
  const maskFrom: u32 = keepBelow >>> 5;
  for (let i: u32 = 0; i < words; i += 4) {
    const p = live + (<usize>i << 2);
    const q = into + (<usize>i << 2);
    // A plain 16-byte read finds empty stretches without a locked instruction per word.
    if (v128.any_true(v128.load(p))) {
      taken += takeWord(p, q, i, stale, chunkShift, zeroMap, pageStale) + takeWord(p + 4, q + 4, i + 1, stale, chunkShift, zeroMap, pageStale) + takeWord(p + 8, q + 8, i + 2, stale, chunkShift, zeroMap, pageStale) + takeWord(p + 12, q + 12, i + 3, stale, chunkShift, zeroMap, pageStale);
    }
    if (i + 4 > maskFrom) {
      for (let k: u32 = 0; k < 4; k++) {
        const at = q + (<usize>k << 2);
        store<u32>(at, load<u32>(at) & keptBits(i + k, keepBelow));
      }
    }
    owed += <u32>(popcnt(load<u64>(q)) + popcnt(load<u64>(q, 8)));
  }
  store<u32>(owedOut, owed);
  return taken;
}

/** Set in emitBits' result when the output filled up. Counts stay below 2^31. */
const FULL: u32 = 0x80000000;

/**
 * Appends the set bits of `word` (bits base..base+63) to out[n..]; returns the new count, | FULL
 * when out of room, having written the first bit left out to `nextOut`.
 */
@inline function emitBits(word: u64, base: u32, out: usize, n: u32, maxOut: u32, nextOut: usize): u32 {
  while (word != 0) {
    const bit = base + <u32>ctz(word);
    if (n == maxOut) {
      store<u32>(nextOut, bit);
      return n | FULL;
    }
    store<u32>(out + (<usize>n << 2), bit);
    n++;
    word &= word - 1;
  }
  return n;
}

/** Word w of the bitmap with the bits outside [fromBit, toBit) cleared. */
@inline function wordInRange(bm: usize, w: u32, fromBit: u32, toBit: u32): u64 {
  let word = load<u64>(bm + (<usize>w << 3));
  if (w == fromBit >>> 6) word &= <u64>-1 << (fromBit & 63);
  if (w == (toBit - 1) >>> 6 && (toBit & 63) != 0) word &= (<u64>1 << (toBit & 63)) - 1;
  return word;
}

/** A 16-bit mask of the non-zero u64 words in the 128-byte block at p, or 0 when all are zero. */
@inline function nonZeroWords(p: usize): u32 {
  const a = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
  const b = v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112)));
  if (!v128.any_true(v128.or(a, b))) return 0;
  const zero = i64x2.splat(0);
  let mask: u32 = 0;
  for (let k: u32 = 0; k < 8; k++) mask |= <u32>i64x2.bitmask(i64x2.ne(v128.load(p + (<usize>k << 4)), zero)) << (k << 1);
  return mask;
}

/**
 * Writes the indices of set bits in [fromBit, toBit) to `out` (u32 each), at most `maxOut`.
 * Returns the count, and writes to `nextOut` (a u32) where to resume: the first bit left out, or
 * toBit when the range is exhausted. With `take`, the bits scanned are also cleared (atomically),
 * so the range [fromBit, next) is empty afterwards.
 */
export function bitmapScan(bm: usize, fromBit: u32, toBit: u32, out: usize, maxOut: u32, nextOut: usize, take: bool): u32 {
  store<u32>(nextOut, toBit);
  if (fromBit >= toBit) return 0;
  if (maxOut == 0) {
    store<u32>(nextOut, fromBit);
    return 0;
  }
  const n = scanInto(bm, fromBit, toBit, out, maxOut, nextOut);
  if (take) {
    const next = load<u32>(nextOut);
    bitmapClearRange(bm, fromBit, next - fromBit);
  }
  return n;
}

@inline function scanInto(bm: usize, fromBit: u32, toBit: u32, out: usize, maxOut: u32, nextOut: usize): u32 {
  let n: u32 = 0;
  const lastW: u32 = (toBit - 1) >>> 6;
  let w: u32 = fromBit >>> 6;
  // Head: single words up to a 16-word boundary (the first word needs masking anyway).
  do {
    n = emitBits(wordInRange(bm, w, fromBit, toBit), w << 6, out, n, maxOut, nextOut);
    if (n & FULL) return n & ~FULL;
    w++;
  } while (w <= lastW && (w & 15) != 0);
  // Body: 128-byte blocks (1,024 pages) that stop short of the last, masked word. One test
  // skips an empty block; a non-empty one yields the mask of its non-zero words.
  for (; w + 16 <= lastW; w += 16) {
    let mask = nonZeroWords(bm + (<usize>w << 3));
    while (mask != 0) {
      const k = <u32>ctz(mask);
      n = emitBits(load<u64>(bm + (<usize>(w + k) << 3)), (w + k) << 6, out, n, maxOut, nextOut);
      if (n & FULL) return n & ~FULL;
      mask &= mask - 1;
    }
  }
  // Tail.
  for (; w <= lastW; w++) {
    n = emitBits(wordInRange(bm, w, fromBit, toBit), w << 6, out, n, maxOut, nextOut);
    if (n & FULL) return n & ~FULL;
  }
  return n;
}

/** Number of set bits in the first `bytes` bytes (a multiple of 8). */
export function bitmapCount(bm: usize, bytes: u32): u32 {
  let count: u64 = 0;
  const end = bm + bytes;
  for (let p = bm; p < end; p += 8) count += popcnt(load<u64>(p));
  return <u32>count;
}

/**
 * Keeps in `list` (u32 page indices, in place) the pages whose bit in `bm` is set
 * (keepSet) or clear (!keepSet), without clearing anything. Xen uses it to skip pages that are
 * dirty again already. Returns the new length.
 */
export function bitmapFilter(list: usize, n: u32, bm: usize, keepSet: bool): u32 {
  let kept: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const page = load<u32>(list + (<usize>i << 2));
    const set = (atomic.load<u32>(bm + (<usize>(page >>> 5) << 2)) >>> (page & 31)) & 1;
    if ((set != 0) == keepSet) {
      store<u32>(list + (<usize>kept << 2), page);
      kept++;
    }
  }
  return kept;
}

/** Clears `bytes` bytes of a bitmap that no other thread writes (a migration's own bitmaps). */
export function bitmapClear(bm: usize, bytes: u32): void {
  memory.fill(bm, 0, bytes);
}

/** The bits of pages [first, end) that fall in 32-bit word w. */
@inline function rangeMask(w: u32, first: u32, end: u32): u32 {
  const lo: u32 = w == first >>> 5 ? first & 31 : 0;
  const hi: u32 = w == (end - 1) >>> 5 ? ((end - 1) & 31) + 1 : 32;
  return hi == 32 ? <u32>-1 << lo : ((<u32>1 << hi) - 1) & (<u32>-1 << lo);
}

/** Atomically sets the bits of pages [first, first + count): what a writer calls after writing. */
export function bitmapMarkRange(bm: usize, first: u32, count: u32): void {
  if (count == 0) return;
  const end = first + count;
  for (let w = first >>> 5; w <= (end - 1) >>> 5; w++) atomic.or<u32>(bm + (<usize>w << 2), rangeMask(w, first, end));
}

/** Atomically clears the bits of pages [first, first + count). */
export function bitmapClearRange(bm: usize, first: u32, count: u32): void {
  if (count == 0) return;
  const end = first + count;
  for (let w = first >>> 5; w <= (end - 1) >>> 5; w++) atomic.and<u32>(bm + (<usize>w << 2), ~rangeMask(w, first, end));
}

/**
 * If every page of [first, first + count) is set, clears them all and returns true; otherwise
 * changes nothing and returns false. Post-copy uses it to accept a run of pages only once.
 */
export function bitmapTakeRange(bm: usize, first: u32, count: u32): bool {
  if (count == 0) return true;
  const end = first + count;
  for (let w = first >>> 5; w <= (end - 1) >>> 5; w++) {
    const mask = rangeMask(w, first, end);
    if ((load<u32>(bm + (<usize>w << 2)) & mask) != mask) return false;
  }
  bitmapClearRange(bm, first, count);
  return true;
}

/** Atomically sets the bit of each page in `list` (u32 page indices, n of them). */
export function bitmapMarkList(bm: usize, list: usize, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const page = load<u32>(list + (<usize>i << 2));
    atomic.or<u32>(bm + (<usize>(page >>> 5) << 2), <u32>1 << (page & 31));
  }
}

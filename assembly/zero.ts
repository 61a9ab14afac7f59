// Zero-page detection with v128 SIMD.

/** True when the `size` bytes at p (a multiple of 128) are all zero. */
@inline export function isZeroPage(p: usize, size: u32): bool {
  const end = p + size;
  while (p < end) {
    // Eight loads folded into one test per 128 bytes: the branch costs less than the loads.
    const a = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
    const b = v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112)));
    if (v128.any_true(v128.or(a, b))) return false;
    p += 128;
  }
  return true;
}

/** Counts the zero pages among `count` consecutive pages starting at page `first`. */
export function zeroCountRange(base: usize, pageShift: u32, first: u32, count: u32): u32 {
  const size: u32 = 1 << pageShift;
  let zeros: u32 = 0;
  let p = base + (<usize>first << pageShift);
  for (let i: u32 = 0; i < count; i++, p += size) zeros += <u32>isZeroPage(p, size);
  return zeros;
}

/**
 * Zeroes the guest pages whose bit is set in `free` (pages the guest reported free) and are not
 * zero already; returns how many it zeroed. Called with the guest paused, so that memory the
 * engine sent as zero without reading is zero on the source too, and the digests agree.
 */
export function zeroFreePages(base: usize, pageShift: u32, free: usize, pageCount: u32): u32 {
  const size: u32 = 1 << pageShift;
  let zeroed: u32 = 0;
  for (let w: u32 = 0; w < (pageCount + 31) >>> 5; w++) {
    let bits = load<u32>(free + (<usize>w << 2));
    while (bits != 0) {
      const page = (w << 5) + ctz(bits);
      bits &= bits - 1;
      if (page >= pageCount) break;
      const p = base + (<usize>page << pageShift);
      if (!isZeroPage(p, size)) {
        memory.fill(p, 0, size);
        zeroed++;
      }
    }
  }
  return zeroed;
}

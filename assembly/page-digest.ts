// A region's digest, the one a migration proves (protocol 4): the sum, modulo 2^64, of a term per
// group of pages (16 KiB of them, or one page where pages are larger: a group is cheap to hash
// alone, where a lone 4 KiB page costs XXH3 twice its bytes' time), term(g) =
// avalanche((XXH3(group g) ^ XXH3(as many zero bytes)) * (2g + 1)). A zero group's term is 0, and a
// group's term depends on its index, so groups trading places change the sum. A sum can be kept
// current group by group: each group's term is stored (`terms`), each chunk of 2^chunkShift pages
// keeps the sum of its terms (`sums`), and a group with a page written since its term was taken
// (a byte per page in `stale`) is the only one hashed again. The region's digest is the sum of its
// chunk sums.
import { xxh3 } from "./xxh3";

const PRIME64_2: u64 = 0xc2b2ae3d27d4eb4f;
const PRIME64_3: u64 = 0x165667b19e3779f9;
/** A group is this many bytes (or one page, if larger). */
export const GROUP_SHIFT: u32 = 14;

/** XXH64's final mix: every input bit reaches every output bit; 0 stays 0. */
@inline function avalanche(h: u64): u64 {
  h ^= h >> 33;
  h *= PRIME64_2;
  h ^= h >> 29;
  h *= PRIME64_3;
  return h ^ (h >> 32);
}

/** XXH3-64 (seed 0) of the `len` (> 240) bytes at p, every byte read. */
export function hashBytes(p: usize, len: u32, secret: usize): u64 {
  return xxh3(p, len, secret, 0, 0, 0);
}

/**
 * Brings chunks [first, end) up to date: with `stale` (0: every group), the term of each group
 * with a page whose byte there is set is taken again (the bytes cleared first, atomically, so
 * that a write marked while the group is read marks it again); with `zeroMap` (0: none; pages of
 * at least 1 KiB), pages it calls zero go unread, and a group of them gets term 0. `zeroHash` is
 * XXH3 of a whole group of zeros, `zeroHashLast` of the region's last group, which may be short.
 * Then each chunk's sum is stored. Returns the pages read.
 */
export function digestChunks(
  guest: usize, pageShift: u32, pageCount: u32, chunkShift: u32, first: u32, end: u32,
  secret: usize, zeroHash: u64, zeroHashLast: u64, terms: usize, sums: usize, stale: usize, zeroMap: usize,
): u32 {
  const groupShift: u32 = pageShift < GROUP_SHIFT ? GROUP_SHIFT - pageShift : 0;
  const lastGroup = (pageCount - 1) >>> groupShift;
  let read: u32 = 0;
  for (let c = first; c < end; c++) {
    const from = c << chunkShift;
    const to = min<u32>(pageCount, from + (<u32>1 << chunkShift));
    let sum: u64 = 0;
    for (let g = from >>> groupShift; g <= (to - 1) >>> groupShift; g++) {
      const at = terms + (<usize>g << 3);
      const gFirst = g << groupShift;
      const gEnd = min<u32>(to, gFirst + (<u32>1 << groupShift));
      let due = stale == 0;
      for (let p = gFirst; p < gEnd && stale != 0; p++) {
        if (atomic.load<u8>(stale + p) != 0) {
          atomic.store<u8>(stale + p, 0);
          due = true;
        }
      }
      if (due) {
        let unread: u32 = 0;
        if (zeroMap != 0) for (let p = gFirst; p < gEnd; p++) unread += load<u8>(zeroMap + p);
        let term: u64 = 0;
        if (unread < gEnd - gFirst) {
          const h = xxh3(guest + (<usize>gFirst << pageShift), (gEnd - gFirst) << pageShift, secret, zeroMap, gFirst, pageShift);
          term = avalanche((h ^ (g == lastGroup ? zeroHashLast : zeroHash)) * ((<u64>g << 1) | 1));
          read += gEnd - gFirst - unread;
        }
        store<u64>(at, term);
      }
      sum += load<u64>(at);
    }
    store<u64>(sums + (<usize>c << 3), sum);
  }
  return read;
}

/** The sum of the u64s at [p, p + 8n), modulo 2^64: a region's digest from its chunk sums. */
export function sumU64(p: usize, n: u32): u64 {
  let sum: u64 = 0;
  for (let i: u32 = 0; i < n; i++) sum += load<u64>(p + (<usize>i << 3));
  return sum;
}

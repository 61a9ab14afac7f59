// A region's digest, the one a migration proves (protocol 4): the sum, modulo 2^64, of a term per
// page, term(p) = avalanche((XXH3(page p) ^ XXH3(zero page)) * (2p + 1)). A zero page's term is 0,
// and a page's term depends on its index, so two pages trading places change the sum. A sum can be
// kept current page by page: each page's term is stored (`terms`), each chunk of 2^chunkShift pages
// keeps the sum of its terms (`sums`), and a page written since its term was taken (a byte per
// page in `stale`) is the only one hashed again. The region's digest is the sum of its chunk sums.
import { xxh3 } from "./xxh3";

const PRIME64_2: u64 = 0xc2b2ae3d27d4eb4f;
const PRIME64_3: u64 = 0x165667b19e3779f9;

/** XXH64's final mix: every input bit reaches every output bit; 0 stays 0. */
@inline function avalanche(h: u64): u64 {
  h ^= h >> 33;
  h *= PRIME64_2;
  h ^= h >> 29;
  h *= PRIME64_3;
  return h ^ (h >> 32);
}

/** The term of page `page` whose XXH3 is `hash`. */
@inline function pageTerm(hash: u64, zeroHash: u64, page: u32): u64 {
  return avalanche((hash ^ zeroHash) * ((<u64>page << 1) | 1));
}

/**
 * Brings chunks [first, end) up to date: with `stale` (0: every page), the term of each page whose
 * byte there is set is taken again (the byte cleared first, atomically, so that a write marked
 * while the page is read marks it again); with `zeroMap` (0: none), a page it calls zero gets
 * term 0 unread. Then each chunk's sum is stored. Returns the pages read.
 */
export function digestChunks(
  guest: usize, pageShift: u32, pageCount: u32, chunkShift: u32, first: u32, end: u32,
  secret: usize, zeroHash: u64, terms: usize, sums: usize, stale: usize, zeroMap: usize,
): u32 {
  const size: u32 = 1 << pageShift;
  let read: u32 = 0;
  for (let c = first; c < end; c++) {
    const from = c << chunkShift;
    const to = min<u32>(pageCount, from + (<u32>1 << chunkShift));
    let sum: u64 = 0;
    for (let p = from; p < to; p++) {
      const at = terms + (<usize>p << 3);
      if (stale == 0 || atomic.load<u8>(stale + p) != 0) {
        if (stale != 0) atomic.store<u8>(stale + p, 0);
        let term: u64 = 0;
        if (zeroMap == 0 || load<u8>(zeroMap + p) == 0) {
          term = pageTerm(xxh3(guest + (<usize>p << pageShift), size, secret), zeroHash, p);
          read++;
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

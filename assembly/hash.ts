// xxHash64 (Yann Collet's XXH64), the 64-bit hash for page and region integrity checks.

const PRIME1: u64 = 0x9e3779b185ebca87;
const PRIME2: u64 = 0xc2b2ae3d27d4eb4f;
const PRIME3: u64 = 0x165667b19e3779f9;
const PRIME4: u64 = 0x85ebca77c2b2ae63;
const PRIME5: u64 = 0x27d4eb2f165667c5;

@inline function round(acc: u64, input: u64): u64 {
  return rotl<u64>(acc + input * PRIME2, 31) * PRIME1;
}

@inline function mergeRound(acc: u64, lane: u64): u64 {
  return (acc ^ round(0, lane)) * PRIME1 + PRIME4;
}

/** XXH64 of the `len` bytes at p with the given seed. */
export function xxh64(p: usize, len: u32, seed: u64): u64 {
  const end = p + len;
  let h: u64;
  if (len >= 32) {
    let v1 = seed + PRIME1 + PRIME2;
    let v2 = seed + PRIME2;
    let v3 = seed;
    let v4 = seed - PRIME1;
    const limit = end - 32;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = seed + PRIME5;
  }
  h += <u64>len;
  for (; p + 8 <= end; p += 8) h = rotl<u64>(h ^ round(0, load<u64>(p)), 27) * PRIME1 + PRIME4;
  if (p + 4 <= end) {
    h = rotl<u64>(h ^ (<u64>load<u32>(p) * PRIME1), 23) * PRIME2 + PRIME3;
    p += 4;
  }
  for (; p < end; p++) h = rotl<u64>(h ^ (<u64>load<u8>(p) * PRIME5), 11) * PRIME1;
  h ^= h >> 33;
  h *= PRIME2;
  h ^= h >> 29;
  h *= PRIME3;
  h ^= h >> 32;
  return h;
}

/**
 * The sum (mod 2^64) of XXH64(page, seed = page index) over the pages in `list`: a digest of a set
 * of pages that does not depend on the order they are hashed in, so post-copy can add pages up
 * as they arrive, in any order, on any thread.
 */
export function pageHashSum(base: usize, pageShift: u32, list: usize, n: u32): u64 {
  const size: u32 = 1 << pageShift;
  let sum: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const page = load<u32>(list + (<usize>i << 2));
    sum += xxh64(base + (<usize>page << pageShift), size, page);
  }
  return sum;
}

/** pageHashSum over pages [first, first + count), leaving out those set in `skip` (0: none). */
export function pageHashSumRange(base: usize, pageShift: u32, first: u32, count: u32, skip: usize): u64 {
  const size: u32 = 1 << pageShift;
  let sum: u64 = 0;
  for (let page = first; page < first + count; page++) {
    if (skip != 0 && ((load<u32>(skip + (<usize>(page >>> 5) << 2)) >>> (page & 31)) & 1) != 0) continue;
    sum += xxh64(base + (<usize>page << pageShift), size, page);
  }
  return sum;
}

/**
 * Dirty tracking without a write barrier: hashes pages [first, first + count) and marks dirty
 * (atomically, in `dirty`) each whose XXH64 differs from its hash in `hashes` (one u64 per page,
 * written by the encoder as it sent the page). The stored hashes stay what was sent: a page stays
 * changed until it is sent again. Returns how many pages were marked.
 */
export function pageHashTrack(base: usize, pageShift: u32, first: u32, count: u32, hashes: usize, dirty: usize): u32 {
  const size: u32 = 1 << pageShift;
  let marked: u32 = 0;
  for (let page = first; page < first + count; page++) {
    if (xxh64(base + (<usize>page << pageShift), size, 0) == load<u64>(hashes + (<usize>page << 3))) continue;
    atomic.or<u32>(dirty + (<usize>(page >>> 5) << 2), <u32>1 << (page & 31));
    marked++;
  }
  return marked;
}

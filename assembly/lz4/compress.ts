// LZ4 block compressor for one page (up to 64 KiB) at a time, greedy like the reference
// LZ4_compress_fast at acceleration 1.
import { MINMATCH, LASTLITERALS, MFLIMIT, RUN_MASK } from "./format";

/** 4,096 hash slots: the reference's choice for inputs under 64 KiB. */
const HASH_LOG: u32 = 12;
/** After 2^6 failed probes the search step grows by one, so incompressible pages end fast. */
const SKIP_TRIGGER: u32 = 6;

/** Bytes a compressor table needs: a u32 generation, then one u32 per hash slot. */
export const LZ4_TABLE_BYTES: u32 = 4 + (4 << HASH_LOG);

// A table entry is (generation << 16 | position). Each call bumps the generation, so entries
// left by earlier pages are ignored without clearing 16 KiB per page; the table is cleared
// once every 65,535 calls when the generation wraps.
@inline function nextGeneration(table: usize): u32 {
  let gen = load<u32>(table) + 1;
  if (gen > 0xffff) {
    memory.fill(table + 4, 0, 4 << HASH_LOG);
    gen = 1;
  }
  store<u32>(table, gen);
  return gen << 16;
}

@inline function hashSlot(table: usize, sequence: u32): usize {
  return table + 4 + (<usize>((sequence * 2654435761) >>> (32 - HASH_LOG)) << 2);
}

/** Length of the common run of a and b, reading a no further than limit. */
@inline function commonLength(a: usize, b: usize, limit: usize): u32 {
  const start = a;
  while (a + 8 <= limit) {
    const diff = load<u64>(a) ^ load<u64>(b);
    if (diff != 0) return <u32>(a - start) + (<u32>ctz(diff) >>> 3);
    a += 8;
    b += 8;
  }
  while (a < limit && load<u8>(a) == load<u8>(b)) {
    a++;
    b++;
  }
  return <u32>(a - start);
}

/** Writes the extra bytes of a length whose nibble was 15. */
@inline function writeLength(op: usize, extra: u32): usize {
  while (extra >= 255) {
    store<u8>(op++, 255);
    extra -= 255;
  }
  store<u8>(op++, <u8>extra);
  return op;
}

/**
 * Compresses srcLen (≤ 65,536) bytes at src into an LZ4 block at dst. Returns the block's
 * length, or 0 when it would not fit in dstCap bytes: the caller sends the page another way.
 * `table` is LZ4_TABLE_BYTES of scratch owned by the calling thread, zeroed before first use.
 */
export function lz4Compress(src: usize, srcLen: u32, dst: usize, dstCap: u32, table: usize): u32 {
  const stamp = nextGeneration(table);
  const srcEnd = src + srcLen;
  const opEnd = dst + dstCap;
  let op = dst;
  let anchor = src;
  if (srcLen > MFLIMIT) {
    const matchStartLimit = srcEnd - MFLIMIT;
    const matchEndLimit = srcEnd - LASTLITERALS;
    let ip = src;
    store<u32>(hashSlot(table, load<u32>(ip)), stamp);
    ip++;
    while (true) {
      // Find a 4-byte match, probing faster the longer nothing matches.
      let ref: usize = 0;
      let probes: u32 = 1 << SKIP_TRIGGER;
      let step: u32 = 1;
      let found = false;
      while (ip <= matchStartLimit) {
        const sequence = load<u32>(ip);
        const slot = hashSlot(table, sequence);
        const entry = load<u32>(slot);
        store<u32>(slot, stamp | <u32>(ip - src));
        if ((entry & 0xffff0000) == stamp) {
          ref = src + (entry & 0xffff);
          if (load<u32>(ref) == sequence) {
            found = true;
            break;
          }
        }
        ip += step;
        step = probes++ >>> SKIP_TRIGGER;
      }
      if (!found) break;
      // Extend backwards over literals that match too.
      while (ip > anchor && ref > src && load<u8>(ip - 1) == load<u8>(ref - 1)) {
        ip--;
        ref--;
      }
      const literals = <u32>(ip - anchor);
      const matchExtra = commonLength(ip + MINMATCH, ref + MINMATCH, matchEndLimit);
      // Worst case for this sequence: token, literal length bytes, literals, offset, match length bytes.
      if (op + 1 + literals / 255 + 1 + literals + 2 + matchExtra / 255 + 1 > opEnd) return 0;
      const token = op++;
      if (literals >= RUN_MASK) {
        store<u8>(token, <u8>(RUN_MASK << 4));
        op = writeLength(op, literals - RUN_MASK);
      } else {
        store<u8>(token, <u8>(literals << 4));
      }
      // Short runs: one 16-byte copy; its excess is overwritten by the offset and what follows.
      if (literals <= 16 && anchor + 16 <= srcEnd && op + 16 <= opEnd) v128.store(op, v128.load(anchor));
      else memory.copy(op, anchor, literals);
      op += literals;
      store<u16>(op, <u16>(ip - ref));
      op += 2;
      if (matchExtra >= RUN_MASK) {
        store<u8>(token, load<u8>(token) | <u8>RUN_MASK);
        op = writeLength(op, matchExtra - RUN_MASK);
      } else {
        store<u8>(token, load<u8>(token) | <u8>matchExtra);
      }
      ip += MINMATCH + matchExtra;
      anchor = ip;
      if (ip > matchStartLimit) break;
      // Index a position inside the match, as the reference does: it helps the next search.
      store<u32>(hashSlot(table, load<u32>(ip - 2)), stamp | <u32>(ip - 2 - src));
    }
  }
  const lastLiterals = <u32>(srcEnd - anchor);
  if (op + 1 + (lastLiterals + 255 - RUN_MASK) / 255 + lastLiterals > opEnd) return 0;
  if (lastLiterals >= RUN_MASK) {
    store<u8>(op++, <u8>(RUN_MASK << 4));
    op = writeLength(op, lastLiterals - RUN_MASK);
  } else {
    store<u8>(op++, <u8>(lastLiterals << 4));
  }
  memory.copy(op, anchor, lastLiterals);
  op += lastLiterals;
  return <u32>(op - dst);
}

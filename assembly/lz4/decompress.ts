// Safe LZ4 block decompressor: whatever the input, it reads only [src, src + srcLen) and writes
// only [dst, dst + dstCap), and reports malformed input with a negative error code. It enforces
// the format's end-of-block rules as liblz4's safe decoder does (dstCap is the block's size): the
// last sequence is literals only, a match never writes into the last LASTLITERALS bytes, and
// literals that end within MFLIMIT bytes of the end (or leave too little input for another
// sequence) must be the block's last. A match at offset 0 is refused, as the format says; liblz4
// 1.9.4 copies it from bytes not yet written (`npm run fuzz -- lz4-liblz4` compares the two).
import { MINMATCH, RUN_MASK, LASTLITERALS, MFLIMIT, LZ4_ERR_TRUNCATED, LZ4_ERR_OUTPUT_OVERFLOW, LZ4_ERR_BAD_OFFSET } from "./format";

/** After literals that are not the last: an offset (2), a token (1) and the last literals. */
const NEXT_SEQUENCE_MIN: usize = 2 + 1 + LASTLITERALS;

/** Bytes of slack the shortcut needs: 16 literals + 2 offset bytes in, 14 literals + 18 match out. */
const SHORTCUT_ROOM: usize = 32;

/** Reads the extra bytes of a length; returns -1 (as u32 max) when the input ends first. */
@inline function readLength(ip: usize, ipEnd: usize, base: u32): u64 {
  // Packs (new ip << 32 | length) to return both without allocation.
  let length = base;
  let byte: u32;
  do {
    if (ip >= ipEnd) return <u64>-1;
    byte = load<u8>(ip++);
    length += byte;
  } while (byte == 255 && length < 0x7fffffff);
  return (<u64>ip << 32) | length;
}

/**
 * Decompresses the LZ4 block at src into dst. Returns the number of bytes written, or
 * LZ4_ERR_TRUNCATED / LZ4_ERR_OUTPUT_OVERFLOW / LZ4_ERR_BAD_OFFSET.
 */
export function lz4Decompress(src: usize, srcLen: u32, dst: usize, dstCap: u32): i32 {
  let ip = src;
  const ipEnd = src + srcLen;
  let op = dst;
  const opEnd = dst + dstCap;
  while (true) {
    if (ip >= ipEnd) return LZ4_ERR_TRUNCATED;
    const token = <u32>load<u8>(ip++);
    let literals = token >>> 4;
    // Shortcut for the common short sequence (as the reference decoder does): with room on both
    // sides, copy 16 literal bytes and 18 match bytes unconditionally; the lengths say how many
    // count, and what is written beyond them is overwritten by the next sequence.
    // The room keeps the shortcut's sequence clear of the end rules too (it ends ≥ 5 bytes short).
    if (literals < RUN_MASK && (token & RUN_MASK) < RUN_MASK && ip + SHORTCUT_ROOM <= ipEnd && op + SHORTCUT_ROOM + LASTLITERALS <= opEnd) {
      v128.store(op, v128.load(ip));
      op += literals;
      ip += literals;
      const offset = <usize>load<u16>(ip);
      if (offset >= 8 && offset <= op - dst) {
        ip += 2;
        const ref = op - offset;
        if (offset >= 16) {
          v128.store(op, v128.load(ref));
        } else {
          // 8 ≤ offset < 16: each 8-byte chunk reads only bytes already written.
          store<u64>(op, load<u64>(ref));
          store<u64>(op, load<u64>(ref, 8), 8);
        }
        store<u16>(op, load<u16>(ref, 16), 16);
        op += (token & RUN_MASK) + MINMATCH;
        continue;
      }
      literals = 0; // copied already; the match takes the careful path below
    }
    if (literals == RUN_MASK) {
      const r = readLength(ip, ipEnd, literals);
      if (r == <u64>-1) return LZ4_ERR_TRUNCATED;
      ip = <usize>(r >>> 32);
      literals = <u32>r;
    }
    if (<usize>literals > ipEnd - ip) return LZ4_ERR_TRUNCATED;
    if (<usize>literals > opEnd - op) return LZ4_ERR_OUTPUT_OVERFLOW;
    if (op + literals + MFLIMIT > opEnd || ip + literals + NEXT_SEQUENCE_MIN > ipEnd) {
      // Only the last sequence may end here, and it must use up the input exactly.
      if (ip + literals != ipEnd) return op + literals + MFLIMIT > opEnd ? LZ4_ERR_OUTPUT_OVERFLOW : LZ4_ERR_TRUNCATED;
      memory.copy(op, ip, literals);
      return <i32>(op + literals - dst);
    }
    // Short literal runs: one 16-byte copy beats a bulk-memory call when both sides have room.
    if (literals <= 16 && ip + 16 <= ipEnd && op + 16 <= opEnd) {
      v128.store(op, v128.load(ip));
    } else {
      memory.copy(op, ip, literals);
    }
    ip += literals;
    op += literals;
    const offset = <u32>load<u16>(ip);
    ip += 2;
    if (offset == 0 || <usize>offset > op - dst) return LZ4_ERR_BAD_OFFSET;
    let length = token & RUN_MASK;
    if (length == RUN_MASK) {
      const r = readLength(ip, ipEnd, length);
      if (r == <u64>-1) return LZ4_ERR_TRUNCATED;
      ip = <usize>(r >>> 32);
      length = <u32>r;
    }
    length += MINMATCH;
    // The last LASTLITERALS bytes of a block are literals, never a match's.
    if (<usize>length + LASTLITERALS > opEnd - op) return LZ4_ERR_OUTPUT_OVERFLOW;
    const ref = op - offset;
    if (offset >= 16 && op + length + 16 <= opEnd) {
      // Far enough apart that each 16-byte chunk reads only finished bytes; may write up to
      // 15 bytes past the match, inside the target, to be overwritten by what follows.
      let d = op;
      let s = ref;
      const end = op + length;
      do {
        v128.store(d, v128.load(s));
        d += 16;
        s += 16;
      } while (d < end);
    } else if (offset == 1) {
      memory.fill(op, load<u8>(ref), length);
    } else if (offset >= length) {
      memory.copy(op, ref, length);
    } else {
      // Overlapping match: the output repeats with period `offset`. Copy doubling chunks, each
      // from the pattern's start, so a copy never reads bytes it is writing.
      let done: u32 = 0;
      while (done < length) {
        const chunk = min(offset + done, length - done);
        memory.copy(op + done, ref, chunk);
        done += chunk;
      }
    }
    op += length;
  }
  return 0;
}

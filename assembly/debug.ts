// The debug build (build/core.debug.wasm): every export of the release core, the kernels only
// tests call on their own, and the ABI's constants as globals, so that test/abi.test.ts can check
// src/abi/abi.ts against the values this code was compiled with.
export * from "./index";
export { bitmapClearRange } from "./bitmap";
import { xxh3 as xxh3Mapped } from "./xxh3";
/** XXH3-64 (seed 0) of len > 240 bytes, every byte read. */
export function xxh3(p: usize, len: u32, secret: usize): u64 {
  return xxh3Mapped(p, len, secret, 0, 0, 0);
}
export { deltaEncode, deltaDecode } from "./delta";
export { GROUP_SHIFT } from "./page-digest";
export {
  RECORD_HEADER_BYTES, RECORD_ZERO, RECORD_RAW, RECORD_LZ4, RECORD_DELTA, RECORD_MAX_LENGTH,
  ENC_GUEST, ENC_PAGE_SHIFT, ENC_FLAGS, ENC_LZ4_TABLE, ENC_CACHE_TAGS, ENC_CACHE_DATA, ENC_CACHE_SLOTS, ENC_SNAPSHOT,
  ENC_STATS, STAT_ZERO, STAT_RAW, STAT_LZ4, STAT_DELTA, STAT_UNCHANGED, STAT_CACHE_MISS, STAT_OVERFLOW, STAT_FREE, ENC_STAT_COUNT,
  ENC_RUNS, ENC_RUN_COUNT, ENC_FREE_BITMAP, ENC_RECORDS, ENC_PAGE_HASHES, ENC_ZERO_MAP, ENC_CONTEXT_BYTES,
  ENCODE_LZ4, ENCODE_DELTA, ENCODE_RAW_RUNS, ENCODE_SKIP_ZERO,
  DEC_GUEST, DEC_PAGE_SHIFT, DEC_PAGE_COUNT, DEC_RECEIVED, DEC_ERROR_OFFSET, DEC_EXPECTED, DEC_LIST, DEC_LIST_CAPACITY, DEC_STALE, DEC_CHUNK_SHIFT, DEC_ZERO_MAP, DEC_PAGE_STALE, DEC_CONTEXT_BYTES,
  BATCH_ERR_TRUNCATED_HEADER, BATCH_ERR_PAGE_RANGE, BATCH_ERR_UNKNOWN_TYPE, BATCH_ERR_BAD_LENGTH, BATCH_ERR_TRUNCATED_PAYLOAD,
  BATCH_ERR_UNEXPECTED, BATCH_ERR_TOO_MANY, BATCH_ERR_LZ4, BATCH_ERR_LZ4_SIZE, BATCH_ERR_DELTA,
} from "./records";
export { LZ4_ERR_TRUNCATED, LZ4_ERR_OUTPUT_OVERFLOW, LZ4_ERR_BAD_OFFSET } from "./lz4/format";
export { LZ4_TABLE_BYTES } from "./lz4/compress";
export { DELTA_ERR_TRUNCATED, DELTA_ERR_BAD_RUN, DELTA_ERR_PAST_END } from "./delta";

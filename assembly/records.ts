// Page records, the unit of a page-batch frame (docs/PROTOCOL.md, "Page records").
// Header, 8 bytes little-endian: u32 page index within the region, u32 (type << 24 | length).
// The payload of `length` bytes follows at once; records are byte-packed.

export const RECORD_HEADER_BYTES: u32 = 8;
export const RECORD_ZERO: u32 = 1; // the page is all zero; no payload
export const RECORD_RAW: u32 = 2; // the page as it is; payload = page size
export const RECORD_LZ4: u32 = 3; // an LZ4 block that decodes to exactly one page
export const RECORD_DELTA: u32 = 4; // an XBZRLE delta against the copy the destination holds
export const RECORD_MAX_LENGTH: u32 = 0xffffff;

// Encoder context: a struct in linear memory, written once by the TypeScript layer
// (src/abi/abi.ts mirrors these offsets) so each batch call takes a single pointer.
export const ENC_GUEST: usize = 0; // u32: address of page 0
export const ENC_PAGE_SHIFT: usize = 4; // u32: log2 of the page size
export const ENC_FLAGS: usize = 8; // u32: ENCODE_* bits
export const ENC_LZ4_TABLE: usize = 12; // u32: LZ4_TABLE_BYTES of scratch
export const ENC_CACHE_TAGS: usize = 16; // u32: one u32 per slot, page index + 1 (0 = empty)
export const ENC_CACHE_DATA: usize = 20; // u32: one page per slot
export const ENC_CACHE_SLOTS: usize = 24; // u32
export const ENC_SNAPSHOT: usize = 28; // u32: one page of scratch
// u64 counters, added to by every call and reset by the caller (never overflow within a migration):
export const ENC_STATS: usize = 32;
export const STAT_ZERO: usize = 0;
export const STAT_RAW: usize = 8;
export const STAT_LZ4: usize = 16;
export const STAT_DELTA: usize = 24;
export const STAT_UNCHANGED: usize = 32;
export const STAT_CACHE_MISS: usize = 40;
export const STAT_OVERFLOW: usize = 48;
export const STAT_FREE: usize = 56; // hinted-free pages sent as zero, unread (counted among STAT_ZERO too)
export const ENC_STAT_COUNT: u32 = 8;
export const ENC_RUNS: usize = 96; // u32: room for one (u32 first page, u32 count) per page of a batch
export const ENC_RUN_COUNT: usize = 100; // u32, out: runs written by the last call
export const ENC_FREE_BITMAP: usize = 104; // u32: pages the guest reported free (hints), or 0 for none
export const ENC_RECORDS: usize = 108; // u32, out: records the last call wrote
export const ENC_PAGE_HASHES: usize = 112; // u32: one u64 per page, the XXH64 of each page as encoded (dirty tracking by hash), or 0
// u32: one byte per page, set to 1 when the encoder finds the page zero and to 0 when it finds it
// not (a page hinted free, sent unread, gets 0), or 0 for none: the digest reads no known zero page.
export const ENC_ZERO_MAP: usize = 116;
export const ENC_CONTEXT_BYTES: usize = 128;

export const ENCODE_LZ4: u32 = 1;
export const ENCODE_DELTA: u32 = 2;
/** Raw pages are not copied into the output but listed as runs of consecutive pages, which the
 * caller sends straight from guest memory (ignored with ENCODE_DELTA, whose raw pages come
 * from a snapshot). */
export const ENCODE_RAW_RUNS: u32 = 4;
/** Zero pages are counted but get no record: for a first pass to a destination that starts zeroed. */
export const ENCODE_SKIP_ZERO: u32 = 8;

// Decoder context.
export const DEC_GUEST: usize = 0; // u32: address of page 0
export const DEC_PAGE_SHIFT: usize = 4; // u32
export const DEC_PAGE_COUNT: usize = 8; // u32: pages in the region; records beyond are refused
export const DEC_RECEIVED: usize = 12; // u32: bitmap of pages received, or 0 for none
export const DEC_ERROR_OFFSET: usize = 16; // u32, out: offset of the record that failed
// Post-copy: a bitmap of the pages still expected (0: any page may come, any number of times).
// A record for a page not in it is refused; an applied page leaves it, so a second copy is refused.
export const DEC_EXPECTED: usize = 20;
export const DEC_LIST: usize = 24; // u32: where to write the index of each page applied, or 0
export const DEC_LIST_CAPACITY: usize = 28; // u32: most records one call applies (the list's size, when there is one); 0: no limit
// u32: one byte per digest chunk, set to 1 when a record writes a page of it (the digest hashes
// that chunk again), or 0 for none; DEC_CHUNK_SHIFT: pages per chunk, as a power of two.
export const DEC_STALE: usize = 32;
export const DEC_CHUNK_SHIFT: usize = 36;
// u32: one byte per page, set to 1 when a zero record writes the page and to 0 when any other does, or 0 for none.
export const DEC_ZERO_MAP: usize = 40;
// u32: one byte per page, set to 1 when a record writes the page (its digest term is stale), or 0 for none.
export const DEC_PAGE_STALE: usize = 44;
export const DEC_CONTEXT_BYTES: usize = 48;

// decodeBatch errors (negative; a non-negative result is the number of records applied).
export const BATCH_ERR_TRUNCATED_HEADER: i32 = -10;
export const BATCH_ERR_PAGE_RANGE: i32 = -11;
export const BATCH_ERR_UNKNOWN_TYPE: i32 = -12;
export const BATCH_ERR_BAD_LENGTH: i32 = -13;
export const BATCH_ERR_TRUNCATED_PAYLOAD: i32 = -14;
export const BATCH_ERR_UNEXPECTED: i32 = -15; // a page not expected (DEC_EXPECTED), or sent twice
export const BATCH_ERR_TOO_MANY: i32 = -16; // more records than DEC_LIST holds
export const BATCH_ERR_LZ4: i32 = -20; // -20 + LZ4_ERR_* (-21, -22, -23)
export const BATCH_ERR_LZ4_SIZE: i32 = -24; // the block did not decode to exactly one page
export const BATCH_ERR_DELTA: i32 = -30; // -30 + DELTA_ERR_* (-31, -32, -33)

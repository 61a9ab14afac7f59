// Constants of the LZ4 block format (lz4/doc/lz4_Block_format.md).

/** Shortest match the format can express; a token's match nibble counts from here. */
export const MINMATCH: u32 = 4;
/** The last 5 bytes of a block are always literals. */
export const LASTLITERALS: u32 = 5;
/** The last match must start at least 12 bytes before the end of the block. */
export const MFLIMIT: u32 = 12;
/** A nibble of 15 means "more length bytes follow", each adding up to 255. */
export const RUN_MASK: u32 = 15;
/** Offsets are 16-bit: a match reaches back at most 65,535 bytes. */
export const MAX_DISTANCE: u32 = 65535;

/** Decoder error codes (negative, so a non-negative result is a length). */
export const LZ4_ERR_TRUNCATED: i32 = -1;
export const LZ4_ERR_OUTPUT_OVERFLOW: i32 = -2;
export const LZ4_ERR_BAD_OFFSET: i32 = -3;

// The prefixes of the frames that carry pages (docs/PROTOCOL.md, "Page frames" and "Post-copy"):
// pages, raw-run and switchover. Both sides code them here, field by field. The source writes a
// prefix into memory it reserved in front of the bytes that follow (no copy of the pages); the
// destination reads one into an object it reuses frame after frame, so the hot path allocates
// nothing. Reserved fields must be 0.
import { FRAME_NAMES, FrameType, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES, SWITCHOVER_PREFIX_BYTES } from "./constants.js";
import { WireError } from "./errors.js";

/** pages: u16 region, u16 reserved, u32 round; then page records. */
export interface PagesPrefix {
  region: number;
  round: number;
}

/** raw-run: u16 region, u16 reserved, u32 round, u32 first page, u32 count; then count whole pages. */
export interface RawRunPrefix extends PagesPrefix {
  first: number;
  count: number;
}

const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

function putU16(b: Uint8Array, at: number, x: number): void {
  b[at] = x;
  b[at + 1] = x >>> 8;
}

function putU32(b: Uint8Array, at: number, x: number): void {
  b[at] = x;
  b[at + 1] = x >>> 8;
  b[at + 2] = x >>> 16;
  b[at + 3] = x >>> 24;
}

function checkLength(bytes: Uint8Array, want: number, type: number): void {
  if (bytes.length < want) throw new WireError("badFrame", `${FRAME_NAMES[type]} prefix is ${bytes.length} bytes, not ${want}`);
}

/** Reads u16 region, u16 reserved (must be 0), u32 round. */
function readRegionRound(bytes: Uint8Array, type: number, into: PagesPrefix): void {
  if (u16(bytes, 2) !== 0) throw new WireError("badFrame", `${FRAME_NAMES[type]} frame has reserved bits set`);
  into.region = u16(bytes, 0);
  into.round = u32(bytes, 4);
}

function writeRegionRound(target: Uint8Array, p: PagesPrefix): void {
  putU16(target, 0, p.region);
  putU16(target, 2, 0);
  putU32(target, 4, p.round);
}

/** Writes a pages prefix into the first PAGES_PREFIX_BYTES of `target`. */
export function writePagesPrefix(target: Uint8Array, p: PagesPrefix): void {
  writeRegionRound(target, p);
}

/** Reads a pages prefix into `into` (and returns it). */
export function readPagesPrefix(bytes: Uint8Array, into: PagesPrefix): PagesPrefix {
  checkLength(bytes, PAGES_PREFIX_BYTES, FrameType.pages);
  readRegionRound(bytes, FrameType.pages, into);
  return into;
}

/** Writes a raw-run prefix into the first RAW_RUN_PREFIX_BYTES of `target`. */
export function writeRawRunPrefix(target: Uint8Array, p: RawRunPrefix): void {
  writeRegionRound(target, p);
  putU32(target, 8, p.first);
  putU32(target, 12, p.count);
}

/** Reads a raw-run prefix into `into` (and returns it); the count must be at least 1. */
export function readRawRunPrefix(bytes: Uint8Array, into: RawRunPrefix): RawRunPrefix {
  checkLength(bytes, RAW_RUN_PREFIX_BYTES, FrameType.rawRun);
  readRegionRound(bytes, FrameType.rawRun, into);
  into.first = u32(bytes, 8);
  into.count = u32(bytes, 12);
  if (into.count < 1) throw new WireError("badFrame", "raw-run frame of 0 pages");
  return into;
}

/** switchover: u16 region, u16 reserved; then the region's bitmap of pages still to come. */
export interface Switchover {
  region: number;
  bitmap: Uint8Array;
}

export function encodeSwitchover(s: Switchover): Uint8Array {
  const out = new Uint8Array(SWITCHOVER_PREFIX_BYTES + s.bitmap.length);
  putU16(out, 0, s.region);
  out.set(s.bitmap, SWITCHOVER_PREFIX_BYTES);
  return out;
}

/** Reads a switchover frame; `bitmap` is a view of the payload. */
export function decodeSwitchover(payload: Uint8Array): Switchover {
  checkLength(payload, SWITCHOVER_PREFIX_BYTES, FrameType.switchover);
  if (u16(payload, 2) !== 0) throw new WireError("badFrame", "switchover frame has reserved bits set");
  return { region: u16(payload, 0), bitmap: payload.subarray(SWITCHOVER_PREFIX_BYTES) };
}

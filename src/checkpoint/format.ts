// The checkpoint file's header (docs/CHECKPOINT.md), field by field, checked as strictly as wire
// input: a file that is not one pagewire wrote, or that was cut short, is refused with what is wrong.
import { createHash } from "node:crypto";
import { ByteReader, ByteWriter } from "../wire/bytes.js";
import { MAX_REGIONS } from "../wire/constants.js";
import { PagewireError } from "../errors.js";

export const CHECKPOINT_MAGIC = "PGWRCKPT";
export const CHECKPOINT_VERSION = 2;
/** The header, the region table and the bitmaps take whole multiples of this; so do the pages. */
export const CHECKPOINT_ALIGN = 65536;
const FIXED_BYTES = 96;
const REGION_BYTES = 32;
const SEAL_BYTES = 32;

export const CheckpointFlags = {
  /** A layer: only the pages dirtied since its base are in it (its bitmaps say which). */
  layer: 1,
  /** Set last, once every page, the device state and the digests are written and synced. */
  complete: 2,
} as const;

export interface CheckpointRegion {
  pageCount: number;
  /** Where page 0 of the region is in the file; page p is at dataOffset + p × pageSize. */
  dataOffset: number;
  /**
   * The bitmap of the pages the file holds: a layer's pages (zero or not), or a full checkpoint's
   * pages with data (the others are zero: holes, which a restore need not read).
   */
  bitmapOffset: number;
  /** The digest of the region's memory at the pause (the one a migration proves: a sum of group terms). */
  digest: bigint;
}

export interface CheckpointHeader {
  flags: number;
  pageSize: number;
  /** 16 random bytes naming this checkpoint; a layer names its base's. */
  id: Uint8Array;
  baseId: Uint8Array;
  deviceStateOffset: number;
  deviceStateLength: number;
  /** Wall-clock ms when the guest paused for it. */
  createdAt: number;
  /** Bytes the file must have (its last page, or its device state, ends there). */
  fileLength: number;
  regions: CheckpointRegion[];
}

const align = (n: number, to = CHECKPOINT_ALIGN) => Math.ceil(n / to) * to;
const bad = (path: string, what: string) => new PagewireError("ECHECKPOINT", `${path} ${what}`);

/** Bytes the header takes: its fields, the region table and its seal, rounded up. */
export function headerBytes(regionCount: number): number {
  return align(FIXED_BYTES + REGION_BYTES * regionCount + SEAL_BYTES);
}

/** Where everything goes for regions of these sizes: each region's bitmap and pages after the header, the device state last. */
export function planFile(pageSize: number, pageCounts: number[]): { regions: Omit<CheckpointRegion, "digest">[]; deviceStateOffset: number } {
  let at = headerBytes(pageCounts.length);
  const regions = pageCounts.map((pageCount) => {
    const bitmapOffset = at;
    at = align(at + Math.ceil(pageCount / 8));
    const dataOffset = at;
    at = align(at + pageCount * pageSize);
    return { pageCount, dataOffset, bitmapOffset };
  });
  return { regions, deviceStateOffset: at };
}

const seal = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest();

export function encodeHeader(h: CheckpointHeader): Uint8Array {
  const size = headerBytes(h.regions.length);
  const w = ByteWriter.sized(size);
  w.raw(new TextEncoder().encode(CHECKPOINT_MAGIC)).u32(CHECKPOINT_VERSION).u32(h.flags).u32(size).u32(h.pageSize).u32(h.regions.length).u32(0);
  w.raw(h.id).raw(h.baseId).u64(h.deviceStateOffset).u64(h.deviceStateLength).u64(h.createdAt).u64(h.fileLength);
  for (const r of h.regions) w.u64(r.pageCount).u64(r.dataOffset).u64(r.bitmapOffset).u64(r.digest);
  const sealed = FIXED_BYTES + REGION_BYTES * h.regions.length;
  w.raw(seal(w.bytes.subarray(0, sealed)));
  return w.bytes;
}

/** The fixed part of a header: enough to learn how long the whole header is. */
export const HEADER_PROBE_BYTES = FIXED_BYTES;

/** Checks and reads a header (`bytes` holds at least headerBytes of it); `path` names the file in errors. */
export function decodeHeader(bytes: Uint8Array, path: string): CheckpointHeader {
  if (bytes.length < FIXED_BYTES) throw bad(path, `is ${bytes.length} bytes, too short for a checkpoint header: not a pagewire checkpoint, or cut short`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== CHECKPOINT_MAGIC) throw bad(path, "is not a pagewire checkpoint (no PGWRCKPT at its start)");
  try {
    const r = new ByteReader(bytes, `the header of ${path}`);
    r.raw(8);
    const version = r.u32();
    if (version !== CHECKPOINT_VERSION) throw bad(path, `is a checkpoint of format ${version}; this pagewire reads format ${CHECKPOINT_VERSION}`);
    const flags = r.u32();
    const size = r.u32();
    const pageSize = r.u32();
    const regionCount = r.u32();
    if (r.u32() !== 0) throw bad(path, "has reserved header bits set");
    if ((flags & ~(CheckpointFlags.layer | CheckpointFlags.complete)) !== 0) throw bad(path, `has unknown flags 0x${flags.toString(16)}`);
    if (regionCount < 1 || regionCount > MAX_REGIONS || size !== headerBytes(regionCount)) throw bad(path, `has a header of ${size} bytes for ${regionCount} regions`);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw bad(path, `has page size ${pageSize}`);
    if (bytes.length < size) throw bad(path, `ends inside its header (${bytes.length} of ${size} bytes)`);
    const id = r.raw(16).slice();
    const baseId = r.raw(16).slice();
    const deviceStateOffset = r.safeU64();
    const deviceStateLength = r.safeU64();
    const createdAt = r.safeU64();
    const fileLength = r.safeU64();
    const regions: CheckpointRegion[] = [];
    for (let i = 0; i < regionCount; i++) regions.push({ pageCount: r.safeU64(), dataOffset: r.safeU64(), bitmapOffset: r.safeU64(), digest: r.u64() });
    const sealed = FIXED_BYTES + REGION_BYTES * regionCount;
    if (!Buffer.from(bytes.subarray(sealed, sealed + SEAL_BYTES)).equals(seal(bytes.subarray(0, sealed)))) throw bad(path, "has a header whose seal does not match: it is corrupt");
    const h: CheckpointHeader = { flags, pageSize, id, baseId, deviceStateOffset, deviceStateLength, createdAt, fileLength, regions };
    checkPlan(h, path);
    return h;
  } catch (error) {
    if (error instanceof PagewireError && error.code !== "ECHECKPOINT") throw bad(path, `has a malformed header: ${error.message}`);
    throw error;
  }
}

/** The offsets must be the ones planFile gives: nothing in the file overlaps or points outside it. */
function checkPlan(h: CheckpointHeader, path: string): void {
  const layer = (h.flags & CheckpointFlags.layer) !== 0;
  const plan = planFile(h.pageSize, h.regions.map((r) => r.pageCount));
  const same = plan.deviceStateOffset === h.deviceStateOffset && plan.regions.every((p, i) => p.dataOffset === h.regions[i].dataOffset && p.bitmapOffset === h.regions[i].bitmapOffset);
  if (!same) throw bad(path, "has region or device-state offsets other than its sizes give");
  if (h.fileLength !== h.deviceStateOffset + h.deviceStateLength) throw bad(path, `says it is ${h.fileLength} bytes, but its device state ends at ${h.deviceStateOffset + h.deviceStateLength}`);
  if (!layer && h.baseId.some((b) => b !== 0)) throw bad(path, "is a full checkpoint that names a base");
}

// Restoring a checkpoint (docs/CHECKPOINT.md): a full checkpoint and the layers over it, in order,
// into a guest's regions; the digest is checked before anything may run on them.
import { open, type FileHandle } from "node:fs/promises";
import { DigestPool } from "../core/digest.js";
import { Region } from "../memory/region.js";
import { PagewireError } from "../errors.js";
import { CheckpointFlags, HEADER_PROBE_BYTES, decodeHeader, headerBytes, type CheckpointHeader } from "./format.js";

/** Bytes a restore reads in one request, the pages of one run at most, and requests at once. */
const READ_BYTES = 8 << 20;
const RUN_PAGES = 2048;
/** Holes of a full checkpoint up to this many pages are read through rather than skipped. */
const HOLE_READ_PAGES = 256;
const READS_IN_FLIGHT = 4;

const bad = (message: string) => new PagewireError("ECHECKPOINT", message);
const hex = (id: Uint8Array) => Buffer.from(id).toString("hex").slice(0, 12);

async function readAt(handle: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  for (let done = 0; done < target.length; ) {
    const { bytesRead } = await handle.read(target, done, Math.min(READ_BYTES, target.length - done), position + done);
    if (bytesRead === 0) throw bad(`${path} ends at byte ${position + done}, inside its pages: it was cut short`);
    done += bytesRead;
  }
}

function openCheckpoint(path: string): Promise<FileHandle> {
  return open(path, "r").catch((error: NodeJS.ErrnoException) => Promise.reject(bad(`cannot open ${path} (${error.code ?? error.message})`)));
}

/** Reads and checks a checkpoint file's header: what it holds, and that it is whole. */
export async function readCheckpoint(path: string): Promise<CheckpointHeader> {
  const handle = await openCheckpoint(path);
  try {
    return await headerOf(handle, path);
  } finally {
    await handle.close();
  }
}

async function headerOf(handle: FileHandle, path: string): Promise<CheckpointHeader> {
  const { size } = await handle.stat();
  const probe = new Uint8Array(Math.min(size, HEADER_PROBE_BYTES));
  await handle.read(probe, 0, probe.length, 0);
  const regionCount = probe.length >= 28 ? new DataView(probe.buffer).getUint32(24, true) : 0;
  const bytes = new Uint8Array(Math.min(size, regionCount >= 1 && regionCount <= 256 ? headerBytes(regionCount) : HEADER_PROBE_BYTES));
  await handle.read(bytes, 0, bytes.length, 0);
  const header = decodeHeader(bytes, path);
  if ((header.flags & CheckpointFlags.complete) === 0) throw bad(`${path} was never completed (the checkpoint failed or is still being written)`);
  if (size < header.fileLength) throw bad(`${path} is ${size} bytes, but its header says ${header.fileLength}: it was cut short`);
  return header;
}

export interface Restored {
  regions: Region[];
  deviceState: Uint8Array;
  /** The last file's header: a layer taken of the restored guest names it as its base. */
  header: CheckpointHeader;
}

/**
 * Restores a checkpoint chain, the full checkpoint first, then each layer over the one before,
 * into `regions` (default: new ones of the checkpoint's shape). Rejects, with nothing to resume,
 * a chain out of order, a layer without its base, a file cut short, or memory that does not match
 * the last file's digests (a corrupt page). The regions' dirty logs start clean.
 */
export async function restore(paths: string[], regions?: Region[]): Promise<Restored> {
  if (paths.length === 0) throw new PagewireError("EOPTION", "restore needs a checkpoint file (and any layers over it, in order)");
  const handles: FileHandle[] = [];
  try {
    const headers: CheckpointHeader[] = [];
    for (const path of paths) {
      const handle = await openCheckpoint(path);
      handles.push(handle);
      headers.push(await headerOf(handle, path));
    }
    checkChain(paths, headers);
    const first = headers[0];
    const into = regions ?? first.regions.map((r) => Region.create({ pageSize: first.pageSize, pageCount: r.pageCount }));
    if (into.length !== first.regions.length || into.some((r, i) => r.pageSize !== first.pageSize || r.pageCount !== first.regions[i].pageCount)) {
      throw new PagewireError("EOPTION", `the regions to restore into do not have the checkpoint's shape (${first.regions.length} regions of ${first.pageSize}-byte pages)`);
    }
    for (const [f, header] of headers.entries()) {
      const layer = (header.flags & CheckpointFlags.layer) !== 0;
      for (const [i, r] of header.regions.entries()) {
        const region = into[i];
        const bitmap = new Uint8Array(Math.ceil(r.pageCount / 8));
        await readAt(handles[f], bitmap, r.bitmapOffset, paths[f]);
        // A full checkpoint's pages without data are zero, and a hole reads as zeros: short holes
        // are read through (one long read beats many short ones), long ones zeroed here. A layer's
        // pages not in its bitmap are its base's: only its own runs are read.
        const gap = layer ? 0 : HOLE_READ_PAGES;
        const has = (p: number) => (bitmap[p >>> 3] & (1 << (p & 7))) !== 0;
        const reads: Array<Promise<void>> = [];
        let zeroFrom = 0;
        for (let p = 0; p < r.pageCount; ) {
          if (!has(p)) {
            p++;
            continue;
          }
          let end = p + 1;
          for (let next = end; next < r.pageCount && next - p < RUN_PAGES && next - end <= gap; next++) if (has(next)) end = next + 1;
          if (!layer) region.pages(zeroFrom, p - zeroFrom).fill(0);
          zeroFrom = end;
          const read = readAt(handles[f], region.pages(p, end - p), r.dataOffset + p * header.pageSize, paths[f]);
          read.catch(() => undefined); // awaited below, or with the others
          reads.push(read);
          if (reads.length >= READS_IN_FLIGHT) await reads.shift();
          p = end;
        }
        if (!layer) region.pages(zeroFrom, r.pageCount - zeroFrom).fill(0);
        await Promise.all(reads);
      }
    }
    const last = headers[headers.length - 1];
    const digests = await DigestPool.shared().digest(into);
    digests.forEach((digest, i) => {
      if (digest !== last.regions[i].digest) {
        throw bad(`the memory restored from ${paths.join(" + ")} does not match ${paths[paths.length - 1]}'s digest in region ${i} (${digest.toString(16)}, not ${last.regions[i].digest.toString(16)}): a page is corrupt; nothing may run on it`);
      }
    });
    const deviceState = new Uint8Array(last.deviceStateLength);
    await readAt(handles[handles.length - 1], deviceState, last.deviceStateOffset, paths[paths.length - 1]);
    for (const r of into) r.bytes.fill(0, r.layout.dirtyBitmap, r.layout.dirtyBitmap + r.layout.bitmapBytes);
    return { regions: into, deviceState, header: last };
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

/** The first file is a full checkpoint; every other is a layer over the one before it, of the same guest. */
function checkChain(paths: string[], headers: CheckpointHeader[]): void {
  headers.forEach((h, i) => {
    const layer = (h.flags & CheckpointFlags.layer) !== 0;
    if (i === 0 && layer) throw bad(`${paths[0]} is a layer over checkpoint ${hex(h.baseId)}: restore its base first (give the files in order, the full checkpoint first)`);
    if (i === 0) return;
    const before = headers[i - 1];
    if (!layer) throw bad(`${paths[i]} is a full checkpoint, not a layer over ${paths[i - 1]}: give one full checkpoint, then its layers`);
    if (!Buffer.from(h.baseId).equals(Buffer.from(before.id))) {
      throw bad(`${paths[i]} is a layer over checkpoint ${hex(h.baseId)}, not over ${paths[i - 1]} (${hex(before.id)}): the wrong base, or layers out of order`);
    }
    if (h.pageSize !== before.pageSize || h.regions.length !== before.regions.length || h.regions.some((r, k) => r.pageCount !== before.regions[k].pageCount)) {
      throw bad(`${paths[i]} holds a guest of another shape than ${paths[i - 1]}`);
    }
  });
}

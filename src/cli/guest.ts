// The guest a command-line source migrates: regions of mixed, realistic page contents and, when
// asked, writer threads that dirty pages while the migration runs.
import { Region } from "../memory/region.js";
import { fillPage, mixedClass } from "../memory/content.js";
import { DirtyWriter } from "../workload/dirty-writer.js";
import { PagewireError } from "../errors.js";

/** Regions are at most 2 GiB, so a larger guest spans several, each with its own WASM memory. */
export const REGION_BYTES = 2 ** 31;

export interface GuestOptions {
  size: number;
  pageSize: number;
  /** Bytes of delta cache per region (0: no delta encoding). */
  deltaCacheBytes: number;
  seed: number;
  /** Lanes per region: one per channel lets channel threads encode (default 1). */
  lanes?: number;
}

/** Splits a guest of `size` bytes into regions of at most REGION_BYTES. */
export function regionPages(size: number, pageSize: number): number[] {
  if (size < pageSize || size % pageSize !== 0) throw new PagewireError("EOPTION", `guest size ${size} must be a positive multiple of the ${pageSize}-byte page`);
  const per = REGION_BYTES / pageSize;
  const total = size / pageSize;
  return Array.from({ length: Math.ceil(total / per) }, (_, i) => Math.min(per, total - i * per));
}

export function createGuest(o: GuestOptions, onProgress?: (fraction: number) => void): Region[] {
  const regions = regionPages(o.size, o.pageSize).map((pageCount) => Region.create({ pageSize: o.pageSize, pageCount, deltaCacheBytes: o.deltaCacheBytes, lanes: o.lanes }));
  const total = regions.reduce((s, r) => s + r.pageCount, 0);
  let done = 0;
  for (const region of regions) {
    for (let p = 0; p < region.pageCount; p++) {
      const global = done + p;
      const kind = mixedClass(global, o.seed);
      if (kind !== "zero") fillPage(region.pages(p), kind, global, o.seed);
      if ((global & 0xffff) === 0) onProgress?.(global / total);
    }
    done += region.pageCount;
  }
  onProgress?.(1);
  return regions;
}

/** Writer threads over the guest's regions, sharing `pagesPerSecond` in proportion to their sizes. */
export function startWriters(regions: Region[], pagesPerSecond: number, seed: number): DirtyWriter[] {
  if (pagesPerSecond <= 0) return [];
  const total = regions.reduce((s, r) => s + r.pageCount, 0);
  return regions.map((r, i) => new DirtyWriter(r, (pagesPerSecond * r.pageCount) / total, seed + i));
}

// Guest memory a listener received into and the embedder gave back (Received.release()), kept
// for the next migration of the same shape. A WebAssembly.Memory cannot be freed, only dropped
// for the garbage collector, which seldom runs in a process that allocates little else: without
// reuse, a listener serving migration after migration grew by one guest each time.
import { Core } from "../core/core.js";
import type { Region } from "../memory/region.js";
import type { Offer } from "../wire/messages.js";

/** Guests' worth of memory kept idle at most; older ones are dropped. */
const MAX_IDLE = 2;

export class RegionPool {
  private readonly idle: Region[][] = [];

  /** Idle regions that fit `offer` exactly (page size, pages per region, batch size), zeroed; or undefined. */
  take(offer: Offer): Region[] | undefined {
    const i = this.idle.findIndex(
      (regions) =>
        regions.length === offer.regions.length &&
        regions.every((r, k) => r.pageSize === offer.pageSize && r.pageCount === offer.regions[k] && r.layout.batchPages >= offer.batchPages),
    );
    if (i < 0) return undefined;
    const [regions] = this.idle.splice(i, 1);
    // The protocol assumes a destination that starts zeroed.
    for (const r of regions) new Core(r).zeroGuest();
    return regions;
  }

  /** Keeps `regions` for a later offer; the caller must not touch them again. */
  give(regions: Region[]): void {
    if (this.idle.some((set) => set === regions)) return;
    this.idle.push(regions);
    if (this.idle.length > MAX_IDLE) this.idle.shift();
  }
}

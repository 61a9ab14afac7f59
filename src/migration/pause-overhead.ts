// What a pause costs whatever is left to send, before any pause was measured, so that a downtime
// limit is a promise: the policy's expected downtime adds it to the time the last pages take.
import { Hasher } from "../core/hasher.js";
import type { Region } from "../memory/region.js";
import type { Core } from "../core/core.js";

export class PauseCost {
  /** Bytes per ms the digest's threads hash together. */
  private readonly hashRate: number;
  /** ms of the pause's last pass of dirty tracking by hash, or 0. */
  private readonly trackingMs: number;

  /**
   * Once the last byte is in, the destination hashes the pages whose digest term is stale, with
   * `threads` threads hashing at about the rate this one does on the first chunks of the guest
   * (its other costs, a few messages, are small). With `tracking` (dirty tracking by hash), the
   * pause's last sync hashes every page too: one pass is timed now (its marks are dropped by the
   * first sync).
   */
  constructor(regions: Region[], threads: number, tracking?: Core[]) {
    this.hashRate = new Hasher(regions[0]).measureRate() * threads;
    const start = performance.now();
    for (const core of tracking ?? []) core.trackByHash();
    this.trackingMs = performance.now() - start;
  }

  /** The pause's cost in ms beyond sending, when `hashBytes` of memory are left to hash. */
  ms(hashBytes: number): number {
    return hashBytes / this.hashRate + this.trackingMs;
  }
}

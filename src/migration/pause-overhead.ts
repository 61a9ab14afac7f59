// What a pause costs whatever is left to send, before any pause was measured, so that a downtime
// limit is a promise: the policy's expected downtime adds it to the time the last pages take.
import { Hasher } from "../core/hasher.js";
import type { Region } from "../memory/region.js";
import type { Core } from "../core/core.js";

/**
 * Once the last byte is in, the destination checks the digest of all memory, with `threads`
 * threads hashing at about the rate this one does on the first chunks of the guest (its other
 * costs, a few messages, are small). With `tracking` (dirty tracking by hash), the pause's last
 * sync hashes every page too: one pass is timed now (its marks are dropped by the first sync).
 * Returns ms.
 */
export function estimatePauseOverhead(regions: Region[], threads: number, tracking?: Core[]): number {
  const rate = new Hasher(regions[0]).measureRate();
  const bytes = regions.reduce((sum, r) => sum + r.pageCount * r.pageSize, 0);
  const start = performance.now();
  for (const core of tracking ?? []) core.trackByHash();
  return bytes / (rate * threads) + (performance.now() - start);
}

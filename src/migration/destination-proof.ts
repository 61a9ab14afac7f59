// What proves a migration at the destination: the digest of its memory as received, the group
// terms kept current as pages arrive (DigestTracker, "zeroed": the memory starts so), hashed in
// the background on a tick and, at each round's end, all that the round wrote; or post-copy's sum
// of page hashes. And what it cost the digest threads.
import type { DigestPool, ThreadTime } from "../core/digest.js";
import { DigestTracker } from "../core/digest-tracker.js";
import type { Region } from "../memory/region.js";
import { WireError } from "../wire/errors.js";

/**
 * The digest tracker's tick while pages arrive: a chunk not written for this long is hashed in
 * the background, so the completion hashes only what arrived in the last tick or two (at 20 ms,
 * an idle 1 GiB pause verified in 7-10 ms; at 5 ms, in 2-3 ms).
 */
const DIGEST_TICK_MS = 5;

export class DestinationProof {
  /** The digest threads' time on this migration's proof. */
  readonly threadTime: ThreadTime = { ms: 0 };
  private readonly tracker: DigestTracker;
  private readonly ticks: NodeJS.Timeout;

  constructor(
    private readonly regions: Region[],
    pool: DigestPool,
    postcopyActive: () => boolean,
  ) {
    this.tracker = new DigestTracker(regions, pool, "zeroed", this.threadTime);
    // Post-copy proves itself with page-hash sums: the group terms would be wasted there.
    this.ticks = setInterval(() => postcopyActive() || this.tracker.tick(), DIGEST_TICK_MS);
    this.ticks.unref();
  }

  /** Pages [first, first + count) of region `r` were written (a raw run, or the part of one a broken connection cut). */
  written(r: number, first: number, count: number): void {
    this.tracker.written(r, first, count);
  }

  /**
   * A round ended on every channel, and nothing is written until the next one: what it wrote is
   * hashed now, not a tick or two later or at the completion. Resolves once it is.
   */
  roundEnded(): Promise<void> {
    this.regions.forEach((r, i) => this.tracker.passed(i, 0, r.pageCount, { firstPass: false, frozen: true }));
    return this.tracker.idle();
  }

  /**
   * Checks the source's digests against this memory's (post-copy: against `postcopySums`, the
   * page-hash sums); throws WireError("digest") on a mismatch. Resolves with the bytes of memory
   * it still had to hash.
   */
  async check(theirs: bigint[], postcopySums?: bigint[]): Promise<number> {
    let bytes = 0;
    let mine: bigint[];
    if (postcopySums) mine = postcopySums;
    else ({ digests: mine, bytes } = await this.tracker.digests());
    mine.forEach((digest, i) => {
      if (digest !== theirs[i]) {
        const what = postcopySums ? "page-hash sum" : "memory digest";
        throw new WireError("digest", `${what} mismatch in region ${i}: the source has ${theirs[i].toString(16)}, the destination ${digest.toString(16)}${postcopySums ? "" : "; nothing was resumed"}`);
      }
    });
    return bytes;
  }

  /** The migration ended: no more ticks. */
  stop(): void {
    clearInterval(this.ticks);
  }
}

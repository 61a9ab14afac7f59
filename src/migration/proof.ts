// What proves a source's migration: the digest of its memory at the pause, its group terms kept
// current while the rounds run (DigestTracker), or, with fullDigest or dirty tracking by hash, all
// of it hashed at the pause; post-copy's sum of page hashes. And what that costs the pause.
import type { Core } from "../core/core.js";
import { DigestPool, type ThreadTime } from "../core/digest.js";
import { DigestTracker } from "../core/digest-tracker.js";
import type { Region } from "../memory/region.js";
import { PauseCost } from "./pause-overhead.js";

export class SourceProof {
  readonly pool = DigestPool.shared();
  /**
   * Keeps the group terms of the digest current through the live rounds, so the pause hashes only
   * what changed since; none with fullDigest, nor with dirty tracking by hash, where a page written
   * and written back between two passes leaves no mark (the pause then hashes all memory).
   */
  private readonly tracker: DigestTracker | undefined;
  private cost: PauseCost | undefined;
  /** Bytes of memory hashed for the digest once the final round was sent (the rest went earlier). */
  pauseHashedBytes = 0;
  /** The digest threads' time on this migration's proof. */
  readonly threadTime: ThreadTime = { ms: 0 };

  constructor(
    private readonly regions: Region[],
    options: { fullDigest?: boolean; trackByHash?: boolean },
  ) {
    this.tracker = options.trackByHash || options.fullDigest ? undefined : new DigestTracker(regions, this.pool, "as-read", this.threadTime);
  }

  /** At setup: the digest threads start, and the pause's costs are measured (a tracking pass timed on `tracking`). */
  prepare(tracking?: Core[]): void {
    // A thread that fails to start fails the first digest job, which says so.
    this.pool.warm().catch(() => undefined);
    this.cost = new PauseCost(this.regions, this.pool.threads, tracking);
  }

  /**
   * Before the pause: the hashes of what the rounds have read finish while the guest still runs
   * (at most the batch in flight and the chunks read since), so that the pause waits only for
   * what its final round reads. The wait lets the guest dirty a little more, sent in that round.
   */
  async settled(): Promise<void> {
    await this.tracker?.idle();
  }

  /** The pause's cost in ms beyond sending, were it now: hashing the pages whose digest term is stale. */
  get pauseOverheadMs(): number {
    const all = () => this.regions.reduce((sum, r) => sum + r.pageCount * r.pageSize, 0);
    return this.cost?.ms(this.tracker ? this.tracker.staleBytes() : all()) ?? 0;
  }

  /** After a sync while the guest runs: the chunks quiet since the last one are hashed. */
  synced(): void {
    this.tracker?.tick();
  }

  /** The rounds read pages [from, to) of a region: hashed now, while in the cache (see DigestTracker.passed). */
  passed(region: number, from: number, to: number, how: { firstPass: boolean; frozen: boolean }): void {
    this.tracker?.passed(region, from, to, how);
  }

  /**
   * At the pause, memory now frozen: the proof, to ask for once the final round is sent. Without
   * the tracker (and for post-copy's sums) its computation starts now, in the pool's threads, and
   * is ready by then; with it, the final round hashes what it reads and the proof what is left.
   */
  atPause(postcopy: boolean, fail: (error: Error) => void): () => Promise<bigint[]> {
    let proof: Promise<bigint[]> | undefined;
    const start = () => {
      proof = postcopy ? this.pool.pageSums(this.regions, undefined, this.threadTime) : this.digests();
      proof.catch(fail);
      return proof;
    };
    if (postcopy || !this.tracker) start();
    return () => proof ?? start();
  }

  private async digests(): Promise<bigint[]> {
    if (!this.tracker) {
      this.pauseHashedBytes = this.regions.reduce((sum, r) => sum + r.pageCount * r.pageSize, 0);
      return this.pool.digest(this.regions, this.threadTime);
    }
    const { digests, bytes } = await this.tracker.digests();
    this.pauseHashedBytes = bytes;
    return digests;
  }
}

// The destination side of post-copy (QEMU's postcopy-ram.c, destination half): the switch-over
// bitmaps say which pages are still to come; the guest starts on the pages present, asks for the
// missing ones as it touches them (presence.ts), and each arriving page is accepted exactly once
// and added to the sum of page hashes before the guest may touch it.
import type { Core } from "../core/core.js";
import type { DigestPool, ThreadTime } from "../core/digest.js";
import type { Region } from "../memory/region.js";
import { WireError } from "../wire/errors.js";
import type { Switchover } from "../wire/pages.js";
import type { RawRunPrefix } from "../wire/pages.js";
import { Presence } from "./presence.js";

export class PostcopyDestination {
  /** Per region, the sum of page hashes of the pages as they were at switch-over or arrived. */
  private readonly sums: bigint[];
  private switchovers = 0;
  private presences: Presence[] | undefined;

  constructor(
    private readonly cores: Core[],
    private readonly digests: DigestPool,
    private readonly threadTime: ThreadTime,
    /** Asks the source for pages [page, page + count) of a region. */
    private readonly requestPages: (region: number, page: number, count: number) => void,
  ) {
    this.sums = cores.map(() => 0n);
  }

  private get regions(): Region[] {
    return this.cores.map((c) => c.region);
  }

  /** True once every region's switch-over bitmap is in: from then on pages must be expected. */
  get active(): boolean {
    return this.presences !== undefined;
  }

  get faults(): number {
    return this.presences?.reduce((n, p) => n + p.faults, 0) ?? 0;
  }

  get blockedMs(): number {
    return this.presences?.reduce((n, p) => n + p.blockedMs, 0) ?? 0;
  }

  /**
   * One region's switch-over bitmap, in region order. Its pages are expected (the decoder takes
   * each exactly once); the rest are here already, and their page hashes start the digest.
   */
  switchover({ region: index, bitmap }: Switchover): void {
    const core = this.cores[index];
    if (this.active) throw new WireError("unexpectedFrame", "switch-over after the final round");
    if (index !== this.switchovers || !core) throw new WireError("badFrame", `switch-over names region ${index}; region ${this.switchovers} was next`);
    const { syncBitmap, auxBitmap, bitmapBytes } = core.region.layout;
    if (bitmap.length !== bitmapBytes) throw new WireError("badFrame", `switch-over bitmap of ${bitmap.length} bytes for a region whose bitmap has ${bitmapBytes}`);
    // On a destination the sync bitmap is free: post-copy keeps the pages still expected in it.
    // The aux bitmap (received pages) keeps the missing set as it was, for hashing the pages that
    // were here: marking arrivals there changes nothing, as every arrival was missing.
    core.region.bytes.set(bitmap, syncBitmap);
    core.region.bytes.set(bitmap, auxBitmap);
    core.expectPages(syncBitmap);
    this.switchovers++;
    if (this.switchovers === this.cores.length) {
      this.presences = this.cores.map((c, i) => new Presence(c, (first, count) => this.requestPages(i, first, count)));
    }
  }

  /** Takes a run's pages out of the expected set; refuses a run with any page not expected. */
  acceptRun(run: RawRunPrefix): void {
    const core = this.cores[run.region];
    if (!core.takeRange(core.region.layout.syncBitmap, run.first, run.count)) {
      throw new WireError("badFrame", `post-copy raw-run frame carries pages ${run.first}..${run.first + run.count - 1} of region ${run.region}, which are not all expected (never missing, or sent twice)`);
    }
  }

  /** The first n pages of the region's list arrived (the decoder listed them): hash, then mark present. */
  recordsArrived(region: number, n: number): void {
    this.sums[region] += this.cores[region].sumListed(n);
    this.presences![region].arrivedListed(n);
  }

  runArrived(run: RawRunPrefix): void {
    this.sums[run.region] += this.cores[run.region].sumRange(run.first, run.count);
    this.presences![run.region].arrivedRange(run.first, run.count);
  }

  /** Hashes the pages present (in worker threads), then lets the guest touch them; `resume` starts it. */
  async startGuest(resume: () => void | Promise<void>, failed: () => boolean): Promise<void> {
    const sums = await this.digests.pageSums(this.regions, (r) => r.layout.auxBitmap, this.threadTime);
    sums.forEach((sum, i) => (this.sums[i] += sum));
    if (failed()) return;
    this.presences!.forEach((p, i) => p.begin(this.cores[i].region.layout.syncBitmap));
    await resume();
  }

  /** A raw run cut short by a broken connection: its pages are expected again (none of them counts as arrived). */
  runCut(run: RawRunPrefix): void {
    const core = this.cores[run.region];
    core.markRange(core.region.layout.syncBitmap, run.first, run.count);
  }

  /** Per region, the bitmap of pages still expected (what a reconnected source must send), and the requests the guest is blocked on. */
  stillMissing(): Array<{ bitmap: Uint8Array; pending?: { first: number; count: number } }> {
    return this.cores.map((core, i) => {
      const { syncBitmap, bitmapBytes } = core.region.layout;
      return { bitmap: core.region.bytes.subarray(syncBitmap, syncBitmap + bitmapBytes), pending: this.presences?.[i].pendingRequest() };
    });
  }

  /** Post-copy ends with every expected page in: refuses if one still expected was never sent. */
  checkAllArrived(): void {
    this.cores.forEach((core, i) => {
      const left = core.countBitmap(core.region.layout.syncBitmap);
      if (left > 0) throw new WireError("truncated", `post-copy completed with ${left} pages of region ${i} never sent`);
    });
  }

  /** Post-copy's digest: per region, the sum of page hashes (complete once the guest started and every page is in). */
  pageSums(): bigint[] {
    return this.sums.map((s) => BigInt.asUintN(64, s));
  }

  /** Every page is here: the guest stops checking. */
  finish(): void {
    for (const p of this.presences ?? []) p.finish();
  }

  /** The migration failed: a guest thread blocked on a page, or about to be, traps. */
  lose(): void {
    for (const p of this.presences ?? []) p.lose();
  }
}

// RAM iteration on the source (QEMU's ram.c and the sending half of multifd.c): the dirty syncs,
// the never-sent cursors, the batches a round is made of, and the flow control that keeps them
// moving through the channels: a pool of I/O buffers per region, the lookahead on a capped link,
// and the least-loaded channel for each frame. It knows nothing of policies beyond a round's plan,
// nor of what a channel is (src/transport/page-channel.ts).
import type { Core, SyncResult } from "../core/core.js";
import { IO_HEADROOM, RUN_HEADER_SPACE } from "../memory/layout.js";
import type { PageChannel } from "../transport/page-channel.js";
import type { RoundPlan } from "../policy/policy.js";
import { type FailureLatch, Wakeup } from "./failure.js";
import type { RoundReport, SourceCounters } from "./stats.js";

/**
 * How far ahead of a capped link a round may queue pages. A page is picked, and checked for being
 * dirty again, when its batch is queued: all of a region's I/O buffers queued behind a slow link
 * hold pages picked a long time before they leave (16 MiB is 134 ms at 1 Gbit/s), which defeats
 * xen's skipping. Uncapped, the buffers drain in milliseconds and a shallower queue only slows
 * the round (4 MiB: 1.35 s instead of 1.0 s for 1 GiB over loopback, measured).
 */
const LOOKAHEAD_MS = 20;
/**
 * Longest a round runs without letting the event loop turn. Batches that need no I/O (zero
 * pages sent for the first time write nothing) resolve as microtasks, so without a yield a round
 * over gigabytes of them held the embedder's event loop (and the return path) for its whole
 * length: 450 ms for 2 GiB of zero pages, 32–39 ms with it.
 */
const YIELD_MS = 10;

/** I/O buffers of a region free for encoding; a buffer comes back when its frames are written. */
class BufferPool {
  private readonly free: number[];
  private readonly waiters: Array<() => void> = [];

  constructor(count: number) {
    this.free = Array.from({ length: count }, (_, i) => i);
  }

  async acquire(latch: FailureLatch): Promise<number> {
    for (;;) {
      latch.check();
      const index = this.free.pop();
      if (index !== undefined) return index;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  release(index: number): void {
    this.free.push(index);
    this.waiters.shift()?.();
  }

  /** Wakes every waiter (they re-check for failure). */
  wakeAll(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

export interface RoundSenderOptions {
  /** The link's cap in bytes per second, if any: it bounds the lookahead. */
  bandwidth?: number;
  /**
   * Keep a log of the pages sent in the rounds the destination has not acknowledged, so that
   * after a broken connection they can be sent again (requeueUnacknowledged); a round then waits
   * for the acknowledgement of the round two before it.
   */
  resumable?: boolean;
  /**
   * Every page is at the destination already, as it was at the last sync (a checkpoint layer
   * over its base): none is sent as never sent, and the first sync keeps the dirty marks.
   */
  startSent?: boolean;
  /** Called after each batch is queued (progress reports). */
  onBatch?: () => void;
  /**
   * Called as a round's scan passes pages [from, to) of a region, once it has read them: all of
   * them (`firstPass`: pages never sent), or the dirty ones among them.
   */
  onPassed?: (region: number, from: number, to: number, firstPass: boolean) => void;
}

export class RoundSender {
  private readonly pools: BufferPool[];
  /** Per region, the first page never sent: pages from here on have not been sent yet. */
  private readonly fresh: number[];
  /** Pages each channel carried in the current round. */
  private channelPages: number[];
  /** Bytes queued to the channels and not yet taken by them, and the most allowed. */
  private queuedBytes = 0;
  private readonly lookahead: number;
  private readonly dequeued = new Wakeup();
  /** The round being sent, and what is left of it. */
  round = 0;
  private roundSent = 0;
  remainingPages = 0;
  /** The last round the destination acknowledged (resumable senders wait on it between rounds; every source before its pause). */
  private acknowledged = 0;
  private readonly acks = new Wakeup();

  constructor(
    readonly cores: Core[],
    public channels: PageChannel[],
    private latch: FailureLatch,
    private readonly counters: SourceCounters,
    private readonly options: RoundSenderOptions = {},
  ) {
    this.pools = cores.map((c) => new BufferPool(c.region.layout.ioBuffers.length));
    this.fresh = cores.map((c) => (options.startSent ? c.region.pageCount : 0));
    this.channelPages = channels.map(() => 0);
    this.lookahead = options.bandwidth ? Math.max(1 << 20, (options.bandwidth * LOOKAHEAD_MS) / 1000) : Infinity;
    this.watch(latch);
  }

  private watch(latch: FailureLatch): void {
    latch.onFail(() => {
      for (const p of this.pools) p.wakeAll();
      this.dequeued.wake();
      this.acks.wake();
    });
  }

  /** Carries on over new channels, under a new latch, after the old ones broke (resumption). */
  rebind(channels: PageChannel[], latch: FailureLatch): void {
    this.channels = channels;
    this.channelPages = channels.map(() => 0);
    this.latch = latch;
    this.watch(latch);
  }

  /** The destination applied every frame of `round`: its pages leave the log. */
  roundAcknowledged(round: number): void {
    if (round <= this.acknowledged) return;
    this.acknowledged = round;
    if (this.options.resumable) for (const core of this.cores) core.clearBitmap(core.region.layout.sentBitmaps[round & 1]);
    this.acks.wake();
  }

  /** Resolves once the destination has applied every frame of `round` (or the migration failed). */
  async untilAcknowledged(round: number): Promise<void> {
    while (this.acknowledged < round && !this.latch.error) await this.acks.wait();
  }

  /**
   * After a broken connection: every page sent in a round the destination did not acknowledge
   * goes back into the dirty log, to be sent again (whole, if the caller forgets delta bases);
   * those rounds count as settled. Returns how many pages were requeued.
   */
  requeueUnacknowledged(): number {
    let pages = 0;
    for (const core of this.cores) {
      const { sentBitmaps, dirtyBitmap } = core.region.layout;
      for (const log of sentBitmaps) {
        pages += core.countBitmap(log);
        core.addBitmap(log, dirtyBitmap);
      }
    }
    this.forgetUnacknowledged();
    return pages;
  }

  /** The rounds not acknowledged count as settled, their log emptied (post-copy: the destination says what it lacks). */
  forgetUnacknowledged(): void {
    for (const core of this.cores) for (const log of core.region.layout.sentBitmaps) core.clearBitmap(log);
    this.acknowledged = this.round;
  }

  /** Bytes the channels have sent. */
  get transferred(): number {
    let sum = 0;
    for (const c of this.channels) sum += c.sent;
    return sum;
  }

  get totalPages(): number {
    return this.cores.reduce((sum, c) => sum + c.region.pageCount, 0);
  }

  /** Pages never sent yet. */
  get unsentPages(): number {
    return this.cores.reduce((sum, c, i) => sum + c.region.pageCount - this.fresh[i], 0);
  }

  /**
   * A dirty sync of every region: the dirty log moves into the sync bitmaps, leaving out pages
   * never sent (they go, current, when their turn comes). The first sync starts dirty logging:
   * nothing has been sent, so every mark from before is dropped.
   */
  sync(): SyncResult {
    let taken = 0;
    let owed = 0;
    this.cores.forEach((core, i) => {
      const r = core.sync(this.fresh[i]);
      taken += r.taken;
      owed += r.owed;
    });
    return { taken, owed };
  }

  /**
   * Post-copy's hand-over: moves into each region's aux bitmap every page the destination lacks
   * (dirty since sent, or never sent), leaving nothing owed; returns how many per region.
   */
  takeMissing(): number[] {
    return this.cores.map((core, i) => {
      const { syncBitmap, auxBitmap, pageCount } = core.region.layout;
      core.moveBitmap(syncBitmap, auxBitmap);
      core.markRange(auxBitmap, this.fresh[i], pageCount - this.fresh[i]);
      this.fresh[i] = pageCount;
      return core.countBitmap(auxBitmap);
    });
  }

  /**
   * Sends one round: the `dirtyPages` of the sync bitmaps, interleaved batch by batch with the
   * plan's share of pages never sent (all of them when paused), then a round-end on every channel.
   */
  async sendRound(round: number, plan: RoundPlan, paused: boolean, dirtyPages: number): Promise<RoundReport> {
    if (plan.holdMs && !paused) {
      await new Promise((resolve) => setTimeout(resolve, plan.holdMs));
      this.latch.check();
    }
    const freshBudget = paused ? this.unsentPages : Math.min(plan.freshPages ?? Infinity, this.unsentPages);
    const dirty = { region: 0, from: 0 };
    const skipRedirtied = !paused && plan.skipRedirtied === true;
    let fresh = freshBudget;
    let lastYield = performance.now();
    return this.runRound(round, paused ? "paused" : "live", dirtyPages + freshBudget, async () => {
      for (;;) {
        // Checked before each wait: a failure that came first (even from a progress listener
        // inside the last sendBatch) has already woken `dequeued`, and its writes never complete.
        while (this.queuedBytes > this.lookahead) {
          this.latch.check();
          await this.dequeued.wait();
        }
        this.latch.check();
        // With writes in flight the buffer pool makes the loop wait on I/O, which turns the event
        // loop anyway; only a run of batches that wrote nothing needs the explicit turn.
        if (this.queuedBytes === 0 && performance.now() - lastYield > YIELD_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
        const sentDirty = await this.sendDirtyBatch(dirty, skipRedirtied);
        if (fresh > 0) fresh -= await this.sendFreshBatch(fresh);
        if (!sentDirty && fresh <= 0) return;
      }
    });
  }

  /** Runs `send`, then ends the round on every channel; reports what the round sent. */
  async runRound(round: number, phase: RoundReport["phase"], owed: number, send: () => Promise<void>): Promise<RoundReport> {
    // The log holds two rounds: this one may start once the one two before it is acknowledged.
    while (this.options.resumable && this.acknowledged < round - 2) {
      this.latch.check();
      await this.acks.wait();
    }
    const start = performance.now();
    const bytesBefore = this.transferred;
    this.round = round;
    this.roundSent = 0;
    this.remainingPages = owed;
    this.channelPages.fill(0);
    await send();
    const final = phase === "paused" || phase === "postcopy";
    await Promise.all(this.channels.map((c, i) => c.endRound({ round, pages: this.channelPages[i], final })));
    this.latch.check();
    return { round, phase, "dirty-pages": owed, pages: this.roundSent, bytes: this.transferred - bytesBefore, ms: performance.now() - start };
  }

  /**
   * Sends the next batch of dirty pages at `at` (a region and a page to scan from), optionally
   * leaving out pages already dirty again; a region's sync bitmap is cleared as it is scanned.
   * Returns false when every region has been scanned.
   */
  private async sendDirtyBatch(at: { region: number; from: number }, skipRedirtied: boolean): Promise<boolean> {
    while (at.region < this.cores.length) {
      const i = at.region;
      const core = this.cores[i];
      const { syncBitmap, dirtyBitmap, pageCount } = core.region.layout;
      const from = at.from;
      const found = core.take(syncBitmap, at.from);
      at.from = core.scanEnd;
      if (at.from >= pageCount) {
        at.region++;
        at.from = 0;
      }
      const n = skipRedirtied && found > 0 ? core.dropMarked(found, dirtyBitmap) : found;
      this.counters.skippedPages += found - n;
      const to = at.region === i ? at.from : pageCount;
      if (n > 0) {
        await this.sendBatch(i, n, false, () => this.options.onPassed?.(i, from, to, false));
        return true;
      }
      this.options.onPassed?.(i, from, to, false);
    }
    return false;
  }

  /** Sends up to a batch of pages never sent, in address order; returns how many. */
  private async sendFreshBatch(budget: number): Promise<number> {
    const i = this.fresh.findIndex((first, r) => first < this.cores[r].region.pageCount);
    if (i < 0) return budget;
    const core = this.cores[i];
    const { pageCount, batchPages } = core.region.layout;
    const first = this.fresh[i];
    const n = Math.min(batchPages, pageCount - first, budget);
    for (let k = 0; k < n; k++) core.list[k] = first + k;
    this.fresh[i] = first + n;
    await this.sendBatch(i, n, true, () => this.options.onPassed?.(i, first, first + n, true));
    return n;
  }

  /**
   * The channel with the least data waiting; among channels that encode on threads of their own,
   * when there are any (channel 0 then carries the control frames only, as QEMU's main channel:
   * whatever it carried, this thread would encode).
   */
  private pickChannel(): number {
    const encoders = this.channels.some((c) => c.encodeBatch);
    let best = -1;
    for (let c = 0; c < this.channels.length; c++) {
      if (encoders && !this.channels[c].encodeBatch) continue;
      if (best < 0 || this.channels[c].backlog < this.channels[best].backlog) best = c;
    }
    return best;
  }

  /**
   * Encodes the first n pages of region i's list into a free I/O buffer and sends it through the
   * least-loaded channel: the records in one piece, each run of raw pages straight from guest
   * memory. Pages never sent before (`fresh`) get no record when zero: the destination starts
   * zeroed. Returns once the batch is queued, with a promise of its being written; the buffer is
   * released then. `onRead` is called once the encoder has read the pages: at once, or, when a
   * channel's thread encodes, once it has (the digest hashes them then, with their zero pages known).
   */
  async sendBatch(i: number, n: number, fresh: boolean, onRead?: () => void): Promise<{ written: Promise<void> }> {
    const core = this.cores[i];
    const { region } = core;
    const { layout } = region;
    const latch = this.latch;
    const buffer = await this.pools[i].acquire(latch);
    const base = layout.ioBuffers[buffer];
    if (this.options.resumable) core.markListed(n, layout.sentBitmaps[this.round & 1]);
    const c = this.pickChannel();
    const channel = this.channels[c];
    let write: Promise<void>;
    let queued: number;
    if (channel.encodeBatch && !core.encoding.delta) {
      // The channel's thread encodes: what the batch held is known once it is written.
      queued = n * region.pageSize;
      const round = this.round;
      write = channel.encodeBatch({ region: i, round, pages: core.list.slice(0, n), fresh, encoding: core.encoding, buffer: base }).then((e) => {
        const sent = e.records + e.rawPages;
        this.channelPages[c] += sent;
        this.counters.pages += sent;
        if (this.round === round) this.roundSent += sent;
        onRead?.();
      });
    } else {
      core.skipZero(fresh);
      const bytes = core.encode(n, base + IO_HEADROOM);
      onRead?.();
      const records = core.encodedRecords;
      const runs = core.runs();
      let rawPages = 0;
      for (let r = 1; r < runs.length; r += 2) rawPages += runs[r];
      const sent = rawPages + records;
      this.channelPages[c] += sent;
      write = channel.sendBatch({
        region: i,
        round: this.round,
        records: region.bytes.subarray(base + IO_HEADROOM, base + IO_HEADROOM + bytes),
        recordCount: records,
        runs,
        guest: region.pages(0, region.pageCount),
        pageSize: region.pageSize,
        framing: region.bytes.subarray(base + layout.runHeadersOffset, base + layout.runHeadersOffset + layout.batchPages * RUN_HEADER_SPACE),
        framingStride: RUN_HEADER_SPACE,
      });
      this.counters.pages += sent;
      this.roundSent += sent;
      queued = rawPages * region.pageSize + bytes;
    }
    this.remainingPages = Math.max(0, this.remainingPages - n);
    this.queuedBytes += queued;
    // The buffer comes back however the write ends: after a broken connection it serves the next.
    const written = write.finally(() => {
      this.pools[i].release(buffer);
      this.queuedBytes -= queued;
      this.dequeued.wake();
    });
    written.catch((error: Error) => latch.fail(error));
    this.options.onBatch?.();
    return { written };
  }
}

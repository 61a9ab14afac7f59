// The source side of a migration: rounds of dirty pages over several TCP channels, then the
// pause, the last pages, the device state and the digest. The source's guest stays intact and
// authoritative until the destination confirms the digest; any failure before that resumes it.
import { EventEmitter } from "node:events";
import { Core } from "../core/core.js";
import type { Region } from "../memory/region.js";
import { IO_HEADROOM } from "../memory/layout.js";
import { Connection } from "../transport/connection.js";
import { connectChannel } from "../transport/handshake.js";
import { TokenBucket } from "../transport/token-bucket.js";
import {
  FrameType, FRAME_HEADER_BYTES, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES, DEVICE_STATE_PIECE, MAX_DEVICE_STATE,
  Encoding, MAX_CHANNELS, FRAME_NAMES, SWITCHOVER_PREFIX_BYTES,
} from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import { newMigrationId } from "../wire/auth.js";
import { encodeRoundEnd, encodeDeviceStatePiece, encodeComplete, decodeAck, decodeDone, decodeFailure, decodePageRequest, type PageRequest } from "../wire/messages.js";
import { type Policy, type RoundStats, type RoundPlan, type Decision, expectedDowntimeMs } from "../policy/policy.js";
import { precopy } from "../policy/precopy.js";
import { PagewireError } from "../errors.js";
import { EncodeTotals, type MigrationStats, type RoundReport } from "./stats.js";
import { DigestPool } from "../core/digest.js";

export interface SourceHooks {
  /** Stops the guest at a safe point (no write half done). Called once, when iterating stops. */
  pause?(): void | Promise<void>;
  /** Lets the guest run on here again: the migration failed after pause(). */
  resume?(): void | Promise<void>;
  /** The embedder's CPU and device state, taken after pause(); at most 256 MiB. */
  deviceState?(): Uint8Array | Promise<Uint8Array>;
  /** Called before every dirty sync (the paused one too): where an ExternalMemory flushes. */
  beforeSync?(): void;
  /**
   * Slow the guest down: its threads should sleep this fraction of the time (0 to 0.99; 0 to run
   * freely again). Policies with auto-converge call it when the guest dirties faster than the link sends.
   */
  throttle?(fraction: number): void;
}

export interface SourceOptions {
  host: string;
  port: number;
  /** Shared with the destination; never sent. Default: empty (no protection). */
  secret?: string;
  /** TCP channels to spread pages over (1 to 16). Default 1. */
  channels?: number;
  /** When to stop iterating. Default precopy() with a 300 ms downtime limit. */
  policy?: Policy;
  /** LZ4-compress pages that shrink. */
  compress?: boolean;
  /** Send re-sent pages as deltas (the regions need a delta cache: deltaCacheBytes). */
  delta?: boolean;
  /**
   * Use free-page hints: pages the guest marked in the region's free bitmap travel as zero,
   * unread, and are zeroed here at the pause (the guest said their content does not matter).
   */
  freePageHints?: boolean;
  /** Cap on the rate, in bytes per second, over all channels (emulates a slower link). */
  bandwidth?: number;
  hooks?: SourceHooks;
  /** Aborting cancels the migration: the destination is told, the guest resumes here. */
  signal?: AbortSignal;
  /** How long to wait for the destination to answer during setup, ms. Default 30,000. */
  timeoutMs?: number;
}

export interface Progress {
  phase: "live" | "paused" | "postcopy";
  round: number;
  /** Pages still to send in this round. */
  remainingPages: number;
  sentPages: number;
  transferred: number;
  /** Megabytes per second over the last progress interval. */
  rate: number;
  /** How long the pause would last if it began now, at the measured bandwidth. */
  expectedDowntimeMs: number;
}

const PROGRESS_INTERVAL_MS = 100;
/**
 * How far ahead of a capped link a round may queue pages. A page is picked, and checked for being
 * dirty again, when its batch is queued: all of a region's I/O buffers queued behind a slow link
 * hold pages picked a long time before they leave (16 MiB is 134 ms at 1 Gbit/s), which defeats
 * xen's skipping. Uncapped, the buffers drain in milliseconds and a shallower queue only slows
 * the round (4 MiB: 1.35 s instead of 1.0 s for 1 GiB over loopback, measured).
 */
const LOOKAHEAD_MS = 20;
/**
 * Background batches in flight during post-copy: few, so that a page the destination's guest is
 * blocked on does not queue behind megabytes of pushed pages in the socket.
 */
const POSTCOPY_PUSH_DEPTH = 2;

/** A promise to wait on until someone calls wake(); each wait() gets a fresh one. */
class Wakeup {
  private waiters: Array<() => void> = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** I/O buffers of a region free for encoding; a buffer comes back when its frames are written. */
class BufferPool {
  private readonly free: number[];
  private readonly waiters: Array<() => void> = [];

  constructor(count: number) {
    this.free = Array.from({ length: count }, (_, i) => i);
  }

  async acquire(check: () => void): Promise<number> {
    for (;;) {
      check();
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

export class Source extends EventEmitter {
  private readonly cores: Core[];
  private readonly pools: BufferPool[];
  private readonly policy: Policy;
  private readonly totals = new EncodeTotals();
  private readonly digests = new DigestPool();
  private channels: Connection[] = [];
  private failure: Error | undefined;
  private round = 0;
  private paused = false;
  /** Set once the destination may have resumed the guest (post-copy): from then on a failure loses it. */
  private switchedOver = false;
  /** Per region, the first page never sent: pages from here on have not been sent yet. */
  private readonly fresh: number[];
  /** Pages each channel carried in the current round. */
  private channelPages: number[] = [];
  private sentPages = 0;
  private skippedPages = 0;
  private roundSent = 0;
  private roundRemaining = 0;
  private dataStart = 0;
  private lastProgress = { at: 0, bytes: 0 };
  private throttled = 0;
  private maxThrottle = 0;
  private readonly requests: PageRequest[] = [];
  private readonly requestArrived = new Wakeup();
  /** Bytes queued to the channels and not yet taken by their sockets, and the most allowed. */
  private queuedBytes = 0;
  private readonly lookahead: number;
  private readonly dequeued = new Wakeup();
  private postcopyRequests = 0;
  private postcopyRequestedPages = 0;
  private resolveDone: ((verifyMs: number) => void) | undefined;
  private rejectDone: ((error: Error) => void) | undefined;
  private digestsAtPause: Promise<bigint[]> | undefined;
  /** When the destination acknowledged the switch-over round: it resumes the guest then. */
  private switchoverAcked = 0;

  constructor(
    readonly regions: Region[],
    readonly options: SourceOptions,
  ) {
    super();
    if (regions.length === 0) throw new PagewireError("EOPTION", "a migration needs at least one region");
    const pageSize = regions[0].pageSize;
    if (regions.some((r) => r.pageSize !== pageSize)) throw new PagewireError("EOPTION", "all regions of a guest must have the same page size");
    const channels = options.channels ?? 1;
    if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS) throw new PagewireError("EOPTION", `channels must be 1 to ${MAX_CHANNELS}, not ${channels}`);
    this.policy = options.policy ?? precopy();
    this.cores = regions.map((r) => new Core(r));
    this.pools = regions.map((r) => new BufferPool(r.layout.ioBuffers.length));
    this.fresh = regions.map(() => 0);
    this.lookahead = options.bandwidth ? Math.max(1 << 20, (options.bandwidth * LOOKAHEAD_MS) / 1000) : Infinity;
  }

  private get transferred(): number {
    return this.channels.reduce((sum, c) => sum + c.sent, 0);
  }

  private get totalPages(): number {
    return this.regions.reduce((sum, r) => sum + r.pageCount, 0);
  }

  private get unsentPages(): number {
    return this.regions.reduce((sum, r, i) => sum + r.pageCount - this.fresh[i], 0);
  }

  /** Throws the first failure, so every loop stops at its next step. */
  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = this.switchedOver && !(error instanceof PagewireError && error.code === "EPOSTCOPY") ? postcopyLost(error) : error;
    const wire = error instanceof WireError ? error : new WireError("cancelled", error.message);
    for (const c of this.channels) c.fail(wire, true);
    for (const p of this.pools) p.wakeAll();
    this.dequeued.wake();
    this.requestArrived.wake();
    this.rejectDone?.(this.failure);
  }

  /** Runs the migration to the end. Resolves with statistics once the destination confirmed the digest. */
  async migrate(): Promise<MigrationStats> {
    const start = performance.now();
    const onAbort = () => this.fail(new PagewireError("EABORTED", "the migration was cancelled"));
    this.options.signal?.addEventListener("abort", onAbort);
    const done = new Promise<number>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    done.catch(() => undefined);
    let pauseAt = 0;
    try {
      if (this.options.signal?.aborted) onAbort();
      this.check();
      this.digests.warm();
      await this.connect();
      const setupTime = performance.now() - start;
      const setupBytes = this.transferred;
      this.dataStart = performance.now();
      this.lastProgress = { at: this.dataStart, bytes: 0 };
      for (const core of this.cores) core.setEncoding({ lz4: this.options.compress, delta: this.options.delta, freePageHints: this.options.freePageHints, rawRuns: true });
      // Start dirty logging now: marks from before the migration are dropped, since every page is sent at least once.
      for (const core of this.cores) {
        core.syncDirty();
        core.clearBitmap(core.region.layout.syncBitmap);
      }
      const rounds: RoundReport[] = [];
      let lastSync = performance.now();
      let dirtyRate = 0;
      let decision: Decision = this.policy.decide(this.roundStats({ dirtyPages: 0, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 }));
      let dirty = { pages: 0, taken: 0 };
      while (decision.action === "continue") {
        this.setThrottle(decision.plan.throttle ?? 0);
        const report = await this.sendRound(this.round + 1, decision.plan, false, dirty.pages);
        rounds.push(report);
        dirty = this.syncAll();
        const now = performance.now();
        dirtyRate = (dirty.taken * 1000) / Math.max(1, now - lastSync);
        lastSync = now;
        const stats = this.roundStats({ dirtyPages: dirty.pages, dirtiedPages: dirty.taken, dirtyRate, lastRoundBytes: report.bytes });
        decision = this.policy.decide(stats);
        this.emitProgress(true, dirty.pages + stats.unsentPages);
      }
      const stopReason = decision.reason;
      const precopyBytes = this.transferred - setupBytes;
      this.setThrottle(0);
      const postcopy = decision.action === "postcopy";
      pauseAt = await this.pause(postcopy);
      const last = this.syncAll();
      let verifyTime: number;
      let postcopyTime = 0;
      if (postcopy) {
        const switchAt = performance.now();
        rounds.push(...(await this.switchOver()));
        verifyTime = await done;
        postcopyTime = performance.now() - switchAt;
      } else {
        rounds.push(await this.sendRound(this.round + 1, {}, true, last.pages));
        await this.sendDeviceState();
        const digests = await this.digestsAtPause!;
        this.check();
        await this.channels[0].send(FrameType.complete, encodeComplete({ digests }));
        verifyTime = await done;
      }
      const end = performance.now();
      for (const c of this.channels) c.close();
      const totalTime = end - start;
      const transferred = this.transferred;
      // Sent from the pause on: during the downtime, or after the switch-over under post-copy.
      const pausedBytes = transferred - setupBytes - precopyBytes;
      const pageSize = this.regions[0].pageSize;
      return {
        status: "completed",
        policy: { name: this.policy.name, parameters: this.policy.parameters, "stop-reason": stopReason },
        "total-time": totalTime,
        "setup-time": setupTime,
        downtime: (postcopy ? this.switchoverAcked : end) - pauseAt,
        transferred,
        "precopy-bytes": precopyBytes,
        "downtime-bytes": postcopy ? 0 : pausedBytes,
        "page-size": pageSize,
        "total-pages": this.totalPages,
        duplicate: this.totals.zero,
        "free-pages": this.totals.free,
        normal: this.totals.raw,
        "normal-bytes": this.totals.raw * pageSize,
        "lz4-pages": this.totals.lz4,
        "unchanged-pages": this.totals.unchanged,
        xbzrle: { pages: this.totals.delta, "cache-miss": this.totals.cacheMiss, overflow: this.totals.overflow },
        "skipped-pages": this.skippedPages,
        "cpu-throttle-percentage": Math.round(this.maxThrottle * 100),
        "postcopy-requests": this.postcopyRequests,
        "postcopy-requested-pages": this.postcopyRequestedPages,
        "postcopy-time": postcopyTime,
        "postcopy-bytes": postcopy ? pausedBytes : 0,
        "dirty-sync-count": rounds.filter((r) => r.phase === "live").length,
        "dirty-pages-rate": Math.round(dirtyRate),
        mbps: (transferred * 8) / 1e6 / ((end - this.dataStart) / 1000),
        "pages-per-second": (this.sentPages * 1000) / (end - this.dataStart),
        channels: this.channels.length,
        rounds,
        "verify-time": verifyTime,
      };
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      this.setThrottle(0);
      if (this.paused && !this.switchedOver && this.options.hooks?.resume) await this.options.hooks.resume();
      this.paused = false;
      throw this.failure;
    } finally {
      this.options.signal?.removeEventListener("abort", onAbort);
      this.digests.close();
    }
  }

  private async connect(): Promise<void> {
    const o = this.options;
    const migrationId = newMigrationId();
    const count = o.channels ?? 1;
    const bucket = o.bandwidth ? new TokenBucket(o.bandwidth) : undefined;
    const target = { host: o.host, port: o.port, secret: o.secret ?? "", migrationId, channelCount: count, bucket, timeoutMs: o.timeoutMs };
    const offer = {
      pageSize: this.regions[0].pageSize,
      encodings: (o.compress ? Encoding.lz4 : 0) | (o.delta ? Encoding.delta : 0),
      batchPages: Math.max(...this.regions.map((r) => r.layout.batchPages)),
      regions: this.regions.map((r) => r.pageCount),
    };
    const first = await connectChannel({ ...target, channelIndex: 0, offer });
    this.channels = [first];
    const others = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => connectChannel({ ...target, channelIndex: i + 1 })));
    for (const o of others) if (o.status === "fulfilled") this.channels.push(o.value);
    const refused = others.find((o) => o.status === "rejected");
    for (const c of this.channels) c.onFailure((error) => this.fail(error));
    if (refused) throw (refused as PromiseRejectedResult).reason;
    this.channelPages = this.channels.map(() => 0);
    void this.readReturnPath(first);
  }

  /** Frames from the destination on channel 0: acknowledgements, page requests, the final confirmation, errors. */
  private async readReturnPath(conn: Connection): Promise<void> {
    try {
      for (;;) {
        const { type, payload } = await conn.nextFrame(0);
        if (type === FrameType.ack) {
          const { round } = decodeAck(payload);
          if (this.switchedOver && this.switchoverAcked === 0) this.switchoverAcked = performance.now();
          this.emit("ack", round);
        } else if (type === FrameType.pageRequest && this.switchedOver) {
          this.acceptRequest(decodePageRequest(payload));
        } else if (type === FrameType.done) {
          this.resolveDone?.(decodeDone(payload).verifyMs);
          return;
        } else if (type === FrameType.error || type === FrameType.refuse) {
          const f = decodeFailure(payload, "destination's error");
          throw new WireError(f.reason, `the destination failed: ${f.message}`);
        } else {
          throw new WireError("unexpectedFrame", `the destination sent a ${FRAME_NAMES[type]} frame${type === FrameType.pageRequest ? " before post-copy began" : ""}`);
        }
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private acceptRequest(request: PageRequest): void {
    const region = this.regions[request.region];
    if (!region || request.count < 1 || request.page + request.count > region.pageCount) {
      throw new WireError("badFrame", `page request for pages ${request.page}+${request.count} of region ${request.region}, which the guest does not have`);
    }
    this.postcopyRequests++;
    this.postcopyRequestedPages += request.count;
    this.requests.push(request);
    this.requestArrived.wake();
  }

  /**
   * Pauses the guest and starts hashing its memory, now frozen, in worker threads: the digest is
   * ready by the time the last round has been sent instead of after it. Post-copy's digest is
   * the sum of page hashes, which the destination can add up as pages arrive.
   */
  private async pause(postcopy: boolean): Promise<number> {
    const at = performance.now();
    await this.options.hooks?.pause?.();
    this.paused = true;
    this.check();
    if (this.options.freePageHints) for (const core of this.cores) core.zeroFreePages();
    this.digestsAtPause = postcopy ? this.digests.pageSums(this.cores) : this.digests.digest(this.cores);
    this.digestsAtPause.catch((error) => this.fail(error));
    return at;
  }

  private setThrottle(fraction: number): void {
    if (fraction === this.throttled) return;
    this.throttled = fraction;
    this.maxThrottle = Math.max(this.maxThrottle, fraction);
    this.options.hooks?.throttle?.(fraction);
  }

  /**
   * Moves every region's dirty log into its sync bitmap, leaving out pages never sent (they go,
   * current, when their turn comes); returns the bits taken and the pages now owed again.
   */
  private syncAll(): { taken: number; pages: number } {
    this.options.hooks?.beforeSync?.();
    let taken = 0;
    let pages = 0;
    this.cores.forEach((core, i) => {
      taken += core.syncDirty();
      const { syncBitmap, bitmapBytes, pageCount } = core.region.layout;
      core.wasm.bitmapClearRange(syncBitmap, this.fresh[i], pageCount - this.fresh[i]);
      pages += core.wasm.bitmapCount(syncBitmap, bitmapBytes);
    });
    return { taken, pages };
  }

  private roundStats(s: Pick<RoundStats, "dirtyPages" | "dirtiedPages" | "dirtyRate" | "lastRoundBytes">): RoundStats {
    const elapsed = performance.now() - this.dataStart;
    return {
      ...s,
      round: this.round,
      unsentPages: this.unsentPages,
      pageSize: this.regions[0].pageSize,
      totalPages: this.totalPages,
      sentPages: this.sentPages,
      sentBytes: this.transferred,
      bandwidth: elapsed > 0 ? (this.transferred * 1000) / elapsed : 0,
      elapsedMs: elapsed,
    };
  }

  /**
   * Sends one round: the `dirtyPages` of the sync bitmaps, interleaved batch by batch with the
   * plan's share of pages never sent, then a round-end marker on every channel.
   */
  private async sendRound(round: number, plan: RoundPlan, paused: boolean, dirtyPages: number): Promise<RoundReport> {
    const freshBudget = paused ? this.unsentPages : Math.min(plan.freshPages ?? Infinity, this.unsentPages);
    const dirty = { region: 0, from: 0 };
    let fresh = freshBudget;
    return this.runRound(round, paused ? "paused" : "live", dirtyPages + freshBudget, async () => {
      for (;;) {
        while (this.queuedBytes > this.lookahead) {
          await this.dequeued.wait();
          this.check();
        }
        const sentDirty = await this.sendDirtyBatch(dirty, !paused && plan.skipRedirtied === true);
        if (fresh > 0) fresh -= await this.sendFreshBatch(fresh);
        if (!sentDirty && fresh <= 0) return;
      }
    });
  }

  /** Runs `send`, then ends the round on every channel; reports what the round sent. */
  private async runRound(round: number, phase: RoundReport["phase"], owed: number, send: () => Promise<void>): Promise<RoundReport> {
    const start = performance.now();
    const bytesBefore = this.transferred;
    this.round = round;
    this.roundSent = 0;
    this.roundRemaining = owed;
    this.channelPages.fill(0);
    await send();
    const final = phase === "paused" || phase === "postcopy";
    await Promise.all(this.channels.map((c, i) => c.send(FrameType.roundEnd, encodeRoundEnd({ round, pages: this.channelPages[i], final }))));
    this.check();
    const report: RoundReport = { round, phase, "dirty-pages": owed, pages: this.roundSent, bytes: this.transferred - bytesBefore, ms: performance.now() - start };
    this.emit("round", report);
    return report;
  }

  /**
   * Sends the next batch of dirty pages at `at` (a region and a page to scan from), optionally
   * leaving out pages already dirty again; a region's sync bitmap is cleared once scanned.
   * Returns false when every region has been scanned.
   */
  private async sendDirtyBatch(at: { region: number; from: number }, skipRedirtied: boolean): Promise<boolean> {
    while (at.region < this.cores.length) {
      const i = at.region;
      const core = this.cores[i];
      const { syncBitmap, dirtyBitmap, pageCount } = core.region.layout;
      const [found, next] = core.scan(syncBitmap, at.from);
      at.from = next;
      if (next >= pageCount) {
        core.clearBitmap(syncBitmap);
        at.region++;
        at.from = 0;
      }
      const n = skipRedirtied && found > 0 ? core.dropMarked(found, dirtyBitmap) : found;
      this.skippedPages += found - n;
      if (n > 0) {
        await this.sendBatch(i, n, false);
        return true;
      }
    }
    return false;
  }

  /** Sends up to a batch of pages never sent, in address order; returns how many. */
  private async sendFreshBatch(budget: number): Promise<number> {
    const i = this.fresh.findIndex((first, r) => first < this.regions[r].pageCount);
    if (i < 0) return budget;
    const core = this.cores[i];
    const { pageCount, batchPages } = core.region.layout;
    const first = this.fresh[i];
    const n = Math.min(batchPages, pageCount - first, budget);
    for (let k = 0; k < n; k++) core.list[k] = first + k;
    this.fresh[i] = first + n;
    await this.sendBatch(i, n, true);
    return n;
  }

  /**
   * Post-copy's switch-over, with the guest paused here: tell the destination which pages it
   * lacks (those never sent and those dirty since they were), hand over the device state, and
   * end the round, after which the destination resumes the guest. Then push every missing page,
   * those its guest asks for first, and confirm with the sum of page hashes.
   */
  private async switchOver(): Promise<RoundReport[]> {
    let missing = 0;
    const switchover = await this.runRound(this.round + 1, "switchover", 0, async () => {
      for (const [i, core] of this.cores.entries()) {
        const { auxBitmap, syncBitmap, bitmapBytes, pageCount } = core.region.layout;
        const mem = core.region.memory.buffer;
        new Uint8Array(mem, auxBitmap, bitmapBytes).set(new Uint8Array(mem, syncBitmap, bitmapBytes));
        core.clearBitmap(syncBitmap);
        core.wasm.bitmapMarkRange(auxBitmap, this.fresh[i], pageCount - this.fresh[i]);
        this.fresh[i] = pageCount;
        missing += core.wasm.bitmapCount(auxBitmap, bitmapBytes);
        const payload = new Uint8Array(SWITCHOVER_PREFIX_BYTES + bitmapBytes);
        new DataView(payload.buffer).setUint16(0, i, true);
        payload.set(new Uint8Array(mem, auxBitmap, bitmapBytes), SWITCHOVER_PREFIX_BYTES);
        await this.channels[0].send(FrameType.switchover, payload);
      }
      await this.sendDeviceState();
      this.switchedOver = true;
    });
    // Pages go whole from now on: every missing page needs a record, and no delta base is trusted.
    for (const core of this.cores) {
      core.setEncoding({ lz4: this.options.compress, freePageHints: this.options.freePageHints, rawRuns: true });
    }
    const pushed = await this.runRound(this.round + 1, "postcopy", missing, () => this.push(missing));
    const digests = await this.digestsAtPause!;
    this.check();
    await this.channels[0].send(FrameType.complete, encodeComplete({ digests }));
    return [switchover, pushed];
  }

  /**
   * Sends the `missing` pages (set in each region's aux bitmap, cleared as they go): requested
   * ranges first, then the rest in address order from just after the last request (pre-paging),
   * with few background batches in flight so that a request never waits behind many.
   */
  private async push(missing: number): Promise<void> {
    const cursor = { region: 0, from: 0 };
    let inFlight = 0;
    const batchDone = new Wakeup();
    while (missing > 0) {
      this.check();
      const request = this.requests.shift();
      if (request) {
        missing -= await this.pushRange(request.region, request.page, request.page + request.count);
        cursor.region = request.region;
        cursor.from = request.page + request.count;
        continue;
      }
      if (inFlight >= POSTCOPY_PUSH_DEPTH) {
        await Promise.race([batchDone.wait(), this.requestArrived.wait()]);
        continue;
      }
      const core = this.cores[cursor.region];
      const { auxBitmap, pageCount } = core.region.layout;
      const [n, next] = core.scan(auxBitmap, cursor.from);
      core.wasm.bitmapClearRange(auxBitmap, cursor.from, next - cursor.from);
      cursor.from = next;
      if (next >= pageCount) {
        cursor.region = (cursor.region + 1) % this.cores.length;
        cursor.from = 0;
      }
      if (n === 0) continue;
      missing -= n;
      inFlight++;
      const { written } = await this.sendBatch(this.cores.indexOf(core), n, false);
      written.then(() => {
        inFlight--;
        batchDone.wake();
      }, () => batchDone.wake());
      // Small writes (zero pages) complete without I/O, so this loop could run to the end without
      // ever reading the return path: a page request, or the switch-over's ack, would wait for it.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Sends the pages of [from, to) in region i still missing at the destination; returns how many. */
  private async pushRange(i: number, from: number, to: number): Promise<number> {
    const core = this.cores[i];
    const { auxBitmap } = core.region.layout;
    let sent = 0;
    while (from < to) {
      const [n, next] = core.scan(auxBitmap, from, to);
      core.wasm.bitmapClearRange(auxBitmap, from, next - from);
      from = next;
      if (n === 0) break;
      sent += n;
      await this.sendBatch(i, n, false);
    }
    return sent;
  }

  /** The channel with the least data waiting in its socket. */
  private pickChannel(): number {
    let best = 0;
    for (let c = 1; c < this.channels.length; c++) {
      if (this.channels[c].socket.writableLength < this.channels[best].socket.writableLength) best = c;
    }
    return best;
  }

  /**
   * Encodes the first n pages of region i's list into a free I/O buffer and sends it: the records
   * as one pages frame, each run of raw pages as a raw-run frame straight from guest memory.
   * Pages never sent before (`fresh`) get no record when zero: the destination starts zeroed.
   * Returns once the frames are queued, with a promise of their being written; the buffer is
   * released then.
   */
  private async sendBatch(i: number, n: number, fresh: boolean): Promise<{ written: Promise<void> }> {
    const core = this.cores[i];
    const region = core.region;
    const { layout } = region;
    const buffer = await this.pools[i].acquire(() => this.check());
    const base = layout.ioBuffers[buffer];
    core.skipZero(fresh);
    const bytes = core.encode(n, base + IO_HEADROOM);
    const stats = core.encodeStats();
    this.totals.add(stats);
    const runs = core.runs();
    const mem = region.memory.buffer;
    const writes: Promise<void>[] = [];
    let rawPages = 0;
    for (let r = 0; r < runs.length; r += 2) {
      const first = runs[r];
      const count = runs[r + 1];
      const at = base + layout.runHeadersOffset + (r / 2) * 32;
      const prefix = new DataView(mem, at + FRAME_HEADER_BYTES, RAW_RUN_PREFIX_BYTES);
      prefix.setUint16(0, i, true);
      prefix.setUint16(2, 0, true);
      prefix.setUint32(4, this.round, true);
      prefix.setUint32(8, first, true);
      prefix.setUint32(12, count, true);
      const c = this.pickChannel();
      this.channelPages[c] += count;
      rawPages += count;
      writes.push(
        this.channels[c].sendParts(FrameType.rawRun, new Uint8Array(mem, at, FRAME_HEADER_BYTES), [
          new Uint8Array(mem, at + FRAME_HEADER_BYTES, RAW_RUN_PREFIX_BYTES),
          region.pages(first, count),
        ]),
      );
    }
    const recordPages = n - rawPages - stats.unchanged - (fresh ? stats.zero : 0);
    if (bytes > 0) {
      const prefixAt = base + IO_HEADROOM - PAGES_PREFIX_BYTES;
      const prefix = new DataView(mem, prefixAt, PAGES_PREFIX_BYTES);
      prefix.setUint16(0, i, true);
      prefix.setUint16(2, 0, true);
      prefix.setUint32(4, this.round, true);
      const c = this.pickChannel();
      this.channelPages[c] += recordPages;
      const headerAt = prefixAt - FRAME_HEADER_BYTES;
      writes.push(this.channels[c].sendParts(FrameType.pages, new Uint8Array(mem, headerAt, FRAME_HEADER_BYTES), [new Uint8Array(mem, prefixAt, PAGES_PREFIX_BYTES + bytes)]));
    }
    const sent = rawPages + recordPages;
    this.sentPages += sent;
    this.roundSent += sent;
    this.roundRemaining = Math.max(0, this.roundRemaining - n);
    const queued = rawPages * region.pageSize + bytes;
    this.queuedBytes += queued;
    const written = Promise.all(writes).then(() => {
      this.pools[i].release(buffer);
      this.queuedBytes -= queued;
      this.dequeued.wake();
    });
    written.catch((error) => this.fail(error));
    this.emitProgress(false);
    return { written };
  }

  private emitProgress(force: boolean, remaining = this.roundRemaining): void {
    const now = performance.now();
    if (!force && now - this.lastProgress.at < PROGRESS_INTERVAL_MS) return;
    const transferred = this.transferred;
    const rate = ((transferred - this.lastProgress.bytes) / Math.max(1, now - this.lastProgress.at)) / 1000;
    this.lastProgress = { at: now, bytes: transferred };
    const progress: Progress = {
      phase: this.switchedOver ? "postcopy" : this.paused ? "paused" : "live",
      round: this.round,
      remainingPages: remaining,
      sentPages: this.sentPages,
      transferred,
      rate,
      expectedDowntimeMs: expectedDowntimeMs(this.roundStats({ dirtyPages: remaining, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 }), remaining),
    };
    this.emit("progress", progress);
  }

  private async sendDeviceState(): Promise<void> {
    const state = (await this.options.hooks?.deviceState?.()) ?? new Uint8Array(0);
    if (state.length > MAX_DEVICE_STATE) throw new PagewireError("EOPTION", `device state of ${state.length} bytes exceeds the ${MAX_DEVICE_STATE}-byte limit`);
    for (let offset = 0; offset < state.length || offset === 0; offset += DEVICE_STATE_PIECE) {
      const bytes = state.subarray(offset, offset + DEVICE_STATE_PIECE);
      await this.channels[0].send(FrameType.deviceState, encodeDeviceStatePiece({ offset, total: state.length, bytes }));
      if (state.length === 0) break;
    }
  }
}

/** A failure after the switch-over: the guest has run on the destination, so neither side can go on. */
function postcopyLost(error: Error): PagewireError {
  return new PagewireError(
    "EPOSTCOPY",
    `post-copy failed after the switch-over: ${error.message}. The guest had resumed on the destination with part of its memory there, ` +
      "so it cannot continue on either side; restart it (from a checkpoint, if you have one)",
  );
}

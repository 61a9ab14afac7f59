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
  Encoding, MAX_CHANNELS, FRAME_NAMES,
} from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import { newMigrationId } from "../wire/auth.js";
import { encodeRoundEnd, encodeDeviceStatePiece, encodeComplete, decodeAck, decodeDone, decodeFailure } from "../wire/messages.js";
import { type Policy, type RoundStats, expectedDowntimeMs } from "../policy/policy.js";
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
  phase: "live" | "paused";
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
  /** Pages each channel carried in the current round. */
  private channelPages: number[] = [];
  private sentPages = 0;
  private roundSent = 0;
  private roundRemaining = 0;
  private dataStart = 0;
  private lastProgress = { at: 0, bytes: 0 };
  private resolveDone: ((verifyMs: number) => void) | undefined;
  private rejectDone: ((error: Error) => void) | undefined;

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
  }

  private get transferred(): number {
    return this.channels.reduce((sum, c) => sum + c.sent, 0);
  }

  private get totalPages(): number {
    return this.regions.reduce((sum, r) => sum + r.pageCount, 0);
  }

  /** Throws the first failure, so every loop stops at its next step. */
  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    const wire = error instanceof WireError ? error : new WireError("cancelled", error.message);
    for (const c of this.channels) c.fail(wire, true);
    for (const p of this.pools) p.wakeAll();
    this.rejectDone?.(error);
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
      this.dataStart = performance.now();
      this.lastProgress = { at: this.dataStart, bytes: 0 };
      const compress = this.options.compress ?? false;
      const delta = this.options.delta ?? false;
      // Start dirty logging now: marks from before the migration are dropped, since round 1 sends all.
      for (const core of this.cores) {
        core.syncDirty();
        core.clearBitmap(core.region.layout.syncBitmap);
      }
      const rounds: RoundReport[] = [];
      let stopReason = "";
      let lastSync = performance.now();
      let dirtyRate = 0;
      let precopyBytes = 0;
      if (!this.policy.live) {
        const decision = this.policy.decide(this.roundStats(0, 0));
        stopReason = decision.action === "stop" ? decision.reason : "";
        pauseAt = await this.pause();
      }
      // Round 1: every page that is not zero (the destination starts zeroed).
      const freePageHints = this.options.freePageHints ?? false;
      for (const core of this.cores) core.setEncoding({ lz4: compress, delta, freePageHints, rawRuns: true, skipZero: true });
      rounds.push(await this.sendRound(1, this.totalPages, !this.policy.live, (i) => this.sendAll(i)));
      for (const core of this.cores) core.setEncoding({ lz4: compress, delta, freePageHints, rawRuns: true });
      if (this.policy.live) {
        for (;;) {
          const dirty = this.syncAll();
          const now = performance.now();
          dirtyRate = (dirty.taken * 1000) / Math.max(1, now - lastSync);
          lastSync = now;
          const decision = this.policy.decide(this.roundStats(dirty.pages, dirtyRate));
          this.emitProgress(true, dirty.pages);
          if (decision.action === "stop") {
            stopReason = decision.reason;
            break;
          }
          rounds.push(await this.sendRound(this.round + 1, dirty.pages, false, (i) => this.sendDirty(i)));
        }
        precopyBytes = this.transferred;
        pauseAt = await this.pause();
        const last = this.syncAll();
        rounds.push(await this.sendRound(this.round + 1, last.pages, true, (i) => this.sendDirty(i)));
      }
      await this.sendDeviceState();
      const digests = await this.digestsAtPause!;
      this.check();
      await this.channels[0].send(FrameType.complete, encodeComplete({ digests }));
      const verifyTime = await done;
      const end = performance.now();
      for (const c of this.channels) c.close();
      const totalTime = end - start;
      const transferred = this.transferred;
      const pageSize = this.regions[0].pageSize;
      return {
        status: "completed",
        policy: { name: this.policy.name, parameters: this.policy.parameters, "stop-reason": stopReason },
        "total-time": totalTime,
        "setup-time": setupTime,
        downtime: end - pauseAt,
        transferred,
        "precopy-bytes": precopyBytes,
        "downtime-bytes": transferred - precopyBytes,
        "page-size": pageSize,
        "total-pages": this.totalPages,
        duplicate: this.totals.zero,
        "free-pages": this.totals.free,
        normal: this.totals.raw,
        "normal-bytes": this.totals.raw * pageSize,
        "lz4-pages": this.totals.lz4,
        "unchanged-pages": this.totals.unchanged,
        xbzrle: { pages: this.totals.delta, "cache-miss": this.totals.cacheMiss, overflow: this.totals.overflow },
        "dirty-sync-count": rounds.length - 1,
        "dirty-pages-rate": Math.round(dirtyRate),
        mbps: (transferred * 8) / 1e6 / ((end - this.dataStart) / 1000),
        "pages-per-second": (this.sentPages * 1000) / (end - this.dataStart),
        channels: this.channels.length,
        rounds,
        "verify-time": verifyTime,
      };
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      if (this.paused && this.options.hooks?.resume) await this.options.hooks.resume();
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

  /** Frames from the destination on channel 0: acknowledgements, the final confirmation, errors. */
  private async readReturnPath(conn: Connection): Promise<void> {
    try {
      for (;;) {
        const { type, payload } = await conn.nextFrame(0);
        if (type === FrameType.ack) {
          this.emit("ack", decodeAck(payload).round);
        } else if (type === FrameType.done) {
          this.resolveDone?.(decodeDone(payload).verifyMs);
          return;
        } else if (type === FrameType.error || type === FrameType.refuse) {
          const f = decodeFailure(payload, "destination's error");
          throw new WireError(f.reason, `the destination failed: ${f.message}`);
        } else {
          throw new WireError("unexpectedFrame", `the destination sent a ${FRAME_NAMES[type]} frame${type === FrameType.pageRequest ? ", but post-copy was not negotiated" : ""}`);
        }
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Pauses the guest and starts hashing its memory, now frozen, in worker threads: the digest is
   * ready by the time the last round has been sent instead of after it.
   */
  private async pause(): Promise<number> {
    const at = performance.now();
    await this.options.hooks?.pause?.();
    this.paused = true;
    this.check();
    if (this.options.freePageHints) for (const core of this.cores) core.zeroFreePages();
    this.digestsAtPause = this.digests.digest(this.cores);
    this.digestsAtPause.catch((error) => this.fail(error));
    return at;
  }

  private digestsAtPause: Promise<bigint[]> | undefined;

  /** Moves every region's dirty log into its sync bitmap; returns the bits taken and the pages now to send. */
  private syncAll(): { taken: number; pages: number } {
    this.options.hooks?.beforeSync?.();
    let taken = 0;
    let pages = 0;
    for (const core of this.cores) {
      taken += core.syncDirty();
      const { syncBitmap, bitmapBytes } = core.region.layout;
      pages += core.wasm.bitmapCount(syncBitmap, bitmapBytes);
    }
    return { taken, pages };
  }

  private roundStats(dirtyPages: number, dirtyRate: number): RoundStats {
    const elapsed = performance.now() - this.dataStart;
    return {
      round: this.round,
      dirtyPages,
      pageSize: this.regions[0].pageSize,
      totalPages: this.totalPages,
      sentPages: this.sentPages,
      sentBytes: this.transferred,
      bandwidth: elapsed > 0 ? (this.transferred * 1000) / elapsed : 0,
      dirtyRate,
      elapsedMs: elapsed,
    };
  }

  /** Sends one round with `send` per region, then a round-end marker on every channel. */
  private async sendRound(round: number, dirtyPages: number, final: boolean, send: (region: number) => Promise<void>): Promise<RoundReport> {
    const start = performance.now();
    const bytesBefore = this.transferred;
    this.round = round;
    this.roundSent = 0;
    this.roundRemaining = dirtyPages;
    this.channelPages.fill(0);
    for (let i = 0; i < this.regions.length; i++) await send(i);
    await Promise.all(this.channels.map((c, i) => c.send(FrameType.roundEnd, encodeRoundEnd({ round, pages: this.channelPages[i], final }))));
    this.check();
    const report = { round, "dirty-pages": dirtyPages, pages: this.roundSent, bytes: this.transferred - bytesBefore, ms: performance.now() - start, final };
    this.emit("round", report);
    return report;
  }

  /** Round 1: every page of region i, in order. */
  private async sendAll(i: number): Promise<void> {
    const core = this.cores[i];
    const { pageCount, batchPages } = core.region.layout;
    for (let first = 0; first < pageCount; first += batchPages) {
      const n = Math.min(batchPages, pageCount - first);
      for (let k = 0; k < n; k++) core.list[k] = first + k;
      await this.sendBatch(i, n);
    }
  }

  /** Later rounds: the pages of region i's sync bitmap, which is cleared afterwards. */
  private async sendDirty(i: number): Promise<void> {
    const core = this.cores[i];
    const { syncBitmap, pageCount } = core.region.layout;
    for (let from = 0; from < pageCount; ) {
      const [n, next] = core.scan(syncBitmap, from);
      if (n > 0) await this.sendBatch(i, n);
      from = next;
    }
    core.clearBitmap(syncBitmap);
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
   * Returns once the frames are queued; the buffer is released when the socket has taken them.
   */
  private async sendBatch(i: number, n: number): Promise<void> {
    const core = this.cores[i];
    const region = core.region;
    const { layout } = region;
    const buffer = await this.pools[i].acquire(() => this.check());
    const base = layout.ioBuffers[buffer];
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
    const recordPages = n - rawPages - stats.unchanged - this.skippedZero(stats.zero);
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
    Promise.all(writes).then(
      () => this.pools[i].release(buffer),
      (error) => this.fail(error),
    );
    this.emitProgress(false);
  }

  /** Zero pages that got no record (round 1 skips them). */
  private skippedZero(zero: number): number {
    return this.round === 1 ? zero : 0;
  }

  private emitProgress(force: boolean, remaining = this.roundRemaining): void {
    const now = performance.now();
    if (!force && now - this.lastProgress.at < PROGRESS_INTERVAL_MS) return;
    const transferred = this.transferred;
    const rate = ((transferred - this.lastProgress.bytes) / Math.max(1, now - this.lastProgress.at)) / 1000;
    this.lastProgress = { at: now, bytes: transferred };
    const progress: Progress = {
      phase: this.paused ? "paused" : "live",
      round: this.round,
      remainingPages: remaining,
      sentPages: this.sentPages,
      transferred,
      rate,
      expectedDowntimeMs: expectedDowntimeMs(this.roundStats(remaining, 0)),
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

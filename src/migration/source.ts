// The source side of a migration, as a state machine (QEMU's migration.c): set up the channels,
// iterate rounds while the policy says continue, pause, then either the final round, the device
// state and the digest, or post-copy's switch-over and push. The source's guest stays intact and
// authoritative until the destination confirms the digest; any failure before that resumes it.
// The rounds themselves are round-sender.ts; post-copy's half is postcopy-source.ts.
import { EventEmitter } from "node:events";
import { Core } from "../core/core.js";
import { DigestPool } from "../core/digest.js";
import type { Region } from "../memory/region.js";
import { Connection } from "../transport/connection.js";
import { connectChannel } from "../transport/handshake.js";
import { FrameChannel } from "../transport/page-channel.js";
import { TokenBucket } from "../transport/token-bucket.js";
import { FrameType, Encoding, MAX_CHANNELS, MAC_BYTES } from "../wire/constants.js";
import { asWireError } from "../wire/errors.js";
import { newMigrationId } from "../wire/auth.js";
import { encodeComplete, type Offer } from "../wire/messages.js";
import { type Policy, type RoundStats, type Decision, expectedDowntimeMs } from "../policy/policy.js";
import { precopy } from "../policy/precopy.js";
import { PagewireError } from "../errors.js";
import { FailureLatch, asError } from "./failure.js";
import { RoundSender } from "./round-sender.js";
import { PostcopySource, postcopyLost } from "./postcopy-source.js";
import { sendDeviceState } from "./device-state.js";
import { estimatePauseOverhead } from "./pause-overhead.js";
import { ReturnPath } from "./return-path.js";
import { SourceCounters, migrationStats, addEncodeStats, type MigrationStats, type RoundReport } from "./stats.js";
import type { SourceOptions, Progress, SourceEvents } from "./source-options.js";

export type { SourceOptions, SourceHooks, Progress, SourceEvents } from "./source-options.js";

const PROGRESS_INTERVAL_MS = 100;


export class Source extends EventEmitter<SourceEvents> {
  private readonly cores: Core[];
  private readonly policy: Policy;
  private readonly latch = new FailureLatch();
  private readonly counters = new SourceCounters();
  private readonly digests = DigestPool.shared();
  private channels: Connection[] = [];
  private sender: RoundSender | undefined;
  private postcopy: PostcopySource | undefined;
  private paused = false;
  /** Set once the destination may have resumed the guest (post-copy): from then on a failure loses it. */
  private switchedOver = false;
  private dataStart = 0;
  private lastProgress = { at: 0, bytes: 0 };
  private throttled = 0;
  private returnPath: ReturnPath | undefined;
  /** When the destination acknowledged the switch-over round: it resumes the guest then. */
  private switchoverAcked = 0;
  /** The session key from channel 0's handshake: it authenticates complete and done. */
  private key: Uint8Array = new Uint8Array(0);
  /** The pause's fixed cost in ms, estimated at setup (see estimatePauseOverhead). */
  private pauseOverheadMs = 0;

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
    this.latch.onFail((error) => {
      const wire = asWireError(error);
      for (const c of this.channels) c.fail(wire, true);
    });
  }

  private get transferred(): number {
    return this.sender?.transferred ?? 0;
  }

  private fail(error: Error): void {
    // After the switch-over the guest has run on the destination: whatever went wrong, it is lost.
    this.latch.fail(this.switchedOver && !(error instanceof PagewireError && error.code === "EPOSTCOPY") ? postcopyLost(error) : error);
  }

  /** Runs the migration to the end. Resolves with statistics once the destination confirmed the digest. */
  async migrate(): Promise<MigrationStats> {
    const startAt = performance.now();
    const onAbort = () => this.fail(new PagewireError("EABORTED", "the migration was cancelled"));
    this.options.signal?.addEventListener("abort", onAbort);
    try {
      if (this.options.signal?.aborted) onAbort();
      this.latch.check();
      this.digests.warm();
      const sender = await this.connect();
      this.pauseOverheadMs = estimatePauseOverhead(this.regions, this.digests.threads);
      const dataAt = performance.now();
      const setupBytes = this.transferred;
      this.dataStart = dataAt;
      this.lastProgress = { at: dataAt, bytes: 0 };
      for (const core of this.cores) core.setEncoding({ lz4: this.options.compress, delta: this.options.delta, freePageHints: this.options.freePageHints, rawRuns: true });
      sender.sync(); // starts dirty logging: marks from before are dropped, every page is sent at least once
      const rounds: RoundReport[] = [];
      let lastSync = performance.now();
      let dirtyRate = 0;
      let stats = this.roundStats({ dirtyPages: 0, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 });
      let decision: Decision = this.policy.decide(stats);
      let owed = 0;
      while (decision.action === "continue") {
        this.setThrottle(decision.plan.throttle ?? 0);
        const report = await sender.sendRound(sender.round + 1, decision.plan, false, owed);
        rounds.push(this.reported(report));
        const dirty = this.sync();
        owed = dirty.owed;
        const now = performance.now();
        dirtyRate = (dirty.taken * 1000) / Math.max(1, now - lastSync);
        lastSync = now;
        stats = this.roundStats({ dirtyPages: owed, dirtiedPages: dirty.taken, dirtyRate, lastRoundBytes: report.bytes });
        decision = this.policy.decide(stats);
        this.emitProgress(true, owed + stats.unsentPages);
      }
      const precopyEndBytes = this.transferred;
      const expectedDowntime = expectedDowntimeMs(stats);
      this.setThrottle(0);
      const postcopy = decision.action === "postcopy";
      const { pauseAt, proof } = await this.pause(postcopy);
      const last = this.sync();
      let verifyTime: number;
      let postcopyTime = 0;
      if (postcopy) {
        const switchAt = performance.now();
        rounds.push(...(await this.postcopyRounds(proof)));
        verifyTime = await this.returnPath!.done;
        postcopyTime = performance.now() - switchAt;
      } else {
        rounds.push(this.reported(await sender.sendRound(sender.round + 1, {}, true, last.owed)));
        await sendDeviceState(this.channels[0], await this.deviceState());
        await this.complete(proof);
        verifyTime = await this.returnPath!.done;
      }
      const endAt = performance.now();
      for (const c of this.channels) c.close();
      return migrationStats({
        policy: { name: this.policy.name, parameters: this.policy.parameters, "stop-reason": decision.reason },
        counters: this.counters,
        encoded: addEncodeStats(this.cores.map((c) => c.encodeStats())),
        rounds,
        pageSize: this.regions[0].pageSize,
        totalPages: sender.totalPages,
        channels: this.channels.length,
        startAt, dataAt, pauseAt, switchoverAckAt: this.switchoverAcked, endAt,
        transferred: this.transferred, setupBytes, precopyEndBytes,
        postcopy, postcopyTime, dirtyRate, verifyTime, expectedDowntime,
      });
    } catch (error) {
      this.fail(asError(error));
      this.setThrottle(0);
      if (this.paused && !this.switchedOver && this.options.hooks?.resume) await this.options.hooks.resume();
      this.paused = false;
      throw this.latch.error;
    } finally {
      this.options.signal?.removeEventListener("abort", onAbort);
    }
  }

  private offer(): Offer {
    const o = this.options;
    return {
      pageSize: this.regions[0].pageSize,
      encodings: (o.compress ? Encoding.lz4 : 0) | (o.delta ? Encoding.delta : 0),
      batchPages: Math.max(...this.regions.map((r) => r.layout.batchPages)),
      regions: this.regions.map((r) => r.pageCount),
    };
  }

  /** Opens channel 0 with the offer, then the others; starts reading the return path. */
  private async connect(): Promise<RoundSender> {
    const o = this.options;
    const migrationId = newMigrationId();
    const count = o.channels ?? 1;
    const bucket = o.bandwidth ? new TokenBucket(o.bandwidth) : undefined;
    const target = { host: o.host, port: o.port, secret: o.secret ?? "", migrationId, channelCount: count, bucket, timeoutMs: o.timeoutMs, tls: o.tls };
    const { conn: first, key } = await connectChannel({ ...target, channelIndex: 0, offer: this.offer() });
    this.key = key;
    this.channels = [first];
    const others = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => connectChannel({ ...target, channelIndex: i + 1 })));
    for (const other of others) if (other.status === "fulfilled") this.channels.push(other.value.conn);
    for (const c of this.channels) c.onFailure((error) => this.fail(error));
    const refused = others.find((other) => other.status === "rejected");
    if (refused) throw (refused as PromiseRejectedResult).reason;
    this.latch.check();
    const channels = this.channels.map((c) => new FrameChannel(c));
    this.sender = new RoundSender(this.cores, channels, this.latch, this.counters, { bandwidth: o.bandwidth, onBatch: () => this.emitProgress(false) });
    this.postcopy = new PostcopySource(this.sender, this.latch, this.counters);
    this.returnPath = new ReturnPath(first, this.latch, () => ({
      ack: (round) => {
        if (this.switchedOver && this.switchoverAcked === 0) this.switchoverAcked = performance.now();
        this.emit("ack", round);
      },
      pageRequest: this.switchedOver ? (request) => this.postcopy!.request(request) : undefined,
    }), o.timeoutMs ?? 30_000);
    return this.sender;
  }

  private reported(report: RoundReport): RoundReport {
    this.emit("round", report);
    return report;
  }

  private sync() {
    this.options.hooks?.beforeSync?.();
    return this.sender!.sync();
  }

  private async deviceState(): Promise<Uint8Array> {
    return (await this.options.hooks?.deviceState?.()) ?? new Uint8Array(0);
  }

  /** Sends the digests (once the pool has them) for the destination to check against its memory. */
  private async complete(digests: Promise<bigint[]>): Promise<void> {
    const values = await digests;
    this.latch.check();
    const complete = encodeComplete({ digests: values }, this.key);
    // Only a done that answers this completion counts: before it, or with another MAC, it is refused.
    this.returnPath!.expectDone(this.key, complete.subarray(complete.length - MAC_BYTES));
    await this.channels[0].send(FrameType.complete, complete);
  }

  /**
   * Post-copy from the pause: the switch-over (after which the destination resumes the guest),
   * then the push of every missing page, whole (no delta base is trusted any more), then the sum
   * of page hashes taken at the pause.
   */
  private async postcopyRounds(sums: Promise<bigint[]>): Promise<RoundReport[]> {
    const postcopy = this.postcopy!;
    const { report, missing } = await postcopy.switchOver(this.channels[0], async () => {
      await sendDeviceState(this.channels[0], await this.deviceState());
      this.switchedOver = true;
      this.emit("switchover");
    });
    const switchover = this.reported(report);
    for (const core of this.cores) core.setEncoding({ lz4: this.options.compress, freePageHints: this.options.freePageHints, rawRuns: true });
    const pushed = this.reported(await postcopy.push(missing));
    await this.complete(sums);
    return [switchover, pushed];
  }

  /**
   * Pauses the guest and starts proving its memory, now frozen, in worker threads: the digest
   * (post-copy: the sum of page hashes, which the destination can add up as pages arrive) is ready
   * by the time the last round has been sent instead of after it. With free-page hints, the
   * hinted pages sent as zero unread are zeroed here first, so the digests agree.
   */
  private async pause(postcopy: boolean): Promise<{ pauseAt: number; proof: Promise<bigint[]> }> {
    const pauseAt = performance.now();
    await this.options.hooks?.pause?.();
    this.paused = true;
    this.latch.check();
    if (this.options.freePageHints) for (const core of this.cores) core.zeroFreePages();
    const proof = postcopy ? this.digests.pageSums(this.regions) : this.digests.digest(this.regions);
    proof.catch((error: Error) => this.fail(error));
    return { pauseAt, proof };
  }

  private setThrottle(fraction: number): void {
    if (fraction === this.throttled) return;
    this.throttled = fraction;
    this.counters.maxThrottle = Math.max(this.counters.maxThrottle, fraction);
    this.options.hooks?.throttle?.(fraction);
  }

  private roundStats(s: Pick<RoundStats, "dirtyPages" | "dirtiedPages" | "dirtyRate" | "lastRoundBytes">): RoundStats {
    const elapsed = performance.now() - this.dataStart;
    const sender = this.sender!;
    const transferred = this.transferred;
    return {
      ...s,
      round: sender.round,
      unsentPages: sender.unsentPages,
      pageSize: this.regions[0].pageSize,
      totalPages: sender.totalPages,
      sentPages: this.counters.pages,
      sentBytes: transferred,
      bandwidth: elapsed > 0 ? (transferred * 1000) / elapsed : 0,
      elapsedMs: elapsed,
      pauseOverheadMs: this.pauseOverheadMs,
    };
  }

  private emitProgress(force: boolean, remaining = this.sender!.remainingPages): void {
    const now = performance.now();
    if (!force && now - this.lastProgress.at < PROGRESS_INTERVAL_MS) return;
    const transferred = this.transferred;
    const rate = (transferred - this.lastProgress.bytes) / Math.max(1, now - this.lastProgress.at) / 1000;
    this.lastProgress = { at: now, bytes: transferred };
    const progress: Progress = {
      phase: this.switchedOver ? "postcopy" : this.paused ? "paused" : "live",
      round: this.sender!.round,
      remainingPages: remaining,
      sentPages: this.counters.pages,
      transferred,
      rate,
      expectedDowntimeMs: expectedDowntimeMs(this.roundStats({ dirtyPages: remaining, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 }), remaining),
    };
    this.emit("progress", progress);
  }
}

// The source side of a migration, as a state machine (QEMU's migration.c): set up the channels,
// iterate rounds while the policy says continue, pause, then either the final round, the device
// state and the digest, or post-copy's switch-over and push. The source's guest stays intact and
// authoritative until the destination confirms the digest; any failure before that resumes it.
// The rounds themselves are round-sender.ts; post-copy's half is postcopy-source.ts.
import { EventEmitter } from "node:events";
import { Core, type SyncResult } from "../core/core.js";
import type { Region } from "../memory/region.js";
import type { Connection } from "../transport/connection.js";
import type { PageChannel } from "../transport/page-channel.js";
import { FrameType, MAX_CHANNELS, MAC_BYTES } from "../wire/constants.js";
import { WireError, asWireError } from "../wire/errors.js";
import { encodeComplete } from "../wire/messages.js";
import type { Switchover } from "../wire/pages.js";
import { type Policy, expectedDowntimeMs } from "../policy/policy.js";
import { precopy } from "../policy/precopy.js";
import { PagewireError } from "../errors.js";
import { FailureLatch, asError } from "./failure.js";
import { RoundSender } from "./round-sender.js";
import { PostcopySource, collectStillMissing, postcopyLost } from "./postcopy-source.js";
import { sendDeviceState } from "./device-state.js";
import { SourceProof } from "./proof.js";
import { ProgressReporter } from "./progress.js";
import type { ReturnPath } from "./return-path.js";
import { SourceChannels, type ChannelEnd } from "./source-channels.js";
import { roundStats, runLiveRounds, settleBeforePause } from "./live-rounds.js";
import { SourceCounters, migrationStats, type MigrationStats, type RoundReport } from "./stats.js";
import { addEncodeStats } from "../abi/abi.js";
import type { SourceOptions, SourceEvents } from "./source-options.js";

export type { SourceOptions, SourceHooks, Progress, SourceEvents } from "./source-options.js";

export class Source extends EventEmitter<SourceEvents> {
  private readonly cores: Core[];
  private readonly policy: Policy;
  /** The current connection's failures; a new one after each resumption. */
  private latch = new FailureLatch();
  private readonly counters = new SourceCounters();
  private readonly proof: SourceProof;
  /** Every channel's end, channel 0 (the control channel) first. */
  private channels: ChannelEnd[] = [];
  private control!: Connection;
  private frames: PageChannel[] = [];
  private sender: RoundSender | undefined;
  private postcopy: PostcopySource | undefined;
  private paused = false;
  /** Set once the destination may have resumed the guest (post-copy): from then on a failure loses it. */
  private switchedOver = false;
  private dataStart = 0;
  private readonly progress = new ProgressReporter();
  private throttled = 0;
  private returnPath: ReturnPath | undefined;
  /** When the destination acknowledged the switch-over round: it resumes the guest then. */
  private switchoverAcked = 0;
  /** The session key from channel 0's handshake: it authenticates complete and done. */
  private key: Uint8Array = new Uint8Array(0);


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
    this.links = new SourceChannels(regions, options);
    this.proof = new SourceProof(regions, options);
    this.arm(this.latch);
  }

  /** A failure under `latch` ends every channel, telling the destination why. */
  private arm(latch: FailureLatch): void {
    latch.onFail((error) => {
      const wire = asWireError(error);
      for (const c of this.channels) c.fail(wire, true);
    });
  }

  private get transferred(): number {
    return this.sender?.transferred ?? 0;
  }

  private fail(error: Error): void {
    this.latch.fail(error);
  }

  /** The error a failed migration ends with: after the switch-over the guest has run on the destination, so whatever went wrong, it is lost. */
  private finalError(error: Error): Error {
    if (this.switchedOver && !(error instanceof PagewireError && error.code === "EPOSTCOPY")) return postcopyLost(error);
    // Between complete and done nobody can tell whether the destination resumed the guest.
    if (this.completeSent && error instanceof WireError && (error.reason === "connection" || error.reason === "truncated") && !error.message.includes("completion had gone out")) {
      error.message += "; the completion had gone out, so the destination may have verified the memory and resumed the guest: check it before running this copy on";
    }
    return error;
  }

  /** Runs the migration to the end. Resolves with statistics once the destination confirmed the digest. */
  async migrate(): Promise<MigrationStats> {
    const startAt = performance.now();
    const onAbort = () => this.fail(new PagewireError("EABORTED", "the migration was cancelled"));
    this.options.signal?.addEventListener("abort", onAbort);
    try {
      if (this.options.signal?.aborted) onAbort();
      this.latch.check();
      const sender = await this.connect();
      this.proof.prepare(this.options.trackByHash ? this.cores : undefined);
      const dataAt = performance.now();
      const setupBytes = this.transferred;
      this.dataStart = dataAt;
      this.progress.start(dataAt);
      for (const core of this.cores) {
        core.setEncoding({ lz4: this.options.compress, delta: this.options.delta, freePageHints: this.options.freePageHints, rawRuns: true, trackHashes: this.options.trackByHash });
        // This destination holds none of the pages an earlier migration of the region sent.
        if (this.options.delta) core.forgetDeltaBases();
      }
      sender.sync(); // starts dirty logging: marks from before are dropped, every page is sent at least once
      const live = await runLiveRounds({
        policy: this.policy,
        sync: () => this.sync(),
        sendRound: async (plan, owed) => {
          const report = await this.resumable(() => sender.sendRound(sender.round + 1, plan, false, owed));
          return report && this.reported(report);
        },
        stats: (s) => roundStats(this.sender!, this.counters, this.dataStart, this.proof.pauseOverheadMs, s),
        throttle: (fraction) => this.setThrottle(fraction),
        synced: (remaining) => this.emitProgress(true, remaining),
      });
      const { rounds, decision, dirtyRate } = live;
      const precopyEndBytes = this.transferred;
      const expectedDowntime = expectedDowntimeMs(live.stats);
      const postcopy = decision.action === "postcopy";
      // The destination catches up with the bytes in flight, both ends' digests with what was read; a break is resumed.
      await this.resumable(() => settleBeforePause([sender.untilAcknowledged(sender.round), postcopy ? undefined : this.proof.settled()], live.stats).then(() => this.latch.check()));
      const { pauseAt, proof, last } = await this.pause(postcopy);
      let verifyTime: number;
      let postcopyTime = 0;
      if (postcopy) {
        const switchAt = performance.now();
        rounds.push(...(await this.postcopyRounds(proof)));
        verifyTime = await this.returnPath!.done;
        postcopyTime = performance.now() - switchAt;
      } else {
        const deviceState = await this.deviceState();
        let owedAtPause = last.owed;
        for (;;) {
          // A break up to the moment the completion goes is resumed: the final round again.
          const final = await this.resumable(async () => {
            const report = await sender.sendRound(sender.round + 1, {}, true, owedAtPause);
            await sendDeviceState(this.control, deviceState);
            await this.complete(proof);
            return report;
          });
          if (final) {
            rounds.push(this.reported(final));
            break;
          }
          owedAtPause = this.sync().owed; // the pages requeued after the break
        }
        verifyTime = await this.returnPath!.done;
      }
      const endAt = performance.now();
      for (const c of this.channels) c.close();
      return migrationStats({
        policy: { name: this.policy.name, parameters: this.policy.parameters, "stop-reason": decision.reason },
        counters: this.counters,
        // Channels that encode on their own threads count what they encoded on their lanes.
        encoded: addEncodeStats([...this.cores.map((c) => c.encodeStats()), ...this.frames.flatMap((f) => (f.encodeStats ? [f.encodeStats()] : []))]),
        rounds, pageSize: this.regions[0].pageSize, totalPages: sender.totalPages, channels: this.channels.length,
        startAt, dataAt, pauseAt, switchoverAckAt: this.switchoverAcked, endAt,
        transferred: this.transferred, setupBytes, precopyEndBytes,
        postcopy, postcopyTime, dirtyRate, verifyTime, expectedDowntime, pauseHashedBytes: this.proof.pauseHashedBytes, digestThreadMs: this.proof.threadTime.ms,
      });
    } catch (error) {
      this.fail(asError(error));
      this.setThrottle(0);
      if (this.paused && !this.switchedOver && this.options.hooks?.resume) await this.options.hooks.resume();
      this.paused = false;
      throw this.finalError(this.latch.error!);
    } finally {
      this.options.signal?.removeEventListener("abort", onAbort);
    }
  }

  private readonly links: SourceChannels;
  /** Reconnections so far, and whether the completion went (no resumption after it: done may be on its way). */
  private reconnects = 0;
  private completeSent = false;

  /** Opens every channel (resuming: as a reconnection) and starts reading the return path. */
  private async openChannels(resuming: boolean): Promise<PageChannel[]> {
    const opened = await this.links.open(resuming, this.latch, () => ({
      ack: (round) => {
        if (this.switchedOver && this.switchoverAcked === 0) this.switchoverAcked = performance.now();
        this.sender?.roundAcknowledged(round);
        this.emit("ack", round);
      },
      pageRequest: this.switchedOver ? (request) => this.postcopy!.request(request) : undefined,
      stillMissing: this.stillMissing ? (m) => this.stillMissing!(m) : undefined,
    }), () => this.completeSent);
    this.channels = opened.ends;
    this.control = opened.control;
    this.frames = opened.frames;
    this.key = opened.key;
    this.returnPath = opened.returnPath;
    return opened.frames;
  }

  private async connect(): Promise<RoundSender> {
    // A break during the first handshakes is a reconnection too (nothing to requeue yet).
    const opened = await this.resumable(() => this.openChannels(false), async () => 0);
    const channels = opened ?? this.frames;
    const o = this.options;
    this.sender = new RoundSender(this.cores, channels, this.latch, this.counters, {
      bandwidth: o.bandwidth,
      resumable: (this.options.reconnect ?? 0) > 0,
      onBatch: () => this.emitProgress(false),
      // The digest's chunks are hashed as the rounds read them: the first pass, then the paused round.
      onPassed: (region, from, to, firstPass) => this.proof.passed(region, from, to, { firstPass, frozen: this.paused }),
    });
    this.postcopy = new PostcopySource(this.sender, this.latch, this.counters);
    return this.sender;
  }

  /**
   * Runs a step of the pre-copy rounds; when the connection breaks under it and reconnecting is
   * allowed, reconnects and requeues every page the destination may lack, and returns undefined
   * (the step is cut short: the caller syncs and carries on). Nothing is resumed after the
   * completion went out, nor after a post-copy switch-over.
   */
  private async resumable<T>(step: () => Promise<T>, resume = () => this.requeue()): Promise<T | undefined> {
    try {
      return await step();
    } catch (error) {
      if (!this.mayReconnect(error)) throw error;
      await this.reconnect(error as Error, resume);
      return undefined;
    }
  }

  /** Pre-copy's way on after a reconnection: the pages of unacknowledged rounds go again, whole. */
  private async requeue(): Promise<number> {
    const requeued = this.sender!.requeueUnacknowledged();
    // A requeued page's delta base may never have arrived: each goes whole once more.
    if (this.options.delta) for (const core of this.cores) core.forgetDeltaBases();
    return requeued;
  }

  private mayReconnect(error: unknown): boolean {
    if (this.reconnects >= (this.options.reconnect ?? 0) || this.completeSent || this.options.signal?.aborted) return false;
    return error instanceof WireError && (error.reason === "connection" || error.reason === "truncated");
  }

  /**
   * Reconnects after `cause`, as often as allowed, each after a pause that grows; `resume`, started
   * as the channels open, settles what the destination lacks (resolves with how many pages go again).
   */
  private async reconnect(cause: Error, resume: () => Promise<number>): Promise<void> {
    let last: unknown = cause;
    while (this.mayReconnect(last)) {
      this.reconnects++;
      await new Promise((resolve) => setTimeout(resolve, (this.options.reconnectDelayMs ?? 250) * this.reconnects));
      if (this.options.signal?.aborted) break;
      for (const c of this.channels) c.fail(asWireError(cause));
      this.latch = new FailureLatch();
      this.arm(this.latch);
      // Before the return path reads: a page request may be its first frame.
      if (this.sender) this.postcopy = new PostcopySource(this.sender, this.latch, this.counters);
      try {
        // Started before the channels open: post-copy's answer may be the first frame back.
        const settled = resume();
        settled.catch(() => undefined); // awaited below, unless opening fails first
        const channels = await this.openChannels(true);
        this.sender?.rebind(channels, this.latch);
        const requeued = await settled;
        this.emit("reconnected", { attempt: this.reconnects, round: this.sender?.round ?? 0, cause: cause.message, requeuedPages: requeued });
        return;
      } catch (error) {
        last = error;
      }
    }
    if (this.options.signal?.aborted) throw new PagewireError("EABORTED", "the migration was cancelled");
    const error = last instanceof Error ? last : cause;
    if (this.reconnects > 0 && !error.message.includes("reconnect")) error.message += ` (after ${this.reconnects} reconnection${this.reconnects > 1 ? "s" : ""})`;
    throw error;
  }

  private reported(report: RoundReport): RoundReport {
    this.emit("round", report);
    return report;
  }

  private sync() {
    this.options.hooks?.beforeSync?.();
    // Pages changed by writers that mark nothing: found by comparing each with what was sent.
    if (this.options.trackByHash) for (const core of this.cores) core.trackByHash();
    const result = this.sender!.sync();
    if (!this.paused) this.proof.synced();
    return result;
  }

  private async deviceState(): Promise<Uint8Array> {
    return (await this.options.hooks?.deviceState?.()) ?? new Uint8Array(0);
  }

  /** Sends the digests (once the pool has them) for the destination to check against its memory. */
  private async complete(digests: () => Promise<bigint[]>): Promise<void> {
    const values = await digests();
    this.latch.check();
    const complete = encodeComplete({ digests: values }, this.key);
    // Only a done that answers this completion counts: before it, or with another MAC, it is refused.
    this.returnPath!.expectDone(this.key, complete.subarray(complete.length - MAC_BYTES));
    this.completeSent = true;
    await this.control.send(FrameType.complete, complete);
  }

  /**
   * Post-copy from the pause: the switch-over (after which the destination resumes the guest),
   * then the push of every missing page, whole (no delta base is trusted any more), then the sum
   * of page hashes taken at the pause.
   */
  private async postcopyRounds(sums: () => Promise<bigint[]>): Promise<RoundReport[]> {
    const postcopy = this.postcopy!;
    const { report, missing } = await postcopy.switchOver(this.control, async () => {
      await sendDeviceState(this.control, await this.deviceState());
      this.switchedOver = true;
      this.emit("switchover");
    });
    const switchover = this.reported(report);
    for (const core of this.cores) core.setEncoding({ lz4: this.options.compress, freePageHints: this.options.freePageHints, rawRuns: true, trackHashes: this.options.trackByHash });
    let toPush = missing;
    let pushed: RoundReport | undefined;
    while (!pushed) {
      pushed = await this.resumable(
        async () => {
          const report = await this.postcopy!.push(toPush);
          await this.complete(sums);
          return report;
        },
        () => {
          this.sender!.forgetUnacknowledged();
          return this.receiveStillMissing().then((n) => (toPush = n));
        },
      );
    }
    return [switchover, this.reported(pushed)];
  }

  /** Set while a post-copy reconnection waits for the destination's bitmaps of the pages it still lacks. */
  private stillMissing: ((m: Switchover) => void) | undefined;

  /** After a post-copy reconnection: the pages the destination still lacks become the push set. */
  private receiveStillMissing(): Promise<number> {
    const { handle, missing } = collectStillMissing(this.cores, this.latch);
    this.stillMissing = handle;
    return missing.finally(() => (this.stillMissing = undefined));
  }

  /**
   * Pauses the guest, syncs (the embedder's last flush into the region included), and gets the
   * proof of its memory, now frozen, under way (SourceProof.atPause). With free-page hints, the
   * hinted pages sent as zero unread are zeroed here first, so the digests agree.
   */
  private async pause(postcopy: boolean): Promise<{ pauseAt: number; proof: () => Promise<bigint[]>; last: SyncResult }> {
    const pauseAt = performance.now();
    await this.options.hooks?.pause?.();
    this.paused = true;
    this.latch.check();
    const last = this.sync();
    if (this.options.freePageHints) {
      for (const core of this.cores) {
        core.markChunksStale(core.region.layout.freeBitmap);
        core.zeroFreePages();
      }
    }
    return { pauseAt, proof: this.proof.atPause(postcopy, (error) => this.fail(error)), last };
  }

  private setThrottle(fraction: number): void {
    if (fraction === this.throttled) return;
    this.throttled = fraction;
    this.counters.maxThrottle = Math.max(this.counters.maxThrottle, fraction);
    this.options.hooks?.throttle?.(fraction);
  }

  private emitProgress(force: boolean, remaining = this.sender!.remainingPages): void {
    const progress = this.progress.next(force, this.transferred, () => ({
      phase: this.switchedOver ? "postcopy" : this.paused ? "paused" : "live",
      round: this.sender!.round,
      remainingPages: remaining,
      sentPages: this.counters.pages,
      expectedDowntimeMs: expectedDowntimeMs(roundStats(this.sender!, this.counters, this.dataStart, this.proof.pauseOverheadMs, { dirtyPages: remaining, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 }), remaining),
    }));
    if (progress) this.emit("progress", progress);
  }
}

// A live checkpoint into a file (docs/CHECKPOINT.md): pre-copy rounds write the guest's pages at
// fixed offsets while it runs (any policy decides when to stop), then the pause, the last pages,
// the device state, the digests, and the header, sealed and synced last; the file appears under
// its name only then. A layer holds only the pages dirtied since its base checkpoint.
import { EventEmitter } from "node:events";
import { open, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { Core } from "../core/core.js";
import { DigestPool } from "../core/digest.js";
import { DigestTracker } from "../core/digest-tracker.js";
import type { Region } from "../memory/region.js";
import type { Policy } from "../policy/policy.js";
import { precopy } from "../policy/precopy.js";
import { PagewireError } from "../errors.js";
import { FailureLatch, asError } from "../migration/failure.js";
import { RoundSender } from "../migration/round-sender.js";
import { roundStats, runLiveRounds } from "../migration/live-rounds.js";
import { PauseCost } from "../migration/pause-overhead.js";
import { SourceCounters, type RoundReport } from "../migration/stats.js";
import type { SourceHooks } from "../migration/source-options.js";
import { CheckpointFile, FileChannel, type FileRegion } from "./file-channel.js";
import { CheckpointFlags, encodeHeader, planFile, type CheckpointHeader } from "./format.js";

export interface CheckpointOptions {
  /** Where the checkpoint goes; it is written as PATH.partial and renamed once complete. */
  path: string;
  /** When to stop iterating. Default precopy() (300 ms downtime limit). */
  policy?: Policy;
  /** The guest's hooks, as a Source takes them: pause, resume, deviceState, beforeSync, throttle. */
  hooks?: SourceHooks;
  /**
   * Write a layer over this checkpoint: only the pages dirtied since it was taken. The regions'
   * dirty log must have run since (the guest paused for `base` in this process, or was restored
   * from it here), with no other sync in between.
   */
  base?: CheckpointHeader;
  /** Writers in parallel (the file's multifd channels). Default 2. */
  channels?: number;
  /** Leave the guest paused afterwards (a checkpoint before stopping it). Default false: it runs on. */
  stayPaused?: boolean;
}

export interface CheckpointStats {
  status: "completed";
  layer: boolean;
  policy: { name: string; parameters: Record<string, unknown>; "stop-reason": string };
  /** ms from the start to the synced header, and of the pause. */
  "total-time": number;
  downtime: number;
  rounds: number;
  /** Pages written, every round (a page written twice counts twice), and their bytes. */
  pages: number;
  "bytes-written": number;
  /** The file's length, and what it takes on disk (zero pages are holes). */
  "file-bytes": number;
  "disk-bytes": number;
  "device-state-bytes": number;
  /** Megabytes written per second, over the whole checkpoint. */
  mbps: number;
}

export interface CheckpointEvents {
  round: [report: RoundReport];
}

export class Checkpoint extends EventEmitter<CheckpointEvents> {
  private readonly cores: Core[];
  private readonly latch = new FailureLatch();
  private readonly counters = new SourceCounters();
  private readonly digests = DigestPool.shared();

  constructor(
    readonly regions: Region[],
    readonly options: CheckpointOptions,
  ) {
    super();
    if (regions.length === 0) throw new PagewireError("EOPTION", "a checkpoint needs at least one region");
    const { base } = options;
    if (base && (base.pageSize !== regions[0].pageSize || base.regions.length !== regions.length || base.regions.some((r, i) => r.pageCount !== regions[i].pageCount))) {
      throw new PagewireError("EOPTION", "a layer's guest must have the shape of its base: the same page size and regions");
    }
    this.cores = regions.map((r) => new Core(r));
  }

  /** Writes the checkpoint; resolves with its header (what a layer over it, or a restore, needs) and statistics. */
  async write(): Promise<{ header: CheckpointHeader; stats: CheckpointStats }> {
    const o = this.options;
    const start = performance.now();
    const layer = o.base !== undefined;
    const pageSize = this.regions[0].pageSize;
    const plan = planFile(pageSize, this.regions.map((r) => r.pageCount));
    const partial = `${o.path}.partial`;
    const handle = await open(partial, "w");
    let paused = false;
    try {
      const fileRegions: FileRegion[] = plan.regions.map((p) => ({
        pageSize, pageCount: p.pageCount, dataOffset: p.dataOffset,
        holdsData: new Uint8Array(Math.ceil(p.pageCount / 8)),
        inLayer: layer ? new Uint8Array(Math.ceil(p.pageCount / 8)) : undefined,
      }));
      // Pages never written read as zero: the file starts as one hole of the guest's size.
      await handle.truncate(plan.deviceStateOffset);
      const file = new CheckpointFile(handle, fileRegions);
      const channels = Array.from({ length: o.channels ?? 2 }, () => new FileChannel(file));
      // The digest's group terms kept current while the guest runs: the pause hashes what changed.
      // A layer's rounds read only what changed since its base: its other chunks are hashed at once.
      const tracker = new DigestTracker(this.regions, this.digests, layer ? "now" : "as-read");
      const sender = new RoundSender(this.cores, channels, this.latch, this.counters, { startSent: layer, onPassed: (r, from, to, firstPass) => tracker.passed(r, from, to, { firstPass, frozen: paused }) });
      for (const core of this.cores) core.setEncoding({ rawRuns: true });
      const pauseCost = new PauseCost(this.regions, this.digests.threads);
      const policy = o.policy ?? precopy();
      const sync = () => {
        o.hooks?.beforeSync?.();
        const result = sender.sync();
        if (!paused) tracker.tick();
        return result;
      };
      sync(); // a full checkpoint: every page goes at least once; a layer: the marks since its base are kept
      const live = await runLiveRounds({
        policy,
        sync,
        sendRound: async (roundPlan, owed) => this.reported(await sender.sendRound(sender.round + 1, roundPlan, false, owed)),
        stats: (s) => roundStats(sender, this.counters, start, pauseCost.ms(tracker.staleBytes()), s),
        throttle: (fraction) => o.hooks?.throttle?.(fraction),
        synced: () => undefined,
      });
      if (live.decision.action === "postcopy") throw new PagewireError("EOPTION", `a checkpoint cannot use post-copy (policy ${policy.name})`);
      // What the live rounds wrote goes to disk while the guest still runs: the pause syncs only the last round.
      await handle.datasync();
      const pauseAt = performance.now();
      await o.hooks?.pause?.();
      paused = true;
      const last = sync(); // the embedder's last flush included: only then is memory final
      const rounds = [...live.rounds, this.reported(await sender.sendRound(sender.round + 1, {}, true, last.owed))];
      // The final round hashed what it read; this hashes what is left, while the rest is written.
      const digests = tracker.digests();
      digests.catch(() => undefined); // awaited below
      const deviceState = (await o.hooks?.deviceState?.()) ?? new Uint8Array(0);
      await handle.write(deviceState, 0, deviceState.length, plan.deviceStateOffset);
      // Which pages the file holds: a layer's, or a full checkpoint's pages with data.
      for (const [i, r] of fileRegions.entries()) {
        const bitmap = r.inLayer ?? r.holdsData;
        await handle.write(bitmap, 0, bitmap.length, plan.regions[i].bitmapOffset);
      }
      const header: CheckpointHeader = {
        flags: CheckpointFlags.complete | (layer ? CheckpointFlags.layer : 0),
        pageSize,
        id: randomBytes(16),
        baseId: o.base?.id ?? new Uint8Array(16),
        deviceStateOffset: plan.deviceStateOffset,
        deviceStateLength: deviceState.length,
        createdAt: Date.now(),
        fileLength: plan.deviceStateOffset + deviceState.length,
        regions: plan.regions.map((p) => ({ ...p, digest: 0n })),
      };
      const values = (await digests).digests;
      header.regions.forEach((r, i) => (r.digest = values[i]));
      await handle.truncate(header.fileLength);
      await handle.datasync(); // every page and the device state are on disk before the header says so
      await handle.write(encodeHeader(header), 0, undefined, 0);
      await handle.datasync();
      await handle.close();
      await rename(partial, o.path);
      const downtime = performance.now() - pauseAt;
      if (!o.stayPaused) await o.hooks?.resume?.();
      paused = false;
      const totalTime = performance.now() - start;
      const { blocks } = await stat(o.path);
      return {
        header,
        stats: {
          status: "completed", layer,
          policy: { name: policy.name, parameters: policy.parameters, "stop-reason": live.decision.reason },
          "total-time": totalTime, downtime, rounds: rounds.length, pages: this.counters.pages,
          "bytes-written": sender.transferred, "file-bytes": header.fileLength, "disk-bytes": blocks * 512,
          "device-state-bytes": deviceState.length, mbps: sender.transferred / 1e6 / (totalTime / 1000),
        },
      };
    } catch (error) {
      this.latch.fail(asError(error));
      await handle.close().catch(() => undefined); // closed already when the failure came after it
      await rm(partial, { force: true });
      if (paused) await o.hooks?.resume?.();
      throw error;
    }
  }

  private reported(report: RoundReport): RoundReport {
    this.emit("round", report);
    return report;
  }
}

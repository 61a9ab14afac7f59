// Runs a source from checked settings: builds the guest, starts its writers or workload, migrates
// with progress on stderr (a live line, or JSON lines), and returns what to print. Shared by
// `send` and `migrate`.
import { createHash } from "node:crypto";
import { Source } from "../migration/source.js";
import { PagewireError } from "../errors.js";
import type { MigrationStats } from "../migration/stats.js";
import type { Region } from "../memory/region.js";
import { formatBytes } from "./units.js";
import { startCheckpointGuest, startSyntheticGuest, startWorkloadGuest, type RunningGuest } from "./running-guest.js";
import { ProgressLine, progressText, type WorkloadReport } from "./render.js";
import type { SourceSettings } from "./settings.js";

export interface SourceResult {
  stats: MigrationStats;
  guestBytes: number;
  workload?: WorkloadReport;
  /** SHA-256 of the guest's memory as it was at the pause (with --sha256). */
  sha256?: string;
}

/** SHA-256 of regions' guest memory, independent of the protocol's own digest. */
export function sha256(regions: Region[]): string {
  const hash = createHash("sha256");
  for (const r of regions) hash.update(r.pages(0, r.pageCount));
  return hash.digest("hex");
}

/** Progress on stderr: a line that rewrites itself on a terminal, JSON lines, or nothing. */
export class ProgressReport {
  private readonly line = new ProgressLine();

  constructor(readonly mode: SourceSettings["progress"]) {}

  show(text: string, json?: object): void {
    if (this.mode === "line") this.line.show(text);
    else if (this.mode === "json" && json) process.stderr.write(JSON.stringify(json) + "\n");
  }

  /** A line that stays, or a JSON line. */
  log(text: string, json?: object): void {
    if (this.mode === "line") this.line.log(text);
    else if (this.mode === "json" && json) process.stderr.write(JSON.stringify(json) + "\n");
  }

  done(): void {
    this.line.done();
  }
}

/** How a controller (the QMP socket) follows and steers a run: it sees the Source, and may cancel. */
export interface RunControl {
  signal?: AbortSignal;
  onSource?(source: Source): void;
}

export async function runSource(host: string, port: number, s: SourceSettings, control: RunControl = {}): Promise<SourceResult> {
  const out = new ProgressReport(s.progress);
  const prepareStart = performance.now();
  const guest = s.from
    ? await startCheckpointGuest(s.from)
    : s.workload
      ? await startWorkloadGuest(s)
      : startSyntheticGuest(s, (f) => out.show(`preparing a ${formatBytes(s.size)} guest of mixed pages: ${(f * 100).toFixed(0)}%`));
  try {
    out.log(`guest: ${formatBytes(s.size)} in ${guest.regions.length} region(s), prepared in ${((performance.now() - prepareStart) / 1000).toFixed(1)} s; ${guest.describe}`);
    const before = await guest.rate(s.warmupMs, (r) => out.show(`${guest.describe}: ${r.toFixed(1)} ${guest.unit}/s before the migration`));
    return await migrateGuest(host, port, s, guest, before, out, control);
  } finally {
    await guest.stop();
  }
}

async function migrateGuest(host: string, port: number, s: SourceSettings, guest: RunningGuest, before: number, out: ProgressReport, control: RunControl): Promise<SourceResult> {
  // The guest's progress when it paused: its rate during the migration is over the live phase only.
  let pausedAt: ReturnType<RunningGuest["progress"]> | undefined;
  const cancel = new AbortController();
  let postcopyActive = false;
  let warned = false;
  const onInterrupt = () => {
    // After the switch-over the guest runs on the destination with part of its memory here:
    // cancelling loses it, so the first Ctrl-C only warns (QEMU refuses migrate_cancel then).
    if (postcopyActive && !warned) {
      warned = true;
      out.done();
      process.stderr.write("\npost-copy is active: the guest runs on the destination and part of its memory is still here. Cancelling now loses the guest on both sides. Press Ctrl-C again to cancel anyway.\n");
      return;
    }
    cancel.abort();
  };
  process.on("SIGINT", onInterrupt);
  const signals = [cancel.signal, ...(control.signal ? [control.signal] : []), ...(s.timeoutMs === undefined ? [] : [AbortSignal.timeout(s.timeoutMs)])];
  const signal = AbortSignal.any(signals);
  const source = new Source(guest.regions, {
    signal,
    host,
    port,
    secret: s.secret,
    channels: s.channels,
    channelThreads: s.channelThreads,
    fullDigest: s.fullDigest,
    policy: s.policy,
    compress: s.compress,
    delta: s.delta,
    freePageHints: s.freePageHints,
    bandwidth: s.bandwidth,
    timeoutMs: s.timeoutMs,
    tls: s.tls,
    reconnect: s.reconnect,
    hooks: {
      ...guest.hooks,
      pause: async () => {
        await guest.hooks.pause?.();
        pausedAt = guest.progress();
      },
    },
  });
  let lastSample = guest.progress();
  let guestRate = before;
  source.on("progress", (p) => {
    const now = guest.progress();
    if (now.at - lastSample.at >= 200) {
      guestRate = ((now.steps - lastSample.steps) * 1000) / (now.at - lastSample.at);
      lastSample = now;
    }
    out.show(`${progressText(p)} · guest ${guestRate.toFixed(1)} ${guest.unit}/s`, { type: "progress", ...p, guestRate });
  });
  source.on("round", (r) => out.log(`round ${r.round}${r.phase === "live" ? "" : ` (${r.phase})`}: ${r.pages.toLocaleString("en-US")} pages, ${formatBytes(r.bytes)} in ${r.ms.toFixed(0)} ms`, { type: "round", ...r }));
  source.on("reconnected", (e) =>
    out.log(`the connection broke in round ${e.round} (${e.cause}); reconnected (attempt ${e.attempt}), ${e.requeuedPages.toLocaleString("en-US")} unacknowledged pages to send again`, { type: "reconnected", ...e }),
  );
  source.on("switchover", () => {
    postcopyActive = true;
    out.log("switched over: the guest runs on the destination now (Ctrl-C would lose it)", { type: "switchover" });
  });
  control.onSource?.(source);
  const startedAt = guest.progress();
  try {
    const stats = await source.migrate();
    out.done();
    const live = stats["dirty-sync-count"] > 0 && pausedAt !== undefined ? pausedAt : undefined;
    const during = live && ((live.steps - startedAt.steps) * 1000) / Math.max(1, live.at - startedAt.at);
    const workload = guest.workload && s.workload ? { kernel: s.workload.kernel, before, during, lastStepAt: guest.workload.lastStepAt, pausedAt: guest.workload.iterations } : undefined;
    // The guest stays paused after a completed migration: its memory is as it was at the pause.
    return { stats, guestBytes: guest.regions.reduce((sum, r) => sum + r.pageCount * r.pageSize, 0), workload, sha256: s.sha256 ? sha256(guest.regions) : undefined };
  } catch (error) {
    out.done();
    const timeout = s.timeoutMs !== undefined && signal.aborted && !cancel.signal.aborted && !control.signal?.aborted;
    throw timeout ? timedOut(s.timeoutMs!, error as Error) : error;
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

function timedOut(ms: number, cause: Error): Error {
  return new PagewireError("ETIMEOUT", `the migration did not complete within --timeout ${ms / 1000} s and was cancelled (${cause.message}); the guest runs on here`);
}

// What the commands print: a live progress line on a terminal, then tables.
import type { Progress } from "../migration/source.js";
import type { MigrationStats } from "../migration/stats.js";
import type { Received } from "../migration/listener.js";
import { formatBytes, formatCount, formatMs } from "./units.js";

/**
 * What the application saw, for a migration of a workload. Rates are in steps per second: a step is
 * a kernel's fixed unit of work (a plane, a row, a chunk of rows), shorter than an iteration, which
 * at 1 GiB can outlast a whole migration.
 */
export interface WorkloadReport {
  kernel: string;
  /**
   * Steps per second before the migration, during its live phase (start to pause; undefined when
   * it had none, as under stop-copy and post-copy), and after it on the destination.
   */
  before: number;
  during?: number;
  after?: number;
  /** Wall-clock ms of the last step on the source, and of the first on the destination. */
  lastStepAt: number;
  firstStepAt?: number;
  /** Iterations done on the source when it paused. */
  pausedAt: number;
}

export class ProgressLine {
  private readonly live: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.live = stream.isTTY === true;
  }

  show(text: string): void {
    if (this.live) this.stream.write(`\r\x1b[K${text}`);
  }

  /** A line that stays (printed on any stream). */
  log(text: string): void {
    this.stream.write(this.live ? `\r\x1b[K${text}\n` : `${text}\n`);
  }

  done(): void {
    if (this.live) this.stream.write("\r\x1b[K");
  }
}

export function progressText(p: Progress): string {
  const downtime = Number.isFinite(p.expectedDowntimeMs) ? formatMs(p.expectedDowntimeMs) : "?";
  return `round ${p.round}${p.phase === "live" ? "" : ` (${p.phase})`} · ${formatCount(p.remainingPages)} pages left · ${p.rate.toFixed(0)} MB/s · sent ${formatBytes(p.transferred)} · expected downtime ${downtime}`;
}

/** Whether the pause kept the downtime limit the policy was given, if it was given one. */
export function downtimeLimitBroken(s: MigrationStats): number | undefined {
  const limit = s.policy.parameters["downtime-limit"];
  if (typeof limit !== "number" || s.rounds.some((r) => r.phase === "postcopy")) return undefined;
  return s.downtime > limit ? limit : undefined;
}

function downtimeVerdict(s: MigrationStats): string {
  const limit = downtimeLimitBroken(s);
  return limit === undefined ? "" : `: the downtime limit of ${formatMs(limit)} was BROKEN`;
}

export function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n");
}

export function sourceTable(s: MigrationStats, guestBytes: number): string {
  const rows: Array<[string, string]> = [
    ["policy", `${s.policy.name} ${Object.entries(s.policy.parameters).map(([k, v]) => `${k}=${v}`).join(" ")}`.trim()],
    ["stopped because", s.policy["stop-reason"]],
    ["total time", formatMs(s["total-time"])],
    ["setup time", formatMs(s["setup-time"])],
    ["downtime", `${formatMs(s.downtime)} (expected ${formatMs(s["expected-downtime"])})${downtimeVerdict(s)}`],
    ["guest memory", formatBytes(guestBytes)],
    ["transferred", `${formatBytes(s.transferred)} (${((100 * s.transferred) / guestBytes).toFixed(1)}% of memory)`],
    ["  before pause / during", `${formatBytes(s["precopy-bytes"])} / ${formatBytes(s["downtime-bytes"])}`],
    ["zero pages", formatCount(s.duplicate)],
    ["raw pages", formatCount(s.normal)],
    ["lz4 pages", formatCount(s["lz4-pages"])],
    ["delta pages", `${formatCount(s.xbzrle.pages)} (cache misses ${formatCount(s.xbzrle["cache-miss"])}, overflows ${formatCount(s.xbzrle.overflow)}, unchanged ${formatCount(s["unchanged-pages"])})`],
    ["rounds (dirty syncs)", `${s.rounds.length} (${s["dirty-sync-count"]})`],
    ["dirty rate at last sync", `${formatCount(s["dirty-pages-rate"])} pages/s`],
    ["throughput", `${s.mbps.toFixed(0)} Mbit/s, ${formatCount(s["pages-per-second"])} pages/s`],
    ["channels", String(s.channels)],
    ["digest check", `${formatMs(s["verify-time"])} on the destination; the proof took ${formatMs(s["digest-thread-time"])} of digest-thread time here`],
  ];
  if (s["skipped-pages"] > 0) rows.push(["skipped (dirty again)", `${formatCount(s["skipped-pages"])} pages`]);
  if (s["cpu-throttle-percentage"] > 0) rows.push(["auto-converge throttle", `up to ${s["cpu-throttle-percentage"]}%`]);
  if (s["postcopy-time"] > 0) {
    rows.push(["post-copy", `${formatMs(s["postcopy-time"])}, ${formatBytes(s["postcopy-bytes"])}; ${formatCount(s["postcopy-requests"])} requests for ${formatCount(s["postcopy-requested-pages"])} pages`]);
  }
  const rounds = s.rounds.map((r) => `  ${String(r.round).padStart(5)}  ${formatCount(r["dirty-pages"]).padStart(11)}  ${formatCount(r.pages).padStart(11)}  ${formatBytes(r.bytes).padStart(10)}  ${formatMs(r.ms).padStart(9)}${r.phase === "live" ? "" : `  (${r.phase})`}`);
  return `${table(rows)}\n\n  round  dirty pages   pages sent       bytes       time\n${rounds.join("\n")}`;
}

export function destinationTable(r: Received): string {
  return table([
    ["migration", r.migrationId],
    ["received", formatBytes(r.stats.received)],
    ["pages applied", formatCount(r.stats.pages)],
    ["rounds", String(r.stats.rounds)],
    ["digest check", `${formatMs(r.stats["verify-time"])}, ${formatBytes(r.stats["verify-hashed-bytes"])} hashed at the end; the proof took ${formatMs(r.stats["digest-thread-time"])} of digest-thread time`],
    ["device state", formatBytes(r.stats["device-state-bytes"])],
    ...(r.stats["postcopy-faults"] > 0 || r.stats["postcopy-requests"] > 0
      ? [["post-copy", `${formatCount(r.stats["postcopy-faults"])} faults, ${formatCount(r.stats["postcopy-requests"])} requests, guest blocked ${formatMs(r.stats["postcopy-blocked-ms"])}`] as [string, string]]
      : []),
  ]);
}

export function workloadTable(w: WorkloadReport, s: MigrationStats): string {
  const rate = (x: number | undefined) => (x === undefined ? "?" : `${x.toFixed(1)} steps/s`);
  const appDowntime = w.firstStepAt !== undefined ? formatMs(w.firstStepAt - w.lastStepAt) : "?";
  return `  what the application saw (${w.kernel})\n${table([
    ["before the migration", rate(w.before)],
    ["while the migration ran live", w.during === undefined ? "(no live phase)" : `${rate(w.during)}${w.before > 0 ? ` (${((100 * w.during) / w.before).toFixed(0)}% of before)` : ""}`],
    ["after, on the destination", rate(w.after)],
    ["paused at iteration", formatCount(w.pausedAt)],
    ["downtime it saw", `${appDowntime} (last step here to first step there; the engine measured ${formatMs(s.downtime)})`],
  ])}`;
}

// What the QMP commands mean for pagewire's two sides, in QEMU's terms: the source's migration
// (status, its `ram` statistics, the parameters and capabilities that map onto pagewire's options,
// `migrate`, `migrate_cancel`), and the destination's incoming migrations.
import type { Source, Progress } from "../migration/source.js";
import type { MigrationStats } from "../migration/stats.js";
import type { Listener } from "../migration/listener.js";
import { policyByName } from "../policy/index.js";
import { MAX_CHANNELS } from "../wire/constants.js";
import type { QmpTarget } from "./qmp.js";
import type { SourceSettings } from "./settings.js";

/** QEMU's MigrationStatus values that pagewire passes through. */
export type MigrationStatus = "none" | "setup" | "active" | "postcopy-active" | "completed" | "failed" | "cancelled";

/** QEMU's MigrationStats (query-migrate's `ram`) from pagewire's statistics. */
function ram(s: MigrationStats): Record<string, number> {
  return {
    transferred: s.transferred,
    remaining: 0,
    total: s["total-pages"] * s["page-size"],
    duplicate: s.duplicate,
    normal: s.normal,
    "normal-bytes": s["normal-bytes"],
    "dirty-pages-rate": s["dirty-pages-rate"],
    mbps: s.mbps,
    "dirty-sync-count": s["dirty-sync-count"],
    "postcopy-requests": s["postcopy-requests"],
    "page-size": s["page-size"],
    "pages-per-second": s["pages-per-second"],
    "precopy-bytes": s["precopy-bytes"],
    "downtime-bytes": s["downtime-bytes"],
    "postcopy-bytes": s["postcopy-bytes"],
  };
}

function refuse(desc: string): never {
  throw new Error(desc);
}

/** The source's side: settings that migrate-set-parameters changes until `migrate` starts. */
export class SourceControl implements QmpTarget {
  status: MigrationStatus = "none";
  private readonly cancelling = new AbortController();
  private progress: Progress | undefined;
  private stats: MigrationStats | undefined;
  private errorDesc: string | undefined;
  private startedAt = 0;
  private events = false;
  private multifd = false;
  private multifdChannels: number;
  private started = false;
  /** What `quit` does (the command sets it). */
  quit?: () => void;

  constructor(
    private settings: SourceSettings,
    /** Starts the migration to HOST:PORT with the settings as they are then. */
    private readonly start: (host: string, port: number, settings: SourceSettings) => void,
    /** Sends a QMP event. */
    private readonly event: (name: string, data: Record<string, unknown>) => void,
  ) {
    this.multifdChannels = settings.channels > 1 ? settings.channels : 2;
    this.multifd = settings.channels > 1;
  }

  get signal(): AbortSignal {
    return this.cancelling.signal;
  }

  /** The migration's state changed: remembered for query-migrate, and a MIGRATION event when asked for. */
  setStatus(status: MigrationStatus, detail: { stats?: MigrationStats; error?: Error } = {}): void {
    if (status === this.status) return;
    this.status = status;
    if (detail.stats) this.stats = detail.stats;
    if (detail.error) this.errorDesc = detail.error.message;
    if (this.events) this.event("MIGRATION", { status });
  }

  /** Follows a running Source. */
  follow(source: Source): void {
    this.startedAt = performance.now();
    source.on("progress", (p) => {
      this.progress = p;
      if (this.status === "setup") this.setStatus("active");
    });
    source.on("switchover", () => this.setStatus("postcopy-active"));
  }

  info(): Record<string, unknown> {
    const status = this.status;
    if (status === "none") return {};
    const base: Record<string, unknown> = { status };
    if (this.stats) {
      const s = this.stats;
      return { ...base, "total-time": Math.round(s["total-time"]), "setup-time": Math.round(s["setup-time"]), downtime: Math.round(s.downtime), "expected-downtime": Math.round(s["expected-downtime"]), ram: ram(s), ...(s["cpu-throttle-percentage"] ? { "cpu-throttle-percentage": s["cpu-throttle-percentage"] } : {}) };
    }
    if (this.errorDesc !== undefined) return { ...base, "error-desc": this.errorDesc };
    const p = this.progress;
    if (!p) return base;
    const pageSize = this.settings.pageSize;
    return {
      ...base,
      "total-time": Math.round(performance.now() - this.startedAt),
      "expected-downtime": Number.isFinite(p.expectedDowntimeMs) ? Math.round(p.expectedDowntimeMs) : 0,
      ram: { transferred: p.transferred, remaining: p.remainingPages * pageSize, total: this.settings.size, "dirty-sync-count": Math.max(0, p.round - 1), mbps: p.rate * 8, "page-size": pageSize },
    };
  }

  parameters(): Record<string, unknown> {
    const limit = this.settings.policyParameters["downtime-limit"];
    return {
      "downtime-limit": Number(limit ?? 300),
      // QEMU's default is 128 MiB/s; pagewire's is no cap, reported as 0.
      "max-bandwidth": this.settings.bandwidth ?? 0,
      "multifd-channels": this.multifdChannels,
    };
  }

  setParameters(p: Record<string, unknown>): void {
    if (this.started) refuse("pagewire takes migration parameters before migrate only");
    const next = { ...this.settings, policyParameters: { ...this.settings.policyParameters } };
    for (const [key, value] of Object.entries(p)) {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) refuse(`Parameter '${key}' expects a number of 0 or more`);
      if (key === "downtime-limit") next.policyParameters["downtime-limit"] = value;
      else if (key === "max-bandwidth") next.bandwidth = value === 0 ? undefined : value;
      else if (key === "multifd-channels") {
        if (!Number.isInteger(value) || value < 1 || value > MAX_CHANNELS) refuse(`Parameter 'multifd-channels' expects 1 to ${MAX_CHANNELS}`);
        this.multifdChannels = value;
      } else refuse(`Parameter '${key}' is not supported by pagewire (it takes downtime-limit, max-bandwidth, multifd-channels)`);
    }
    // Build the policy now, so that a parameter it refuses is refused here.
    next.policy = policyByName(next.policyName, next.policyParameters);
    this.settings = next;
  }

  capabilities(): Array<{ capability: string; state: boolean }> {
    return [
      { capability: "xbzrle", state: this.settings.delta },
      { capability: "auto-converge", state: this.settings.policyParameters["auto-converge"] === true },
      { capability: "events", state: this.events },
      { capability: "multifd", state: this.multifd },
    ];
  }

  setCapabilities(caps: Array<{ capability: string; state: boolean }>): void {
    if (this.started) refuse("pagewire takes migration capabilities before migrate only");
    const next = { ...this.settings, policyParameters: { ...this.settings.policyParameters } };
    for (const { capability, state } of caps) {
      if (typeof state !== "boolean") refuse(`Capability '${capability}' needs a boolean state`);
      if (capability === "xbzrle") {
        next.delta = state;
        next.deltaCacheBytes = state ? next.deltaCacheBytes || 64 << 20 : 0;
      } else if (capability === "auto-converge") next.policyParameters["auto-converge"] = state || undefined;
      else if (capability === "events") this.events = state;
      else if (capability === "multifd") this.multifd = state;
      else refuse(`Capability '${capability}' is not supported by pagewire (it takes xbzrle, auto-converge, events, multifd)`);
    }
    next.policy = policyByName(next.policyName, next.policyParameters);
    this.settings = next;
  }

  migrate(uri: string): void {
    const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(uri);
    if (!m) refuse(`pagewire migrates to tcp:HOST:PORT, not ${uri}`);
    if (this.started) refuse("There's a migration process in progress");
    this.started = true;
    this.setStatus("setup");
    this.start(m[1] ?? m[2], Number(m[3]), { ...this.settings, channels: this.multifd ? this.multifdChannels : 1 });
  }

  cancel(): void {
    if (this.status === "postcopy-active") refuse("migrate_cancel is refused in postcopy-active: the guest runs on the destination and would be lost");
    if (this.status === "setup" || this.status === "active") this.cancelling.abort();
  }
}

/** The destination's side: query-migrate tells of the incoming migrations. */
export class DestinationControl implements QmpTarget {
  private status: MigrationStatus = "none";
  /** What `quit` does (the command sets it). */
  quit?: () => void;
  private events = false;
  private last: Record<string, unknown> = {};

  constructor(
    private readonly listener: Listener,
    private readonly event: (name: string, data: Record<string, unknown>) => void,
  ) {
    listener.on("session", () => this.setStatus("active"));
    listener.on("completed", (r) => {
      this.last = { "total-time": Math.round(r.stats["total-time"]), ram: { transferred: r.stats.received, total: r.regions.reduce((s, g) => s + g.pageCount * g.pageSize, 0) } };
      this.setStatus("completed");
    });
    listener.on("failed", (error) => {
      this.last = { "error-desc": error.message };
      this.setStatus("failed");
    });
  }

  private setStatus(status: MigrationStatus): void {
    this.status = status;
    if (this.events) this.event("MIGRATION", { status });
  }

  info(): Record<string, unknown> {
    if (this.status === "none") return {};
    const active = this.listener.active()[0];
    if (this.status === "active" && active) return { status: "active", ram: { transferred: active.received } };
    return { status: this.status, ...this.last };
  }

  parameters(): Record<string, unknown> {
    return {};
  }

  setParameters(p: Record<string, unknown>): void {
    if (Object.keys(p).length > 0) refuse("the destination takes its parameters from the source's offer");
  }

  capabilities(): Array<{ capability: string; state: boolean }> {
    return [{ capability: "events", state: this.events }];
  }

  setCapabilities(caps: Array<{ capability: string; state: boolean }>): void {
    for (const { capability, state } of caps) {
      if (capability !== "events") refuse(`Capability '${capability}' is decided by the source`);
      this.events = state;
    }
  }
}

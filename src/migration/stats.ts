// Migration statistics, named as QEMU's query-migrate names them where a name exists.
import type { EncodeStats } from "../abi/abi.js";

export interface RoundReport {
  round: number;
  /**
   * live: the guest runs here; paused: the last round, guest paused; switchover: post-copy's
   * hand-over of device state and missing-page bitmaps; postcopy: the guest runs there.
   */
  phase: "live" | "paused" | "switchover" | "postcopy";
  /** Pages owed at the start of the round: the dirty ones, and the never-sent ones it takes on. */
  "dirty-pages": number;
  /** Pages sent in the round (zero pages never sent before get no record). */
  pages: number;
  bytes: number;
  ms: number;
}

export interface MigrationStats {
  status: "completed";
  policy: { name: string; parameters: Record<string, number | string | boolean>; "stop-reason": string };
  "total-time": number;
  "setup-time": number;
  /**
   * Pause to the destination's confirmation, in ms: what the guest sees. After post-copy: pause
   * to the destination's acknowledgement of the switch-over, when it resumes the guest.
   */
  downtime: number;
  /** QEMU's expected-downtime: the pause the policy expected when it stopped iterating (fixed costs included), ms. */
  "expected-downtime": number;
  /** Bytes put on the wire, all channels, headers included. */
  transferred: number;
  /** Bytes sent while the guest ran (the handshake before it, `transferred` minus the rest, is neither). */
  "precopy-bytes": number;
  /** Bytes sent while the guest was paused (0 after post-copy: see postcopy-bytes). */
  "downtime-bytes": number;
  "page-size": number;
  "total-pages": number;
  /** Zero pages (QEMU: duplicate), hinted-free pages included. */
  duplicate: number;
  /** Pages sent as zero without being read, because the guest reported them free. */
  "free-pages": number;
  /** Pages sent whole, uncompressed. */
  normal: number;
  "normal-bytes": number;
  /** Pages sent LZ4-compressed, and their payload bytes. */
  "lz4-pages": number;
  /** Pages found unchanged against the delta cache, so not sent. */
  "unchanged-pages": number;
  xbzrle: { pages: number; "cache-miss": number; overflow: number };
  /** Pages left out of a round because they were dirty again already (Xen's skip). */
  "skipped-pages": number;
  /** The highest throttle auto-converge applied, percent (QEMU's name). */
  "cpu-throttle-percentage": number;
  /** Post-copy: page requests from the destination, the pages they asked for, and the time from switch-over to the end. */
  "postcopy-requests": number;
  "postcopy-requested-pages": number;
  "postcopy-time": number;
  "postcopy-bytes": number;
  "dirty-sync-count": number;
  /** Pages dirtied per second, measured at the last sync. */
  "dirty-pages-rate": number;
  /** Megabits per second over the whole migration. */
  mbps: number;
  "pages-per-second": number;
  channels: number;
  rounds: RoundReport[];
  /** Milliseconds the destination spent checking the digest. */
  "verify-time": number;
  /**
   * Bytes of guest memory the source hashed for the digest after the pause: the pages changed
   * since their hash (the rest was hashed while the guest ran); all of it with dirty tracking by
   * hash. Post-copy: 0 (its proof is a sum of page hashes).
   */
  "pause-hashed-bytes": number;
  /**
   * Milliseconds the source's digest threads spent on this migration's proof, added up over the
   * threads (time on the thread, so preemption on a busy host counts): the proof's cost here.
   */
  "digest-thread-time": number;
}

/** What the source counts while it runs, updated in place; the encoder's own counters stay in WASM until the end. */
export class SourceCounters {
  /** Pages put on the wire, all rounds (zero pages sent for the first time get no record and are not counted). */
  pages = 0;
  /** QEMU's skipped: pages left out of a round because they were dirty again already (Xen's skip). */
  skippedPages = 0;
  /** The highest throttle auto-converge applied, 0 to 0.99. */
  maxThrottle = 0;
  postcopyRequests = 0;
  postcopyRequestedPages = 0;
}

/** The timeline and totals of a completed migration, as the source measured them. */
export interface CompletedRun {
  policy: MigrationStats["policy"];
  counters: SourceCounters;
  /** The encoder's counters, added up over every region. */
  encoded: EncodeStats;
  rounds: RoundReport[];
  pageSize: number;
  totalPages: number;
  channels: number;
  /** performance.now() at: the start, the end of the handshake, the pause, the switch-over's ack (0 without post-copy), the end. */
  startAt: number;
  dataAt: number;
  pauseAt: number;
  switchoverAckAt: number;
  endAt: number;
  /** Bytes on the wire: in all, by the end of the handshake, and when iterating stopped. */
  transferred: number;
  setupBytes: number;
  precopyEndBytes: number;
  postcopy: boolean;
  postcopyTime: number;
  dirtyRate: number;
  verifyTime: number;
  pauseHashedBytes: number;
  digestThreadMs: number;
  /** The downtime expected when iterating stopped (the policy's estimate, fixed costs included). */
  expectedDowntime: number;
}

/** The one place a run becomes QEMU-named statistics. */
export function migrationStats(r: CompletedRun): MigrationStats {
  const { counters: c, encoded: e, transferred } = r;
  // Sent from the pause on: during the downtime, or after the switch-over under post-copy.
  const pausedBytes = transferred - r.precopyEndBytes;
  const dataMs = r.endAt - r.dataAt;
  return {
    status: "completed",
    policy: r.policy,
    "total-time": r.endAt - r.startAt,
    "setup-time": r.dataAt - r.startAt,
    downtime: (r.postcopy ? r.switchoverAckAt : r.endAt) - r.pauseAt,
    "expected-downtime": r.expectedDowntime,
    transferred,
    "precopy-bytes": r.precopyEndBytes - r.setupBytes,
    "downtime-bytes": r.postcopy ? 0 : pausedBytes,
    "page-size": r.pageSize,
    "total-pages": r.totalPages,
    duplicate: e.zero,
    "free-pages": e.free,
    normal: e.raw,
    "normal-bytes": e.raw * r.pageSize,
    "lz4-pages": e.lz4,
    "unchanged-pages": e.unchanged,
    xbzrle: { pages: e.delta, "cache-miss": e.cacheMiss, overflow: e.overflow },
    "skipped-pages": c.skippedPages,
    "cpu-throttle-percentage": Math.round(c.maxThrottle * 100),
    "postcopy-requests": c.postcopyRequests,
    "postcopy-requested-pages": c.postcopyRequestedPages,
    "postcopy-time": r.postcopyTime,
    "postcopy-bytes": r.postcopy ? pausedBytes : 0,
    "dirty-sync-count": r.rounds.filter((round) => round.phase === "live").length,
    "dirty-pages-rate": Math.round(r.dirtyRate),
    mbps: (transferred * 8) / 1e6 / (dataMs / 1000),
    "pages-per-second": (c.pages * 1000) / dataMs,
    channels: r.channels,
    rounds: r.rounds,
    "verify-time": r.verifyTime,
    "pause-hashed-bytes": r.pauseHashedBytes,
    "digest-thread-time": r.digestThreadMs,
  };
}


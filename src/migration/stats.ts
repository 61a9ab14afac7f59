// Migration statistics, named as QEMU's query-migrate names them where a name exists.
import type { EncodeStats } from "../core/abi.js";

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
}

/** Accumulates the encoder's per-batch counters. */
export class EncodeTotals {
  zero = 0;
  raw = 0;
  lz4 = 0;
  delta = 0;
  unchanged = 0;
  cacheMiss = 0;
  overflow = 0;
  free = 0;

  add(s: EncodeStats): void {
    this.free += s.free;
    this.zero += s.zero;
    this.raw += s.raw;
    this.lz4 += s.lz4;
    this.delta += s.delta;
    this.unchanged += s.unchanged;
    this.cacheMiss += s.cacheMiss;
    this.overflow += s.overflow;
  }
}

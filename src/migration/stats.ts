// Migration statistics, named as QEMU's query-migrate names them where a name exists.
import type { EncodeStats } from "../core/abi.js";

export interface RoundReport {
  round: number;
  /** Pages dirty at the start of the round (the whole guest for round 1). */
  "dirty-pages": number;
  /** Pages sent in the round (zero pages of round 1 are not sent). */
  pages: number;
  bytes: number;
  ms: number;
  /** True for the round sent with the guest paused. */
  final: boolean;
}

export interface MigrationStats {
  status: "completed";
  policy: { name: string; parameters: Record<string, number | string | boolean>; "stop-reason": string };
  "total-time": number;
  "setup-time": number;
  /** Pause to the destination's confirmation, in ms: what the guest sees. */
  downtime: number;
  /** Bytes put on the wire, all channels, headers included. */
  transferred: number;
  "precopy-bytes": number;
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

// A migration policy decides, after each dirty sync, whether to keep iterating or to stop and
// copy the rest with the guest paused. It is a pure function of round statistics: it knows no
// sockets and no memory, so it is tested on scripted figures and can be replayed offline.

/** What the source knows after a dirty sync. */
export interface RoundStats {
  /** Rounds sent so far (1 after the first full pass). */
  round: number;
  /** Pages dirty now, which the next round (or the pause) must send. */
  dirtyPages: number;
  pageSize: number;
  /** Pages of guest memory in all. */
  totalPages: number;
  /** Pages sent so far, re-sends counted each time. */
  sentPages: number;
  /** Bytes put on the wire so far. */
  sentBytes: number;
  /** Measured transfer rate in bytes per second. */
  bandwidth: number;
  /** Pages dirtied per second since the previous sync. */
  dirtyRate: number;
  /** Milliseconds since the migration started. */
  elapsedMs: number;
}

export type Decision = { action: "continue" } | { action: "stop"; reason: string };

export interface Policy {
  readonly name: string;
  /** False for a policy that pauses the guest before sending anything (stop-and-copy). */
  readonly live: boolean;
  decide(stats: RoundStats): Decision;
  /** The parameters it runs with, for reports. */
  readonly parameters: Record<string, number | string | boolean>;
}

/** Milliseconds needed to send `pages` at the measured bandwidth. */
export function expectedDowntimeMs(stats: RoundStats, pages = stats.dirtyPages): number {
  if (stats.bandwidth <= 0) return Infinity;
  return ((pages * stats.pageSize) / stats.bandwidth) * 1000;
}

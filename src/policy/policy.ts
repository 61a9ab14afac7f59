// A migration policy decides, after each dirty sync, whether to keep iterating, to stop and copy
// the rest with the guest paused, or to switch over to post-copy; and what the next round sends.
// It sees round statistics only: it knows no sockets and no memory, so it is tested on scripted
// figures. A policy object keeps the little history it needs (make a new one per migration).

/** What the source knows after a dirty sync. Round 0 is the call before anything is sent. */
export interface RoundStats {
  /** Rounds sent so far. */
  round: number;
  /** Pages sent before and dirty again now: the next round (or the pause) must resend them. */
  dirtyPages: number;
  /** Pages never sent yet. */
  unsentPages: number;
  /** Pages the guest dirtied since the previous sync, sent or not. */
  dirtiedPages: number;
  pageSize: number;
  /** Pages of guest memory in all. */
  totalPages: number;
  /** Pages sent so far, re-sends counted each time. */
  sentPages: number;
  /** Bytes put on the wire so far. */
  sentBytes: number;
  /** Bytes the last round put on the wire. */
  lastRoundBytes: number;
  /** Measured transfer rate in bytes per second. */
  bandwidth: number;
  /** Pages dirtied per second since the previous sync. */
  dirtyRate: number;
  /** Milliseconds since the migration started. */
  elapsedMs: number;
  /**
   * What a pause costs whatever is left to send, in ms, as measured or estimated: hashing the
   * digest pages changed since their hash (all memory with dirty tracking by hash), the last
   * messages. Part of every expected downtime.
   */
  pauseOverheadMs: number;
}

/** What the next round sends, and how the guest runs meanwhile. */
export interface RoundPlan {
  /** Not-yet-sent pages to add to the round, in address order. Default: all of them. */
  freshPages?: number;
  /** Leave out pages already dirty again (Xen): the next round sends them anyway. */
  skipRedirtied?: boolean;
  /** Fraction of the time the guest's threads sleep during the round (auto-converge), 0 to 0.99. */
  throttle?: number;
  /**
   * Wait this long, ms, before the round: a guest held for a coordinated pause sends what was
   * dirtied every so often instead of round after empty round.
   */
  holdMs?: number;
}

export type Decision =
  | { action: "continue"; plan: RoundPlan }
  | { action: "stop"; reason: string }
  | { action: "postcopy"; reason: string };

export interface Policy {
  readonly name: string;
  decide(stats: RoundStats): Decision;
  /** The parameters it runs with, for reports. */
  readonly parameters: Record<string, number | string | boolean>;
}

/** Milliseconds a pause now would last: every page still owed (dirty and unsent) at the measured bandwidth, plus the pause's fixed costs. */
export function expectedDowntimeMs(stats: RoundStats, pages = stats.dirtyPages + stats.unsentPages): number {
  if (stats.bandwidth <= 0) return Infinity;
  return ((pages * stats.pageSize) / stats.bandwidth) * 1000 + stats.pauseOverheadMs;
}

/** How an expected downtime is made up, for stop reasons: "9.2 ms to send + 70 ms fixed". */
export function downtimeParts(stats: RoundStats, expected: number): string {
  return `${(expected - stats.pauseOverheadMs).toFixed(1)} ms to send + ${stats.pauseOverheadMs.toFixed(1)} ms fixed = ${expected.toFixed(1)} ms`;
}

export const CONTINUE: Decision = { action: "continue", plan: {} };

import { type Policy, type Decision, type RoundStats, CONTINUE, expectedDowntimeMs, downtimeParts } from "./policy.js";
import { nonNegative, positiveInteger } from "./options.js";

export interface PrecopyOptions {
  /** Longest pause allowed, in ms: stop once the dirty pages can be sent in this time (QEMU's downtime-limit, default 300). */
  downtimeLimitMs?: number;
  /** Stop after this many rounds whatever the dirty set (default 30). */
  maxRounds?: number;
  /** Throttle the guest when it dirties faster than the link sends (QEMU's auto-converge). Default off. */
  autoConverge?: boolean;
  /**
   * Once the dirty pages fit, go one more round while it would at least halve the pause (and
   * save HALVE_MIN_SAVING_MS or more), judged from the dirty rate: pagewire's, not QEMU's, which
   * pauses at the first fit. Default off.
   */
  halvePause?: boolean;
}

/** A round more must save at least this much pause to be worth it. */
const HALVE_MIN_SAVING_MS = 5;

// QEMU's auto-converge defaults (migration parameters cpu-throttle-initial, -increment, max-cpu-throttle,
// throttle-trigger-threshold).
const THROTTLE_INITIAL = 0.2;
const THROTTLE_INCREMENT = 0.1;
const THROTTLE_MAX = 0.99;
const TRIGGER_THRESHOLD = 0.5;
const TRIGGER_PERIODS = 2;

/**
 * QEMU's pre-copy: send everything, then keep re-sending dirty pages while the guest runs; stop
 * when the remaining dirty bytes fit in the downtime limit at the measured bandwidth, or at
 * max-rounds (QEMU itself would iterate forever; a bound keeps a write-heavy guest finite).
 * With halvePause, a round more while it would at least halve the pause (not QEMU's rule).
 * With auto-converge, as in QEMU's migration_trigger_throttle: when the bytes dirtied in a period
 * exceed half the bytes sent in it, twice, the guest is throttled, 20% at first, then 10 points
 * more each time, up to 99%.
 */
export function precopy(options: PrecopyOptions = {}): Policy {
  const downtimeLimitMs = nonNegative("downtime limit (ms)", options.downtimeLimitMs ?? 300);
  const maxRounds = positiveInteger("max rounds", options.maxRounds ?? 30);
  const autoConverge = options.autoConverge ?? false;
  const halvePause = options.halvePause ?? false;
  let throttle = 0;
  let highPeriods = 0;
  return {
    name: "precopy",
    parameters: { "downtime-limit": downtimeLimitMs, "max-rounds": maxRounds, ...(autoConverge ? { "auto-converge": true } : {}), ...(halvePause ? { "halve-pause": true } : {}) },
    decide(stats: RoundStats): Decision {
      if (stats.round === 0) return CONTINUE;
      const expected = expectedDowntimeMs(stats);
      if (expected <= downtimeLimitMs) {
        if (halvePause && stats.round < maxRounds) {
          // The next round sends what is owed now; the pages dirtied meanwhile are the next pause's.
          const next = expectedDowntimeMs(stats, (stats.dirtyRate * (expected - stats.pauseOverheadMs)) / 1000);
          if (next <= expected / 2 && expected - next >= HALVE_MIN_SAVING_MS) return CONTINUE;
        }
        return { action: "stop", reason: `${stats.dirtyPages} dirty pages fit in the downtime limit (${downtimeParts(stats, expected)} ≤ ${downtimeLimitMs} ms)` };
      }
      // Nothing left to send, and the pause still over the limit: its fixed costs alone exceed it,
      // and more rounds cannot help (QEMU would iterate until the limit is raised).
      if (stats.dirtyPages === 0 && stats.unsentPages === 0) {
        return { action: "stop", reason: `nothing is dirty, but the pause's fixed costs (${stats.pauseOverheadMs.toFixed(1)} ms) exceed the downtime limit of ${downtimeLimitMs} ms` };
      }
      if (stats.round >= maxRounds) {
        return { action: "stop", reason: `reached max-rounds ${maxRounds} with ${stats.dirtyPages} pages dirty (expected downtime ${expected.toFixed(0)} ms)` };
      }
      if (autoConverge && stats.round > 1) {
        if (stats.dirtiedPages * stats.pageSize > stats.lastRoundBytes * TRIGGER_THRESHOLD) highPeriods++;
        if (highPeriods >= TRIGGER_PERIODS) {
          highPeriods = 0;
          throttle = throttle === 0 ? THROTTLE_INITIAL : Math.min(THROTTLE_MAX, Math.round((throttle + THROTTLE_INCREMENT) * 100) / 100);
        }
      }
      return throttle > 0 ? { action: "continue", plan: { throttle } } : CONTINUE;
    },
  };
}

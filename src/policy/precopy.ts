import { type Policy, type Decision, type RoundStats, expectedDowntimeMs } from "./policy.js";
import { PagewireError } from "../errors.js";

export interface PrecopyOptions {
  /** Longest pause allowed, in ms: stop once the dirty pages can be sent in this time (QEMU's downtime-limit, default 300). */
  downtimeLimitMs?: number;
  /** Stop after this many rounds whatever the dirty set (default 30). */
  maxRounds?: number;
}

/**
 * QEMU's pre-copy: send everything, then keep re-sending dirty pages while the guest runs; stop
 * when the remaining dirty bytes fit in the downtime limit at the measured bandwidth, or at
 * max-rounds (QEMU itself would iterate forever; a bound keeps a write-heavy guest finite).
 */
export function precopy(options: PrecopyOptions = {}): Policy {
  const downtimeLimitMs = options.downtimeLimitMs ?? 300;
  const maxRounds = options.maxRounds ?? 30;
  if (!(downtimeLimitMs >= 0)) throw new PagewireError("EOPTION", `downtime limit ${downtimeLimitMs} ms must be zero or more`);
  if (!Number.isInteger(maxRounds) || maxRounds < 1) throw new PagewireError("EOPTION", `max rounds ${maxRounds} must be a positive integer`);
  return {
    name: "precopy",
    live: true,
    parameters: { "downtime-limit": downtimeLimitMs, "max-rounds": maxRounds },
    decide(stats: RoundStats): Decision {
      const expected = expectedDowntimeMs(stats);
      if (expected <= downtimeLimitMs) {
        return { action: "stop", reason: `${stats.dirtyPages} dirty pages fit in the downtime limit (${expected.toFixed(1)} ms ≤ ${downtimeLimitMs} ms)` };
      }
      if (stats.round >= maxRounds) {
        return { action: "stop", reason: `reached max-rounds ${maxRounds} with ${stats.dirtyPages} pages dirty (expected downtime ${expected.toFixed(0)} ms)` };
      }
      return { action: "continue" };
    },
  };
}

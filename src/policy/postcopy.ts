import { type Policy, type Decision, type RoundStats, CONTINUE, expectedDowntimeMs } from "./policy.js";
import { nonNegative, positiveInteger } from "./options.js";

/**
 * Post-copy: switch over at once. The device state goes first, the guest resumes on the
 * destination, and its memory follows: pages it touches are fetched on demand, the rest pushed
 * in the background. Each page crosses the link once; the guest stalls on every missing page.
 */
export function postcopy(): Policy {
  return {
    name: "postcopy",
    parameters: {},
    decide: (): Decision => ({ action: "postcopy", reason: "post-copy switches over before sending memory" }),
  };
}

export interface HybridOptions {
  /** Pre-copy rounds before switching to post-copy (default 2). */
  precopyRounds?: number;
  /** Stop normally, without post-copy, if the dirty pages fit in this pause (ms, default 300). */
  downtimeLimitMs?: number;
}

/**
 * Hybrid: pre-copy rounds first (the bulk of memory moves while the guest runs here), then
 * post-copy for what is still dirty, unless pre-copy converged into the downtime limit first.
 */
export function hybrid(options: HybridOptions = {}): Policy {
  const precopyRounds = positiveInteger("precopy rounds", options.precopyRounds ?? 2);
  const downtimeLimitMs = nonNegative("downtime limit (ms)", options.downtimeLimitMs ?? 300);
  return {
    name: "hybrid",
    parameters: { "precopy-rounds": precopyRounds, "downtime-limit": downtimeLimitMs },
    decide(stats: RoundStats): Decision {
      if (stats.round === 0) return CONTINUE;
      const expected = expectedDowntimeMs(stats);
      if (expected <= downtimeLimitMs) return { action: "stop", reason: `pre-copy converged: ${stats.dirtyPages} dirty pages fit in ${downtimeLimitMs} ms` };
      if (stats.round >= precopyRounds) return { action: "postcopy", reason: `after ${stats.round} pre-copy rounds, ${stats.dirtyPages} pages dirty go by post-copy` };
      return CONTINUE;
    },
  };
}

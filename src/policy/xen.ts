import { type Policy, type Decision, type RoundStats } from "./policy.js";
import { nonNegative, positiveInteger } from "./options.js";

export interface XenOptions {
  /** Live rounds at most (Xen's max_iters, 29). */
  maxRounds?: number;
  /** Stop when fewer pages than this are dirty (Xen: 50). */
  minDirtyPages?: number;
  /** Stop once this many times the memory has been sent (Xen's max_factor, 3). */
  maxFactor?: number;
}

/** Xen's three limits; undefined while none is reached. */
export function xenStop(stats: RoundStats, o: Required<XenOptions>): string | undefined {
  const owed = stats.dirtyPages + stats.unsentPages;
  if (owed < o.minDirtyPages) return `${owed} pages dirty, fewer than ${o.minDirtyPages}`;
  if (stats.sentPages > o.maxFactor * stats.totalPages) return `sent ${(stats.sentPages / stats.totalPages).toFixed(1)}x memory, over the ${o.maxFactor}x limit`;
  if (stats.round >= o.maxRounds) return `reached ${o.maxRounds} live rounds with ${owed} pages dirty`;
  return undefined;
}

export function xenDefaults(options: XenOptions): Required<XenOptions> {
  return {
    maxRounds: positiveInteger("max rounds", options.maxRounds ?? 29),
    minDirtyPages: nonNegative("min dirty pages", options.minDirtyPages ?? 50),
    maxFactor: nonNegative("max factor", options.maxFactor ?? 3),
  };
}

/**
 * Xen's classic save loop (xc_domain_save): live rounds until fewer than 50 pages are dirty, 3x
 * memory has been sent, or 29 rounds have run; within a round, pages already dirty again are
 * skipped (a peek at the live log, not cleared), since the next round sends them anyway.
 */
export function xen(options: XenOptions = {}): Policy {
  const o = xenDefaults(options);
  return {
    name: "xen",
    parameters: { "max-rounds": o.maxRounds, "min-dirty-pages": o.minDirtyPages, "max-factor": o.maxFactor },
    decide(stats: RoundStats): Decision {
      const reason = stats.round > 0 ? xenStop(stats, o) : undefined;
      return reason ? { action: "stop", reason } : { action: "continue", plan: { skipRedirtied: true } };
    },
  };
}

import { type Policy, type Decision, type RoundStats } from "./policy.js";
import { fraction } from "./options.js";
import { type XenOptions, xenDefaults, xenStop } from "./xen.js";

export interface EarlyStopOptions extends XenOptions {
  /** Keep iterating only while each round shrinks the dirty set by at least this fraction (default 0.1). */
  minShrink?: number;
}

/**
 * Atif & Strazdins (NPC 2009): Xen's loop, stopped as soon as a round no longer shrinks the dirty
 * set by `minShrink`. HPC kernels rewrite the same working set every sweep, so once the dirty set
 * has settled at that working set, more rounds only resend it. Our reading of the paper: the
 * test compares each round's dirty set with the previous round's, from the second round on;
 * Xen's three limits and its skipping of pages dirty again stay as they were.
 */
export function earlyStop(options: EarlyStopOptions = {}): Policy {
  const o = xenDefaults(options);
  const minShrink = fraction("min shrink", options.minShrink ?? 0.1);
  let previous = Infinity;
  return {
    name: "early-stop",
    parameters: { "min-shrink": minShrink, "max-rounds": o.maxRounds, "min-dirty-pages": o.minDirtyPages, "max-factor": o.maxFactor },
    decide(stats: RoundStats): Decision {
      if (stats.round === 0) return { action: "continue", plan: { skipRedirtied: true } };
      const reason = xenStop(stats, o);
      if (reason) return { action: "stop", reason };
      const dirty = stats.dirtyPages + stats.unsentPages;
      const last = previous;
      previous = dirty;
      if (stats.round >= 2 && dirty > last * (1 - minShrink)) {
        return { action: "stop", reason: `the dirty set no longer shrinks: ${dirty} pages after ${last} (less than ${(minShrink * 100).toFixed(0)}% smaller)` };
      }
      return { action: "continue", plan: { skipRedirtied: true } };
    },
  };
}

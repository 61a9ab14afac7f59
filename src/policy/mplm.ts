import { type Policy, type Decision, type RoundStats } from "./policy.js";
import { positiveInteger } from "./options.js";

export interface MplmOptions {
  /** The not-yet-sent pages go out in at least this many rounds (default 16). */
  slices?: number;
}

/**
 * Memory-bound pre-copy (MPLM, after Chanchio & Yaothanee 2018), with no downtime parameter.
 * What is implemented: the source keeps two sets, the pages not yet sent (a cursor in address
 * order) and the dirty pages it has sent before. Each round sends every dirty page of the second
 * set interleaved, in the same batches stream, with at least as many pages of the first (at least
 * memory/slices of them), so pages never sent are never outrun by resends. A page dirtied before
 * its first send is not sent twice: it is sent, current, when the cursor reaches it. The live
 * phase ends when the not-yet-sent set is empty, after at most `slices` rounds, and the pause
 * copies what is dirty then. Every page is sent at least once, and the live phase re-sends at
 * most one page per fresh page, plus the dirty set of its last round.
 */
export function mplm(options: MplmOptions = {}): Policy {
  const slices = positiveInteger("slices", options.slices ?? 16);
  return {
    name: "mplm",
    parameters: { slices },
    decide(stats: RoundStats): Decision {
      if (stats.round > 0 && stats.unsentPages === 0) {
        return { action: "stop", reason: `every page has been sent once; ${stats.dirtyPages} dirty pages go during the pause` };
      }
      const slice = Math.ceil(stats.totalPages / slices);
      return { action: "continue", plan: { freshPages: Math.max(slice, stats.dirtyPages) } };
    },
  };
}

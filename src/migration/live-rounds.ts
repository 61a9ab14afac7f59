// The live rounds of pre-copy, as a migration and a checkpoint both run them (QEMU's
// migration_iteration_run): send a round of what the policy plans, sync, ask the policy again,
// until it says stop (or post-copy). Where the pages go, and what a round cut short means, is the
// caller's.
import type { SyncResult } from "../core/core.js";
import type { Decision, Policy, RoundPlan, RoundStats } from "../policy/policy.js";
import type { RoundReport, SourceCounters } from "./stats.js";
import type { RoundSender } from "./round-sender.js";

/** The figures of the last round, as the policy decides on them. */
export type RoundFigures = Pick<RoundStats, "dirtyPages" | "dirtiedPages" | "dirtyRate" | "lastRoundBytes">;

/** A policy's round statistics: the last round's figures, and where the sender stands since `startedAt`. */
export function roundStats(sender: RoundSender, counters: SourceCounters, startedAt: number, pauseOverheadMs: number, s: RoundFigures): RoundStats {
  const elapsed = performance.now() - startedAt;
  const transferred = sender.transferred;
  return {
    ...s,
    round: sender.round,
    unsentPages: sender.unsentPages,
    pageSize: sender.cores[0].region.pageSize,
    totalPages: sender.totalPages,
    sentPages: counters.pages,
    sentBytes: transferred,
    bandwidth: elapsed > 0 ? (transferred * 1000) / elapsed : 0,
    elapsedMs: elapsed,
    pauseOverheadMs,
  };
}

export interface LiveRoundsContext {
  policy: Policy;
  /** A dirty sync of every region (the embedder's beforeSync hook first). */
  sync(): SyncResult;
  /** Sends the next round of `plan`; undefined when it was cut short and the caller carried on. */
  sendRound(plan: RoundPlan, owed: number): Promise<RoundReport | undefined>;
  /** The statistics the policy decides on, from the figures of the last round. */
  stats(s: RoundFigures): RoundStats;
  /** The policy's throttle for the next round (auto-converge), 0 to run freely. */
  throttle(fraction: number): void;
  /** After each round's sync: pages still owed, for progress. */
  synced(remainingPages: number): void;
}

export interface LiveRounds {
  rounds: RoundReport[];
  /** Why iterating ended: stop (pause and send the rest) or post-copy. */
  decision: Exclude<Decision, { action: "continue" }>;
  stats: RoundStats;
  /** Pages dirtied per second over the last round. */
  dirtyRate: number;
}

/** Runs live rounds until the policy stops them; the caller has synced once to start dirty logging. */
export async function runLiveRounds(c: LiveRoundsContext): Promise<LiveRounds> {
  const rounds: RoundReport[] = [];
  let lastSync = performance.now();
  let dirtyRate = 0;
  let stats = c.stats({ dirtyPages: 0, dirtiedPages: 0, dirtyRate: 0, lastRoundBytes: 0 });
  let decision = c.policy.decide(stats);
  let owed = 0;
  while (decision.action === "continue") {
    c.throttle(decision.plan.throttle ?? 0);
    const report = await c.sendRound(decision.plan, owed);
    if (report) rounds.push(report);
    const dirty = c.sync();
    owed = dirty.owed;
    const now = performance.now();
    dirtyRate = (dirty.taken * 1000) / Math.max(1, now - lastSync);
    lastSync = now;
    stats = c.stats({ dirtyPages: owed, dirtiedPages: dirty.taken, dirtyRate, lastRoundBytes: report?.bytes ?? 0 });
    decision = c.policy.decide(stats);
    c.synced(owed + stats.unsentPages);
  }
  c.throttle(0);
  return { rounds, decision, stats, dirtyRate };
}

/** The wait before the pause may grow the final round by this fraction of it, at most. */
const PRE_PAUSE_GROWTH = 0.05;

/**
 * Waits, with the guest still running, for work the pause would otherwise wait on (`work`: the
 * destination catching up with the bytes in flight, the hashes of what the rounds read), so that
 * the pause pays only for its final round. The guest dirties pages meanwhile, which that round
 * carries: the wait is cut off once the guest, at its last measured rate, would have grown it by
 * PRE_PAUSE_GROWTH. A guest that dirties nothing waits for all of it; one that rewrites its
 * memory fast waits little, its backlog mostly rewritten anyway and hashed during the final round.
 */
export async function settleBeforePause(work: Array<Promise<unknown> | undefined>, { dirtyPages, dirtyRate }: Pick<RoundStats, "dirtyPages" | "dirtyRate">): Promise<void> {
  const done = Promise.all(work);
  if (dirtyRate <= 0) return void (await done);
  let timer: NodeJS.Timeout | undefined;
  const budgetMs = (PRE_PAUSE_GROWTH * Math.max(1, dirtyPages) * 1000) / dirtyRate;
  await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, budgetMs)))]);
  clearTimeout(timer);
}

// Each policy's decisions on scripted round statistics, and how long the engine waits before the pause.
import { describe, it, expect } from "vitest";
import { type RoundStats, type Decision, stopCopy, precopy, xen, earlyStop, mplm, postcopy, hybrid, policyByName, POLICIES } from "../src/policy/index.js";
import { settleBeforePause } from "../src/migration/live-rounds.js";

const TOTAL = 262144; // 1 GiB of 4 KiB pages

/** Round statistics with a 1 GB/s link unless told otherwise. */
function stats(round: number, dirtyPages: number, extra: Partial<RoundStats> = {}): RoundStats {
  return {
    round, dirtyPages, unsentPages: round === 0 ? TOTAL : 0, dirtiedPages: dirtyPages, pageSize: 4096, totalPages: TOTAL,
    sentPages: round * TOTAL, sentBytes: round * TOTAL * 4096, lastRoundBytes: TOTAL * 4096, bandwidth: 1e9, dirtyRate: 0, elapsedMs: round * 1000, pauseOverheadMs: 0,
    ...extra,
  };
}

const action = (d: Decision) => d.action;

describe("policies decide from round statistics", () => {
  it("stop-copy stops before sending anything", () => {
    expect(action(stopCopy().decide(stats(0, 0)))).toBe("stop");
  });

  it("precopy stops when the dirty pages fit in the downtime limit, or at max-rounds", () => {
    const p = precopy({ downtimeLimitMs: 300, maxRounds: 5 });
    expect(p.decide(stats(0, 0))).toEqual({ action: "continue", plan: {} });
    expect(action(p.decide(stats(1, 100_000)))).toBe("continue"); // 410 MB: 410 ms at 1 GB/s
    expect(action(p.decide(stats(2, 70_000)))).toBe("stop"); // 287 ms
    expect(action(precopy({ downtimeLimitMs: 1, maxRounds: 3 }).decide(stats(3, 100_000)))).toBe("stop");
    expect(() => precopy({ maxRounds: 0 })).toThrow(/max rounds/);
    // The pause's fixed costs count: 70 ms of them leave no room under a 20 ms limit.
    const tight = precopy({ downtimeLimitMs: 20, maxRounds: 5 });
    expect(action(tight.decide(stats(1, 1000, { pauseOverheadMs: 70 })))).toBe("continue");
    const unreachable = tight.decide(stats(2, 0, { pauseOverheadMs: 70 }));
    expect(unreachable).toMatchObject({ action: "stop", reason: expect.stringMatching(/fixed costs \(70.0 ms\) exceed the downtime limit of 20 ms/) });
    expect(precopy({ downtimeLimitMs: 100 }).decide(stats(1, 1000, { pauseOverheadMs: 70 }))).toMatchObject({ action: "stop", reason: expect.stringMatching(/4.1 ms to send \+ 70.0 ms fixed = 74.1 ms ≤ 100 ms/) });
  });

  it("precopy with halvePause goes a round more past the first fit while that would at least halve the pause", () => {
    const p = precopy({ downtimeLimitMs: 300, halvePause: true });
    // 50,000 pages: 205 ms at 1 GB/s; dirtied meanwhile at 100k pages/s, 20,480 pages: 84 ms.
    expect(action(p.decide(stats(1, 50_000, { dirtyRate: 100_000 })))).toBe("continue");
    // At 200k pages/s the next pause would be 168 ms, not half of 205: pause now.
    expect(action(p.decide(stats(1, 50_000, { dirtyRate: 200_000 })))).toBe("stop");
    // Halving a 4 ms pause saves too little to pay for a round.
    expect(action(p.decide(stats(2, 1000, { dirtyRate: 1000 })))).toBe("stop");
    // Without it, QEMU's rule: pause at the first fit.
    expect(action(precopy({ downtimeLimitMs: 300 }).decide(stats(1, 50_000, { dirtyRate: 100_000 })))).toBe("stop");
    expect(policyByName("precopy", { "halve-pause": true }).parameters).toMatchObject({ "halve-pause": true });
  });

  it("precopy's auto-converge throttles after two periods of dirtying faster than half the sending, 20% then +10 up to 99%", () => {
    const p = precopy({ downtimeLimitMs: 0, maxRounds: 100, autoConverge: true });
    const hot = (round: number) => stats(round, TOTAL, { dirtiedPages: TOTAL, lastRoundBytes: TOTAL * 4096 });
    p.decide(stats(0, 0));
    p.decide(hot(1)); // round 1 is the full copy: not a period
    expect(p.decide(hot(2))).toEqual({ action: "continue", plan: {} });
    expect(p.decide(hot(3))).toEqual({ action: "continue", plan: { throttle: 0.2 } });
    p.decide(hot(4));
    expect(p.decide(hot(5))).toEqual({ action: "continue", plan: { throttle: 0.3 } });
    let last: Decision = { action: "continue", plan: {} };
    for (let r = 6; r < 40; r++) last = p.decide(hot(r));
    expect(last).toEqual({ action: "continue", plan: { throttle: 0.99 } });
    // A guest that dirties little is never throttled.
    const calm = precopy({ downtimeLimitMs: 0, maxRounds: 100, autoConverge: true });
    for (let r = 0; r < 10; r++) expect(calm.decide(stats(r, 5000, { dirtiedPages: 5000 }))).toEqual({ action: "continue", plan: {} });
  });

  it("xen skips pages dirty again and stops at 50 pages, 3x memory sent, or 29 rounds", () => {
    const p = xen();
    expect(p.decide(stats(0, 0))).toEqual({ action: "continue", plan: { skipRedirtied: true } });
    expect(action(p.decide(stats(1, 49)))).toBe("stop");
    expect(action(p.decide(stats(2, 10_000)))).toBe("continue");
    expect(action(p.decide(stats(2, 10_000, { sentPages: 3 * TOTAL + 1 })))).toBe("stop");
    expect(action(xen({ maxFactor: 100 }).decide(stats(29, 10_000)))).toBe("stop");
    expect(action(xen({ maxFactor: 100 }).decide(stats(28, 10_000)))).toBe("continue");
  });

  it("early-stop stops as soon as a round no longer shrinks the dirty set by min-shrink", () => {
    const p = earlyStop({ minShrink: 0.1 });
    p.decide(stats(0, 0));
    expect(action(p.decide(stats(1, 100_000)))).toBe("continue");
    expect(action(p.decide(stats(2, 80_000)))).toBe("continue"); // shrank 20%
    const d = p.decide(stats(3, 75_000)); // shrank 6%
    expect(d.action).toBe("stop");
    expect(d.action === "stop" && d.reason).toMatch(/no longer shrinks/);
    // Xen would have gone on: the same figures under xen continue.
    const x = xen();
    for (const [r, dirty] of [[1, 100_000], [2, 80_000], [3, 75_000]]) expect(action(x.decide(stats(r, dirty)))).toBe("continue");
  });

  it("mplm sends at least a slice of unsent pages per round, never fewer than it resends, and stops when none are unsent", () => {
    const p = mplm({ slices: 4 });
    expect(p.decide(stats(0, 0))).toEqual({ action: "continue", plan: { freshPages: TOTAL / 4 } });
    expect(p.decide(stats(1, 100_000, { unsentPages: TOTAL / 2 }))).toEqual({ action: "continue", plan: { freshPages: 100_000 } });
    expect(p.decide(stats(2, 10, { unsentPages: 1000 }))).toEqual({ action: "continue", plan: { freshPages: TOTAL / 4 } });
    expect(action(p.decide(stats(3, 200_000, { unsentPages: 0 })))).toBe("stop");
  });

  it("postcopy switches over at once; hybrid after its pre-copy rounds, unless pre-copy converged", () => {
    expect(action(postcopy().decide(stats(0, 0)))).toBe("postcopy");
    const h = hybrid({ precopyRounds: 2, downtimeLimitMs: 300 });
    expect(action(h.decide(stats(0, 0)))).toBe("continue");
    expect(action(h.decide(stats(1, 200_000)))).toBe("continue");
    expect(action(h.decide(stats(2, 200_000)))).toBe("postcopy");
    expect(action(hybrid({ precopyRounds: 2 }).decide(stats(1, 100)))).toBe("stop");
  });

  it("selects policies by name with their parameters, refusing unknown ones", () => {
    for (const name of Object.keys(POLICIES)) expect(policyByName(name).name).toBe(name);
    expect(policyByName("precopy", { "downtime-limit": "50", "auto-converge": true }).parameters).toEqual({ "downtime-limit": 50, "max-rounds": 30, "auto-converge": true });
    expect(() => policyByName("xen", { "downtime-limit": 3 })).toThrow(/takes max-rounds, min-dirty-pages, max-factor/);
    expect(() => policyByName("fast")).toThrow(/unknown policy/);
  });
});

describe("the wait before the pause", () => {
  const never = new Promise<void>(() => undefined);

  it("waits for all of the work when the guest dirties nothing", async () => {
    let release!: () => void;
    const work = new Promise<void>((resolve) => (release = resolve));
    let settled = false;
    const waiting = settleBeforePause([work, undefined], { dirtyPages: 0, dirtyRate: 0 }).then(() => (settled = true));
    // No timer to give up on: still waiting a turn of the event loop later.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    release();
    await waiting;
    expect(settled).toBe(true);
  });

  it("gives up once the guest would have grown the final round by 5%", async () => {
    // 1,000 pages dirty, 10,000 pages/s: 50 pages more take 5 ms.
    const start = performance.now();
    await settleBeforePause([never], { dirtyPages: 1000, dirtyRate: 10_000 });
    expect(performance.now() - start).toBeGreaterThanOrEqual(4);
  });
});

// A guest's policy inside a job: it iterates as its own policy says, but pauses only when the
// coordinator opens the gate, so that every guest of the job pauses together. When its own policy
// would stop, it says so once (the guest is ready) and keeps iterating until the gate opens.
import type { Decision, Policy, RoundStats } from "../policy/policy.js";

/** How often a guest held for the pause sends what it dirtied meanwhile. */
const HOLD_MS = 25;

export class GatedPolicy implements Policy {
  readonly name: string;
  readonly parameters: Record<string, number | string | boolean>;
  private open = false;
  private readySaid = false;

  constructor(
    private readonly inner: Policy,
    /** The guest's own policy would stop now (why), or it must (max-rounds): the coordinator hears it once. */
    private readonly onReady: (reason: string) => void,
  ) {
    this.name = `${inner.name} (coordinated)`;
    this.parameters = inner.parameters;
  }

  /** The coordinated pause: the next decision stops. */
  release(): void {
    this.open = true;
  }

  decide(stats: RoundStats): Decision {
    if (this.open) return { action: "stop", reason: "the job's coordinated pause" };
    const own = this.inner.decide(stats);
    if (own.action === "continue") return own;
    if (!this.readySaid) {
      this.readySaid = true;
      this.onReady(own.reason);
    }
    return { action: "continue", plan: { holdMs: HOLD_MS } };
  }
}

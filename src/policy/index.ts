import type { Policy } from "./policy.js";
import { stopCopy } from "./stop-copy.js";
import { precopy } from "./precopy.js";
import { xen } from "./xen.js";
import { earlyStop } from "./early-stop.js";
import { mplm } from "./mplm.js";
import { postcopy, hybrid } from "./postcopy.js";
import { PagewireError } from "../errors.js";

export * from "./policy.js";
export { stopCopy } from "./stop-copy.js";
export { precopy, type PrecopyOptions } from "./precopy.js";
export { xen, type XenOptions } from "./xen.js";
export { earlyStop, type EarlyStopOptions } from "./early-stop.js";
export { mplm, type MplmOptions } from "./mplm.js";
export { postcopy, hybrid, type HybridOptions } from "./postcopy.js";

/** Parameters as a user writes them: `downtime-limit=300`, `max-rounds=30`, ... */
export type PolicyParameters = Record<string, string | number | boolean | undefined>;

export interface PolicyEntry {
  describe: string;
  parameters: string[];
  make(p: PolicyParameters): Policy;
}

const num = (p: PolicyParameters, key: string): number | undefined => (p[key] === undefined ? undefined : Number(p[key]));
const flag = (p: PolicyParameters, key: string): boolean => p[key] !== undefined && p[key] !== false && p[key] !== "false" && p[key] !== "0";
const xenParameters = (p: PolicyParameters) => ({ maxRounds: num(p, "max-rounds"), minDirtyPages: num(p, "min-dirty-pages"), maxFactor: num(p, "max-factor") });

/** The policies selectable by name, with the parameters each takes. */
export const POLICIES: Record<string, PolicyEntry> = {
  "stop-copy": { describe: "pause, then send everything once", parameters: [], make: () => stopCopy() },
  precopy: {
    describe: "QEMU: iterate until the dirty pages fit in the downtime limit",
    parameters: ["downtime-limit", "max-rounds", "auto-converge", "halve-pause"],
    make: (p) => precopy({ downtimeLimitMs: num(p, "downtime-limit"), maxRounds: num(p, "max-rounds"), autoConverge: flag(p, "auto-converge"), halvePause: flag(p, "halve-pause") }),
  },
  xen: { describe: "Xen: 29 rounds, 50 pages, 3x memory; skip pages dirty again", parameters: ["max-rounds", "min-dirty-pages", "max-factor"], make: (p) => xen(xenParameters(p)) },
  "early-stop": {
    describe: "Atif & Strazdins: Xen, stopped when rounds stop shrinking the dirty set",
    parameters: ["min-shrink", "max-rounds", "min-dirty-pages", "max-factor"],
    make: (p) => earlyStop({ ...xenParameters(p), minShrink: num(p, "min-shrink") }),
  },
  mplm: { describe: "memory-bound pre-copy: not-yet-sent and dirty pages interleaved, no downtime parameter", parameters: ["slices"], make: (p) => mplm({ slices: num(p, "slices") }) },
  postcopy: { describe: "switch over at once; pages on demand and pushed in the background", parameters: [], make: () => postcopy() },
  hybrid: {
    describe: "pre-copy rounds, then post-copy",
    parameters: ["precopy-rounds", "downtime-limit"],
    make: (p) => hybrid({ precopyRounds: num(p, "precopy-rounds"), downtimeLimitMs: num(p, "downtime-limit") }),
  },
};

export function policyByName(name: string, parameters: PolicyParameters = {}): Policy {
  const entry = POLICIES[name];
  if (!entry) throw new PagewireError("EOPTION", `unknown policy "${name}": choose one of ${Object.keys(POLICIES).join(", ")}`);
  const unknown = Object.keys(parameters).filter((k) => parameters[k] !== undefined && !entry.parameters.includes(k));
  if (unknown.length > 0) {
    throw new PagewireError("EOPTION", `policy ${name} takes ${entry.parameters.length ? entry.parameters.join(", ") : "no parameters"}, not ${unknown.join(", ")}`);
  }
  return entry.make(parameters);
}

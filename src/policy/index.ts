import type { Policy } from "./policy.js";
import { stopCopy } from "./stop-copy.js";
import { precopy } from "./precopy.js";
import { PagewireError } from "../errors.js";

export * from "./policy.js";
export { stopCopy } from "./stop-copy.js";
export { precopy, type PrecopyOptions } from "./precopy.js";

/** Parameters as a user writes them: `downtime-limit`, `max-rounds`, ... */
export type PolicyParameters = Record<string, string | number | undefined>;

const num = (p: PolicyParameters, key: string): number | undefined => (p[key] === undefined ? undefined : Number(p[key]));

/** The policies selectable by name, with their parameters. */
export const POLICIES: Record<string, (p: PolicyParameters) => Policy> = {
  "stop-copy": () => stopCopy(),
  precopy: (p) => precopy({ downtimeLimitMs: num(p, "downtime-limit"), maxRounds: num(p, "max-rounds") }),
};

export function policyByName(name: string, parameters: PolicyParameters = {}): Policy {
  const make = POLICIES[name];
  if (!make) throw new PagewireError("EOPTION", `unknown policy "${name}": choose one of ${Object.keys(POLICIES).join(", ")}`);
  return make(parameters);
}

import type { Policy, Decision } from "./policy.js";

/** Pause first, then send everything once: the non-live baseline, with the least traffic and the longest pause. */
export function stopCopy(): Policy {
  return {
    name: "stop-copy",
    parameters: {},
    decide: (): Decision => ({ action: "stop", reason: "stop-and-copy pauses before sending" }),
  };
}

// The figures of the policies bench: one migration, and a cell of the grid (a link, a workload, a policy).

/** One migration's figures, as the JSON of `pagewire migrate` gives them. */
export interface Measured {
  totalMs: number;
  downtimeMs: number;
  appDowntimeMs: number;
  sentPerMemory: number;
  rounds: number;
  /**
   * Application rate during the live phase (on the source; NaN without one) and after the move
   * (on the destination, its first 2 s), over its rate before.
   */
  during: number;
  after: number;
  faults: number;
  blockedMs: number;
}

export interface Cell {
  link: string;
  workload: string;
  policy: string;
  median: Measured;
  runs: Measured[];
}

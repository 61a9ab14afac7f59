// A source's progress reports: at most one per interval unless forced, with the rate over the
// bytes sent since the last one.
import type { Progress } from "./source-options.js";

const PROGRESS_INTERVAL_MS = 100;

export class ProgressReporter {
  private last = { at: 0, bytes: 0 };

  /** Counts from here: the data phase begins. */
  start(at: number): void {
    this.last = { at, bytes: 0 };
  }

  /** The next report, or undefined when the last was under an interval ago (and `force` is not set). */
  next(force: boolean, transferred: number, figures: () => Omit<Progress, "transferred" | "rate">): Progress | undefined {
    const now = performance.now();
    if (!force && now - this.last.at < PROGRESS_INTERVAL_MS) return undefined;
    const rate = (transferred - this.last.bytes) / Math.max(1, now - this.last.at) / 1000;
    this.last = { at: now, bytes: transferred };
    return { ...figures(), transferred, rate };
  }
}

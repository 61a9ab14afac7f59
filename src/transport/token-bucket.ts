// A token bucket shared by a migration's channels, to emulate a slower link (e.g. 1 Gbit/s).
import { PagewireError } from "../errors.js";

export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  /**
   * @param bytesPerSecond sustained rate
   * @param burstBytes most bytes sent at once after an idle spell (default: 10 ms of rate, at least 1 MiB)
   */
  constructor(
    readonly bytesPerSecond: number,
    private readonly burstBytes = Math.max(1 << 20, bytesPerSecond / 100),
  ) {
    this.tokens = burstBytes;
  }

  /** Waits until `bytes` may be sent, then takes them. Callers may over-draw by one write. */
  async take(bytes: number): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens < 0) {
      const waitMs = (-this.tokens / this.bytesPerSecond) * 1000;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

/** Parses "1gbit", "100mbit", "500MB", "2.5GB" (per second) into bytes per second. */
export function parseRate(text: string): number {
  const m = /^\s*([\d.]+)\s*(k|m|g)?(bit|b|bps)?\s*(\/s)?\s*$/i.exec(text);
  if (!m) throw new PagewireError("EOPTION", `cannot read the rate "${text}": write e.g. 1gbit, 100mbit or 500MB`);
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[(m[2] ?? "").toLowerCase() as "k" | "m" | "g"] ?? 1;
  const bits = (m[3] ?? "").toLowerCase().startsWith("bit") || (m[3] ?? "").toLowerCase() === "bps";
  return (Number(m[1]) * scale) / (bits ? 8 : 1);
}

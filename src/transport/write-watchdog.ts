// Notices a peer that stopped reading: writes are queued and none has reached the kernel for a
// while. Without it a source would wait forever on a stalled destination, its guest perhaps paused.

export class WriteWatchdog {
  private pending = 0;
  /** When the last write reached the kernel, or when writes started piling up after a quiet spell. */
  private lastProgress = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stallMs: number,
    private readonly onStall: (ms: number) => void,
  ) {
    this.timer = setInterval(() => this.check(), Math.max(10, Math.min(1000, stallMs / 4)));
    this.timer.unref();
  }

  /** A write was handed to the socket. */
  queued(): void {
    if (this.pending++ === 0) this.lastProgress = performance.now();
  }

  /** A write reached the kernel (or failed: either way it no longer waits). */
  flushed(): void {
    this.pending--;
    this.lastProgress = performance.now();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (this.pending > 0 && performance.now() - this.lastProgress > this.stallMs) {
      this.stop();
      this.onStall(this.stallMs);
    }
  }
}

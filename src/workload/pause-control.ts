// Pausing guest threads at a safe point, fast: Atomics wait/notify on a shared word, no sleeps.
// Words: [0] command (0 run, 1 pause, 2 stop), [1] threads currently parked, [2] throttle in
// thousandths (auto-converge: the share of time the threads sleep), [3] units of work done (a
// thread bumps it after each, so that whoever waits for progress is woken, not polling).

export const RUN = 0;
export const PAUSE = 1;
export const STOP = 2;

export class PauseControl {
  readonly words: Int32Array;

  constructor(
    readonly threads: number,
    buffer: SharedArrayBuffer = new SharedArrayBuffer(16),
  ) {
    this.words = new Int32Array(buffer);
  }

  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Asks every thread to park at its next safe point and resolves once all are parked. */
  async pause(): Promise<void> {
    Atomics.store(this.words, 0, PAUSE);
    for (;;) {
      const parked = Atomics.load(this.words, 1);
      if (parked >= this.threads) return;
      await Atomics.waitAsync(this.words, 1, parked).value;
    }
  }

  resume(): void {
    Atomics.store(this.words, 0, RUN);
    Atomics.notify(this.words, 0);
  }

  stop(): void {
    Atomics.store(this.words, 0, STOP);
    Atomics.notify(this.words, 0);
  }

  /**
   * Resolves once `reached()` holds, re-checking after every unit of work the threads report;
   * rejects if `ended` settles first (the threads stopped without getting there).
   */
  async until(reached: () => boolean, ended: Promise<unknown>): Promise<void> {
    let stopped = false;
    const over = ended.then(() => (stopped = true), () => (stopped = true));
    while (!reached()) {
      if (stopped) throw new Error("the guest threads stopped before the awaited progress");
      const ticks = Atomics.load(this.words, 3);
      if (reached()) return;
      await Promise.race([Atomics.waitAsync(this.words, 3, ticks).value, over]);
    }
  }

  /** Makes the threads sleep this fraction of the time (0 to 0.99), as QEMU's CPU throttle does. */
  throttle(fraction: number): void {
    Atomics.store(this.words, 2, Math.round(Math.min(0.99, Math.max(0, fraction)) * 1000));
  }
}

/**
 * Called by a guest thread after a unit of work that took `busyMs`: sleeps long enough that the
 * thread runs only (1 - throttle) of the time. A pause or stop cuts the sleep short.
 */
export function throttleSleep(words: Int32Array, busyMs: number): void {
  const perMille = Atomics.load(words, 2);
  if (perMille === 0) return;
  const share = perMille / 1000;
  Atomics.wait(words, 0, RUN, (busyMs * share) / (1 - share));
}

/**
 * Called by a guest thread between units of work: parks while paused (announcing itself so that
 * pause() can return), and returns false when the thread should stop.
 */
export function safePoint(words: Int32Array): boolean {
  let command = Atomics.load(words, 0);
  if (command === RUN) return true;
  if (command === STOP) return false;
  Atomics.add(words, 1, 1);
  Atomics.notify(words, 1);
  while ((command = Atomics.load(words, 0)) === PAUSE) Atomics.wait(words, 0, PAUSE);
  Atomics.sub(words, 1, 1);
  return command !== STOP;
}

/** Called by a guest thread after each unit of work: wakes whoever waits in until(). */
export function progressed(words: Int32Array): void {
  Atomics.add(words, 3, 1);
  Atomics.notify(words, 3);
}

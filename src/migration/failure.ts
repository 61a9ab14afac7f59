// The first failure of a migration, latched: every loop checks it at its next step, and whoever
// must stop (channels, buffer waiters, the caller's promise) hears of it once. The pieces of a
// migration share one latch instead of calling each other's fail().

export class FailureLatch {
  private first: Error | undefined;
  private readonly listeners: Array<(error: Error) => void> = [];

  get error(): Error | undefined {
    return this.first;
  }

  /** Throws the first failure, if there is one. */
  check(): void {
    if (this.first) throw this.first;
  }

  /** Latches `error` unless a failure came first; the listeners hear of the first one only. */
  fail(error: Error): void {
    if (this.first) return;
    this.first = error;
    for (const listener of this.listeners.splice(0)) listener(error);
  }

  /** Calls `listener` on the first failure (at once, if it has happened). */
  onFail(listener: (error: Error) => void): void {
    if (this.first) listener(this.first);
    else this.listeners.push(listener);
  }
}

/** A promise to wait on until someone calls wake(); each wait() gets a fresh one. */
export class Wakeup {
  private waiters: Array<() => void> = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Any thrown value as an Error. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

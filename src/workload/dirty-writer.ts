// A synthetic guest for migrations: worker threads that dirty pages at a chosen rate. The HPC
// kernels are in their own modules; this one exists to drive a dirty rate exactly.
import { Worker } from "node:worker_threads";
import type { Region } from "../memory/region.js";
import type { LayoutOptions } from "../memory/layout.js";
import { PauseControl } from "./pause-control.js";
import { workerUrl } from "../runtime/worker-url.js";

export interface WriterSetup {
  memory: WebAssembly.Memory;
  layout: LayoutOptions;
  control: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  pagesPerSecond: number;
  seed: number;
  sweep?: HotSet;
}

/** Pages [first, first + count) written in order, over and over: a hot set swept as an HPC kernel sweeps its grid. */
export interface HotSet {
  first: number;
  count: number;
}

export class DirtyWriter {
  private readonly worker: Worker;
  private readonly control: PauseControl;
  private readonly counters = new Float64Array(new SharedArrayBuffer(8));
  private readonly exited: Promise<void>;

  /**
   * Starts a thread writing `pagesPerSecond` pages of `region` per second: random ones, or with
   * `sweep` the pages of a hot set in order, one word each (the sweep count).
   */
  constructor(region: Region, pagesPerSecond: number, seed = 1, sweep?: HotSet) {
    this.control = new PauseControl(1);
    const setup: WriterSetup = {
      memory: region.memory,
      layout: region.options,
      control: this.control.buffer,
      counters: this.counters.buffer as SharedArrayBuffer,
      pagesPerSecond,
      seed,
      sweep,
    };
    this.worker = new Worker(workerUrl("dirty-writer-worker", import.meta.url), { workerData: setup });
    this.exited = new Promise((resolve, reject) => {
      this.worker.once("exit", () => resolve());
      this.worker.once("error", reject);
    });
  }

  /** Pages written so far. */
  get written(): number {
    return this.counters[0];
  }

  /** Resolves once the thread has written `pages` pages in all. */
  until(pages: number): Promise<void> {
    return this.control.until(() => this.written >= pages, this.exited);
  }

  pause(): Promise<void> {
    return this.control.pause();
  }

  resume(): void {
    this.control.resume();
  }

  async stop(): Promise<void> {
    this.control.stop();
    await this.exited;
  }
}

// A workload running on guest memory in a worker thread: start it, pause it at a safe point,
// take its state (the device state a migration carries), and resume it here or elsewhere.
import { Worker } from "node:worker_threads";
import type { Region } from "../memory/region.js";
import type { LayoutOptions } from "../memory/layout.js";
import { WORKLOAD_STATE_BYTES } from "../memory/layout.js";
import { PauseControl } from "./pause-control.js";
import { workerUrl } from "../runtime/worker-url.js";
import { FREE_MODES, kernelByName, writeContext, type FreeMode, type WorkloadExports } from "./kernels.js";
import { instantiate } from "../runtime/module.js";
import { PagewireError } from "../errors.js";

/** Slots of the shared counters a workload thread updates after every step. */
export const Counter = { iterations: 0, steps: 1, lastStepAt: 2, firstStepAt: 3 } as const;

export interface WorkerSetup {
  memory: WebAssembly.Memory;
  layout: LayoutOptions;
  kernel: string;
  /** Set to initialise the data; absent when resuming from a state. */
  init?: { seed: number; freeMode: FreeMode };
  /** Stop once this many iterations are done (0: run until stopped). */
  stopAt: number;
  /** Iterations already done (resuming from a state). */
  startIterations: number;
  control: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

export interface WorkloadOptions {
  seed?: number;
  /** What churn does with freed memory. Default "dirty". */
  freeMode?: FreeMode;
  /** Stop after this many iterations (default: run until stop()). */
  stopAt?: number;
}

export interface WorkloadStateHeader {
  format: "pagewire-workload/1";
  kernel: string;
  freeMode: FreeMode;
  iterations: number;
  /** Wall-clock ms of the last step on the source: the application's downtime starts here. */
  lastStepAt: number;
}

export class Workload {
  private readonly worker: Worker;
  private readonly control = new PauseControl(1);
  private readonly counters = new Float64Array(new SharedArrayBuffer(32));
  /** Resolves once the data is initialised (or the state restored) and stepping begins. */
  readonly ready: Promise<void>;
  /** Resolves when the thread has stopped (stopAt reached, or stop()). */
  readonly done: Promise<void>;

  private constructor(
    readonly region: Region,
    readonly kernel: string,
    readonly freeMode: FreeMode,
    init: WorkerSetup["init"],
    stopAt: number,
    startIterations: number,
  ) {
    kernelByName(kernel);
    const setup: WorkerSetup = {
      memory: region.memory,
      layout: region.options,
      kernel,
      init,
      stopAt,
      startIterations,
      control: this.control.buffer,
      counters: this.counters.buffer as SharedArrayBuffer,
    };
    this.worker = new Worker(workerUrl("workload-worker", import.meta.url), { workerData: setup });
    const failed = new Promise<never>((_, reject) => this.worker.once("error", reject));
    // Only ever raced into ready and done below, which carry the error to whoever awaits them.
    failed.catch(() => undefined);
    this.ready = Promise.race([new Promise<void>((resolve) => this.worker.once("message", () => resolve())), failed]);
    this.done = Promise.race([new Promise<void>((resolve) => this.worker.once("exit", () => resolve())), failed]);
    // A kernel that traps rejects these; whoever awaits them (stop(), pause()) sees the error.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** Initialises the kernel's data on the region and starts running it. */
  static start(region: Region, kernel: string, options: WorkloadOptions = {}): Workload {
    const freeMode = options.freeMode ?? "dirty";
    return new Workload(region, kernel, freeMode, { seed: options.seed ?? 1, freeMode }, options.stopAt ?? 0, 0);
  }

  /** Continues a workload from a state taken by deviceState(), on memory that holds its data; the state is checked first. */
  static resumeFrom(region: Region, deviceState: Uint8Array, options: { stopAt?: number } = {}): { workload: Workload; header: WorkloadStateHeader } {
    const header = Workload.check(region, deviceState);
    return { workload: new Workload(region, header.kernel, header.freeMode, undefined, options.stopAt ?? 0, header.iterations), header };
  }

  /**
   * Checks a device state as wire input, before any thread runs on it: its header, then every
   * field of the kernel's state against the guest it would run on (a state from elsewhere could
   * otherwise point the kernel outside the guest). Leaves the state in the region's state area.
   */
  static check(region: Region, deviceState: Uint8Array): WorkloadStateHeader {
    const header = Workload.parse(deviceState);
    if (!(FREE_MODES as readonly string[]).includes(header.freeMode)) throw new PagewireError("ESTATE", `the workload state names an unknown free mode ${JSON.stringify(header.freeMode)}`);
    if (!Number.isSafeInteger(header.iterations) || header.iterations < 0) throw new PagewireError("ESTATE", `the workload state's iteration count ${header.iterations} is not a count`);
    region.bytes.set(deviceState.subarray(deviceState.length - WORKLOAD_STATE_BYTES), region.layout.workloadState);
    const kernel = kernelByName(header.kernel);
    const bad = kernel.check(instantiate<WorkloadExports>("workloads", region.memory), writeContext(region));
    if (bad !== 0) {
      const field = kernel.stateFields[bad - 1] ?? `field ${bad}`;
      throw new PagewireError("ESTATE", `the ${header.kernel} state does not fit this guest of ${region.pageCount * region.pageSize} bytes: its ${field} is out of range`);
    }
    return header;
  }

  /** Whether a device state is a workload's (its header parses), as opposed to an embedder's own bytes. */
  static isState(deviceState: Uint8Array): boolean {
    try {
      Workload.parse(deviceState);
      return true;
    } catch {
      return false;
    }
  }

  /** Reads the header of a device state written by deviceState(); throws if it is not one. */
  static parse(deviceState: Uint8Array): WorkloadStateHeader {
    const view = new DataView(deviceState.buffer, deviceState.byteOffset, deviceState.byteLength);
    const length = deviceState.length >= 4 ? view.getUint32(0, true) : 0;
    if (deviceState.length !== 4 + length + WORKLOAD_STATE_BYTES) throw new PagewireError("ESTATE", "the device state is not a pagewire workload state");
    let header: WorkloadStateHeader;
    try {
      header = JSON.parse(new TextDecoder().decode(deviceState.subarray(4, 4 + length))) as WorkloadStateHeader;
    } catch {
      throw new PagewireError("ESTATE", "the device state's workload header is not JSON");
    }
    if (typeof header !== "object" || header === null) throw new PagewireError("ESTATE", "the device state's workload header is not an object");
    if (header.format !== "pagewire-workload/1") throw new PagewireError("ESTATE", `unknown workload state format ${header.format}`);
    kernelByName(header.kernel);
    return header;
  }

  get iterations(): number {
    return this.counters[Counter.iterations];
  }

  get steps(): number {
    return this.counters[Counter.steps];
  }

  /** Wall-clock ms of the first step this thread ran (0 before it). */
  get firstStepAt(): number {
    return this.counters[Counter.firstStepAt];
  }

  get lastStepAt(): number {
    return this.counters[Counter.lastStepAt];
  }

  /** Resolves once the workload has done `iterations` iterations in all. */
  until(iterations: number): Promise<void> {
    return this.control.until(() => this.iterations >= iterations, this.done);
  }

  /** Parks the thread at its next safe point (between steps); resolves once it is parked, or has finished. */
  async pause(): Promise<void> {
    await Promise.race([this.control.pause(), this.done]);
  }

  resume(): void {
    this.control.resume();
  }

  /** Slows the workload: its thread sleeps this fraction of the time (auto-converge). */
  throttle(fraction: number): void {
    this.control.throttle(fraction);
  }

  async stop(): Promise<void> {
    this.control.stop();
    await this.done;
  }

  /** The state that lets the workload continue elsewhere; take it while paused. */
  deviceState(): Uint8Array {
    const header: WorkloadStateHeader = { format: "pagewire-workload/1", kernel: this.kernel, freeMode: this.freeMode, iterations: this.iterations, lastStepAt: this.lastStepAt };
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(4 + json.length + WORKLOAD_STATE_BYTES);
    new DataView(out.buffer).setUint32(0, json.length, true);
    out.set(json, 4);
    out.set(this.region.bytes.subarray(this.region.layout.workloadState, this.region.layout.workloadState + WORKLOAD_STATE_BYTES), 4 + json.length);
    return out;
  }
}

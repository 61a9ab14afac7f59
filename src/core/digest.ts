// A pool of worker threads that compute digests off the main thread, splitting each region's
// chunks among them: the source hashes while its last frames are still leaving (hashing on the
// main thread would stall the socket writes the event loop drives). One pool may serve several
// migrations at once (a listener's sessions): every job carries an id, and its answer goes to the
// caller that posted it, whichever finished first.
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { LayoutOptions } from "../memory/layout.js";
import { Region } from "../memory/region.js";
import { Hasher } from "./hasher.js";
import { workerUrl } from "../runtime/worker-url.js";

export interface DigestJob {
  id: number;
  memory: WebAssembly.Memory;
  layout: LayoutOptions;
  /**
   * "chunks": hash every page of chunks [first, end) into their sums (layout.digestChunks);
   * "list": take again the stale group terms of the chunks listed in `chunks` (Hasher.hashChunks)
   * and store their sums; "pages": sum the page hashes of pages
   * [first, end); "prefault": touch pages [first, end) so that the OS maps them now.
   */
  kind: "chunks" | "list" | "pages" | "prefault";
  first: number;
  end: number;
  /** For "list": the chunks to hash, ascending (first and end are ignored). */
  chunks?: Uint32Array;
  /** For "list": leave unread the pages layout.zeroPages knows to be zero. */
  zeroMap?: boolean;
  /** For "pages": a bitmap of pages to leave out, or 0. */
  skip: number;
}

export interface DigestAnswer {
  id: number;
  /** The page-hash sum ("pages"), or the pages read ("chunks", "list": the sums are in the region's memory). */
  sum?: bigint;
  error?: string;
  /** How long the thread took over the job. */
  ms?: number;
}

/** What a migration's jobs cost the pool's threads: ms each spent on them, added up (time on the thread, preemption included). */
export interface ThreadTime {
  ms: number;
}

interface Pending {
  resolve: (sum: bigint) => void;
  reject: (error: Error) => void;
  time?: ThreadTime;
}

export class DigestPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(readonly threads = Math.min(2, availableParallelism())) {}

  private static sharedPool: DigestPool | undefined;

  /**
   * One pool for every source in this process: its threads start once (20–40 ms each time
   * otherwise), and jobs of concurrent migrations are told apart by id. Never closed; its
   * threads do not keep the process alive.
   */
  static shared(): DigestPool {
    return (DigestPool.sharedPool ??= new DigestPool());
  }

  private worker(i: number): Worker {
    if (!this.workers[i]) {
      const w = new Worker(workerUrl("digest-worker", import.meta.url));
      w.on("message", (answer: DigestAnswer) => this.answer(answer));
      // A worker that dies fails every job still out: none can be told apart by worker.
      w.on("error", (error) => this.failAll(error));
      // Idle threads must not keep the process alive (see hold()); after the listeners, since
      // adding a message listener refs the worker's port again.
      w.unref();
      this.workers[i] = w;
    }
    return this.workers[i];
  }

  private answer({ id, sum, error, ms }: DigestAnswer): void {
    const job = this.pending.get(id);
    if (!job) return;
    this.pending.delete(id);
    if (job.time) job.time.ms += ms ?? 0;
    this.hold();
    if (error !== undefined) job.reject(new Error(`digest worker: ${error}`));
    else job.resolve(sum ?? 0n);
  }

  private failAll(error: Error): void {
    for (const job of this.pending.values()) job.reject(error);
    this.pending.clear();
    this.hold();
  }

  /** The threads keep the process alive while a job is out, and only then. */
  private hold(): void {
    const busy = this.pending.size > 0;
    for (const w of this.workers) {
      if (busy) w?.ref();
      else w?.unref();
    }
  }

  private warmed: Promise<void> | undefined;

  /**
   * Starts the threads now, so that their start-up is not paid when a digest is needed; resolves
   * once each has compiled the core and hashed with it. A thread's start costs 50-100 ms of CPU
   * (its isolate, its modules, the core's compilation): a destination that started them only as
   * a migration began spent that on the cores the migration needed.
   */
  warm(): Promise<void> {
    this.warmed ??= (() => {
      // A chunk of a small region, hashed by each thread.
      const small = Region.create({ pageCount: 256, ioBuffers: 1, batchPages: 1 });
      const jobs: Promise<bigint>[] = [];
      for (let i = 0; i < this.threads; i++) jobs.push(this.run(i, { memory: small.memory, layout: small.options, kind: "chunks", first: 0, end: 1, skip: 0 }));
      return Promise.all(jobs).then(() => undefined);
    })();
    return this.warmed;
  }

  private run(i: number, job: Omit<DigestJob, "id">, time?: ThreadTime): Promise<bigint> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const worker = this.worker(i);
      this.pending.set(id, { resolve, reject, time });
      this.hold();
      worker.postMessage({ ...job, id } satisfies DigestJob);
    });
  }

  /** Splits [0, count) of a region among the threads; resolves with each thread's result. */
  private split(region: Region, kind: DigestJob["kind"], count: number, skip = 0, time?: ThreadTime): Promise<bigint[]> {
    const per = Math.ceil(count / this.threads);
    const jobs: Promise<bigint>[] = [];
    for (let t = 0; t < this.threads && t * per < count; t++) {
      jobs.push(this.run(t, { memory: region.memory, layout: region.options, kind, first: t * per, end: Math.min(count, (t + 1) * per), skip }, time));
    }
    return Promise.all(jobs);
  }

  /**
   * Brings the listed chunks of a region (ascending) up to date, their stale groups hashed again,
   * split among the threads; with `zeroMap`, pages layout.zeroPages knows to be zero go unread.
   * Resolves with the pages read; the threads' time is added to `time`.
   */
  async hashChunkList(region: Region, chunks: Uint32Array, zeroMap = false, time?: ThreadTime): Promise<number> {
    const per = Math.ceil(chunks.length / this.threads);
    const jobs: Promise<bigint>[] = [];
    for (let t = 0; t < this.threads && t * per < chunks.length; t++) {
      const part = chunks.slice(t * per, (t + 1) * per);
      jobs.push(this.run(t, { memory: region.memory, layout: region.options, kind: "list", first: 0, end: 0, chunks: part, zeroMap, skip: 0 }, time));
    }
    return (await Promise.all(jobs)).reduce((sum, read) => sum + Number(read), 0);
  }

  /** The digest of each region (see hasher.ts), computed by the pool. */
  async digest(regions: Region[], time?: ThreadTime): Promise<bigint[]> {
    const results: bigint[] = [];
    for (const region of regions) {
      await this.split(region, "chunks", region.layout.digestChunkCount, 0, time);
      results.push(new Hasher(region).combineChunks());
    }
    return results;
  }

  /** Per region, the sum of its page hashes, leaving out the pages set in skip(region) (post-copy's digest). */
  async pageSums(regions: Region[], skip: (region: Region) => number = () => 0, time?: ThreadTime): Promise<bigint[]> {
    const results: bigint[] = [];
    for (const region of regions) {
      const sums = await this.split(region, "pages", region.pageCount, skip(region), time);
      results.push(BigInt.asUintN(64, sums.reduce((a, b) => a + b, 0n)));
    }
    return results;
  }

  /**
   * Touches every page of the regions in the pool's threads, as Region.prefault() does on the
   * calling one: a destination allocating gigabytes for an offer keeps its event loop free (4 GiB
   * took 9.8 s of it).
   */
  async prefault(regions: Region[]): Promise<void> {
    // One thread: page faults on one process's memory serialise in the kernel, and two threads
    // touching 2 GiB took 7.0 s where one took 3.0 s.
    for (const region of regions) await this.run(0, { memory: region.memory, layout: region.options, kind: "prefault", first: 0, end: region.pageCount, skip: 0 });
  }

  close(): void {
    this.failAll(new Error("the digest pool was closed"));
    for (const w of this.workers.splice(0)) void w.terminate();
  }
}

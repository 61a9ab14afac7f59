// The digest that proves a migration exact: for each region, XXH3-64 of every 1 MiB chunk of
// guest memory, then XXH64 over those chunk hashes. Chunks let threads share the work, and a
// worker pool lets the source hash while its last frames are still leaving (hashing on the main
// thread would stall the socket writes the event loop drives).
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { Core } from "./core.js";
import type { CoreExports } from "./abi.js";
import type { Region } from "../memory/region.js";
import { DIGEST_CHUNK_BYTES, type Layout, type LayoutOptions } from "../memory/layout.js";
import { workerUrl } from "../workload/worker-url.js";

export interface DigestJob {
  memory: WebAssembly.Memory;
  layout: LayoutOptions;
  /** "chunks": hash chunks [first, end) into digestChunks; "pages": sum the page hashes of pages [first, end). */
  kind: "chunks" | "pages";
  first: number;
  end: number;
  /** For "pages": a bitmap of pages to leave out, or 0. */
  skip: number;
}

/** The sum of the page hashes (see pageHashSum in assembly/hash.ts) of pages [first, end) not in `skip`. */
export function sumPages(wasm: CoreExports, layout: Layout, first: number, end: number, skip: number): bigint {
  return BigInt.asUintN(64, wasm.pageHashSumRange(layout.guest, layout.pageShift, first, end - first, skip));
}

/**
 * Hashes chunks [first, end) of a region into its digestChunks area. Any thread may call it with
 * its own instance of the core; it touches no lane, and the secret was written by the region's Core.
 */
export function hashChunks(wasm: CoreExports, layout: Layout, first: number, end: number): void {
  const { guest, pageCount, pageSize, hashSecret, digestChunks } = layout;
  wasm.xxh3Chunks(guest, pageCount * pageSize, DIGEST_CHUNK_BYTES, first, end, hashSecret, digestChunks);
}

/** Combines the chunk hashes into the region's digest, as an unsigned 64-bit value. */
export function combineChunks(core: Core): bigint {
  const { digestChunks, digestChunkCount } = core.region.layout;
  return BigInt.asUintN(64, core.wasm.xxh64(digestChunks, digestChunkCount * 8, 0n));
}

/** The digest of a region, computed on the calling thread. */
export function digestNow(core: Core): bigint {
  hashChunks(core.wasm, core.region.layout, 0, core.region.layout.digestChunkCount);
  return combineChunks(core);
}

/** Worker threads that compute digests off the main thread, splitting each region's chunks. */
export class DigestPool {
  private readonly workers: Worker[] = [];

  constructor(readonly threads = Math.min(2, availableParallelism())) {}

  private worker(i: number): Worker {
    if (!this.workers[i]) {
      const w = new Worker(workerUrl("digest-worker", import.meta.url));
      w.unref();
      this.workers[i] = w;
    }
    return this.workers[i];
  }

  /** Starts the threads now, so that their start-up is not paid when a digest is needed. */
  warm(): void {
    for (let i = 0; i < this.threads; i++) this.worker(i);
  }

  private run(i: number, job: DigestJob): Promise<bigint> {
    const w = this.worker(i);
    return new Promise((resolve, reject) => {
      const onMessage = (sum: bigint) => {
        w.off("error", onError);
        resolve(sum);
      };
      const onError = (error: Error) => {
        w.off("message", onMessage);
        reject(error);
      };
      w.once("message", onMessage);
      w.once("error", onError);
      w.postMessage(job);
    });
  }

  /** Splits [0, count) of a region among the threads; resolves with each thread's result. */
  private split(region: Region, kind: DigestJob["kind"], count: number, skip = 0): Promise<bigint[]> {
    const per = Math.ceil(count / this.threads);
    const jobs: Promise<bigint>[] = [];
    for (let t = 0; t < this.threads && t * per < count; t++) {
      jobs.push(this.run(t, { memory: region.memory, layout: region.options, kind, first: t * per, end: Math.min(count, (t + 1) * per), skip }));
    }
    return Promise.all(jobs);
  }

  /** The digest of each region, computed by the pool. */
  async digest(cores: Core[]): Promise<bigint[]> {
    const results: bigint[] = [];
    for (const core of cores) {
      await this.split(core.region, "chunks", core.region.layout.digestChunkCount);
      results.push(combineChunks(core));
    }
    return results;
  }

  /** Per region, the sum of its page hashes, leaving out the pages set in skip(region) (post-copy's digest). */
  async pageSums(cores: Core[], skip: (region: Region) => number = () => 0): Promise<bigint[]> {
    const results: bigint[] = [];
    for (const { region } of cores) {
      const sums = await this.split(region, "pages", region.pageCount, skip(region));
      results.push(BigInt.asUintN(64, sums.reduce((a, b) => a + b, 0n)));
    }
    return results;
  }

  close(): void {
    for (const w of this.workers.splice(0)) void w.terminate();
  }
}

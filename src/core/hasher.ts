// The hashes that prove a migration exact, on one thread: the chunked digest of a region
// (XXH3-64 of every 1 MiB chunk of guest memory, then XXH64 over those chunk hashes) and
// post-copy's sums of page hashes. It touches no lane, so any thread may hold one per region.
import type { CoreExports } from "../abi/abi.js";
import { instantiateCore } from "../runtime/module.js";
import { DIGEST_CHUNK_BYTES } from "../memory/layout.js";
import type { Region } from "../memory/region.js";

export class Hasher {
  private readonly wasm: CoreExports;

  constructor(readonly region: Region) {
    this.wasm = instantiateCore(region.memory);
  }

  /**
   * Hashes chunks [first, end) of the guest into the region's digestChunks area; with `zeroMap`,
   * the pages layout.zeroPages knows to be zero go unread (pages of at least 1 KiB, an XXH3 block).
   */
  hashChunks(first: number, end: number, zeroMap = false): void {
    const { guest, pageCount, pageSize, pageShift, hashSecret, digestChunks, zeroPages } = this.region.layout;
    const map = zeroMap && pageSize >= 1024 ? zeroPages : 0;
    this.wasm.xxh3Chunks(guest, pageCount * pageSize, DIGEST_CHUNK_BYTES, first, end, hashSecret, digestChunks, map, pageShift);
  }

  /** Hashes the listed chunks (ascending), a run of consecutive ones per call. */
  hashChunkList(chunks: Uint32Array, zeroMap = false): void {
    for (let i = 0; i < chunks.length; ) {
      let end = i + 1;
      while (end < chunks.length && chunks[end] === chunks[end - 1] + 1) end++;
      this.hashChunks(chunks[i], chunks[end - 1] + 1, zeroMap);
      i = end;
    }
  }

  /** Combines the chunk hashes into the region's digest, as an unsigned 64-bit value. */
  combineChunks(): bigint {
    const { digestChunks, digestChunkCount } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.xxh64(digestChunks, digestChunkCount * 8, 0n));
  }

  /**
   * Bytes per ms this thread hashes digest chunks at: the best of `tries` one-chunk runs, spread
   * over the region. The
   * first runs of a fresh instance go through V8's baseline compiler (10 times slower: a one-shot
   * measure once put a 1 GiB pause at 768 ms, against 66 measured), so only the fastest counts.
   */
  measureRate(tries = 8): number {
    // A different chunk each time: one hashed again would come from the cache, not from memory.
    const { digestChunkCount } = this.region.layout;
    const bytes = Math.min(DIGEST_CHUNK_BYTES, this.region.pageCount * this.region.pageSize);
    let best = Infinity;
    for (let i = 0; i < tries; i++) {
      const chunk = Math.floor((i * digestChunkCount) / tries);
      const start = performance.now();
      this.hashChunks(chunk, chunk + 1);
      best = Math.min(best, performance.now() - start);
    }
    return bytes / Math.max(0.001, best);
  }

  /** The region's digest, computed on this thread. */
  digest(): bigint {
    this.hashChunks(0, this.region.layout.digestChunkCount);
    return this.combineChunks();
  }

  /** The sum of the page hashes (assembly/hash.ts pageHashSum) of pages [first, end) not set in bitmap `skip` (0: none). */
  sumPages(first: number, end: number, skip = 0): bigint {
    const { guest, pageShift } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.pageHashSumRange(guest, pageShift, first, end - first, skip));
  }
}

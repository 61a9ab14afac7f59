// The hashes that prove a migration exact, on one thread: a region's digest (the sum of a term
// per 16 KiB group of pages, each group's XXH3 mixed with its index: assembly/page-digest.ts),
// kept as a term per group and a sum per 1 MiB chunk so that only groups changed since are hashed
// again; and post-copy's sums of page hashes. It touches no lane, so any thread may hold one per
// region.
import type { CoreExports } from "../abi/abi.js";
import { instantiateCore } from "../runtime/module.js";
import { DIGEST_CHUNK_BYTES, DIGEST_GROUP_BYTES } from "../memory/layout.js";
import { Region } from "../memory/region.js";

/** XXH3 of `bytes` zero bytes (a zero group's term is 0), computed once per size in a small zeroed region. */
const zeroHashes = new Map<number, bigint>();
function zeroHash(bytes: number, pageSize: number): bigint {
  let hash = zeroHashes.get(bytes);
  if (hash === undefined) {
    const zero = Region.create({ pageSize, pageCount: bytes / pageSize, ioBuffers: 1, batchPages: 1 });
    hash = BigInt.asUintN(64, instantiateCore(zero.memory).hashBytes(zero.layout.guest, bytes, zero.layout.hashSecret));
    zeroHashes.set(bytes, hash);
  }
  return hash;
}

export class Hasher {
  private readonly wasm: CoreExports;
  /** XXH3 of a zero group, and of a zero last group (which may be short). */
  private readonly zeroHash: bigint;
  private readonly zeroHashLast: bigint;
  private readonly groupBytes: number;

  constructor(readonly region: Region) {
    this.wasm = instantiateCore(region.memory);
    const { pageSize, pageCount } = region;
    const groupPages = Math.max(1, DIGEST_GROUP_BYTES / pageSize);
    this.groupBytes = groupPages * pageSize;
    this.zeroHash = zeroHash(this.groupBytes, pageSize);
    this.zeroHashLast = zeroHash((pageCount - Math.floor((pageCount - 1) / groupPages) * groupPages) * pageSize, pageSize);
  }

  /**
   * Brings the sums of chunks [first, end) up to date; returns the pages read. "all": every group
   * hashed; "stale": the groups with a page layout.pageStale marks, and with `zeroMap` the pages
   * layout.zeroPages knows to be zero go unread (pages of at least 1 KiB, an XXH3 block).
   */
  hashChunks(first: number, end: number, which: "all" | "stale" = "all", zeroMap = false): number {
    const { guest, pageCount, pageShift, hashSecret, digestChunks, digestChunkShift, groupTerms, pageStale, zeroPages } = this.region.layout;
    const stale = which === "stale" ? pageStale : 0;
    const map = which === "stale" && zeroMap && this.region.pageSize >= 1024 ? zeroPages : 0;
    return this.wasm.digestChunks(guest, pageShift, pageCount, digestChunkShift, first, end, hashSecret, this.zeroHash, this.zeroHashLast, groupTerms, digestChunks, stale, map);
  }

  /** hashChunks("stale") of the listed chunks (ascending), a run of consecutive ones per call; returns the pages read. */
  hashChunkList(chunks: Uint32Array, zeroMap = false): number {
    let read = 0;
    for (let i = 0; i < chunks.length; ) {
      let end = i + 1;
      while (end < chunks.length && chunks[end] === chunks[end - 1] + 1) end++;
      read += this.hashChunks(chunks[i], chunks[end - 1] + 1, "stale", zeroMap);
      i = end;
    }
    return read;
  }

  /** The region's digest from its chunk sums, as an unsigned 64-bit value. */
  combineChunks(): bigint {
    const { digestChunks, digestChunkCount } = this.region.layout;
    return BigInt.asUintN(64, this.wasm.sumU64(digestChunks, digestChunkCount));
  }

  /**
   * Bytes per ms this thread hashes guest memory at: the best of `tries` one-chunk runs, spread
   * over the region (XXH3 alone: the digest's state is left as it is). The
   * first runs of a fresh instance go through V8's baseline compiler (10 times slower: a one-shot
   * measure once put a 1 GiB pause at 768 ms, against 66 measured), so only the fastest counts.
   */
  measureRate(tries = 8): number {
    // A different chunk each time: one hashed again would come from the cache, not from memory.
    const { guest, pageCount, pageSize, hashSecret } = this.region.layout;
    const bytes = Math.min(DIGEST_CHUNK_BYTES, pageCount * pageSize);
    const whole = Math.floor((pageCount * pageSize) / bytes);
    let best = Infinity;
    for (let i = 0; i < tries; i++) {
      const at = Math.floor((i * whole) / tries) * bytes;
      const start = performance.now();
      // In groups, as the digest hashes (a group costs more than its share of a 1 MiB run).
      for (let g = 0; g < bytes; g += this.groupBytes) this.wasm.hashBytes(guest + at + g, Math.min(this.groupBytes, bytes - g), hashSecret);
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

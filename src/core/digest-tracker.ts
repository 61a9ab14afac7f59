// The digest that proves a migration, kept current while the live rounds run, so that the pause
// pays only for the pages the final round changed. A region's digest is a sum of terms per 16 KiB
// group of pages (hasher.ts), kept as a sum per 1 MiB chunk; a group's term stays good until a
// page of it changes (layout.pageStale), and a chunk hashed again hashes only those groups. Each
// chunk also has a state byte that schedules it (layout.digestStale): the dirty sync (source) and
// the decoder (destination) store DIRTY into it, and mark the page, for every page they take or
// write, after the write.
// tick() makes DIRTY chunks QUIET and hashes, in the pool's threads, the chunks QUIET since the
// last tick (nothing wrote them for a whole tick: a hot chunk is not hashed again and again).
// passed() makes READY the chunks a sender has just read (a source's first pass over its memory;
// with the guest paused, whatever it sends), hashed as soon as the pool is free, while they are
// still in the cache. A chunk is CLEAN from the moment its hash is dispatched; a write during the
// hash makes it DIRTY again, so its hash is redone. A destination's chunk never written is zero:
// it is not hashed. digests() waits for the hashes in flight, hashes every chunk not CLEAN, and
// adds up. One batch is in flight at a time: two hashes of one chunk never race. Pages known to
// be zero (layout.zeroPages: found zero by the encoder, or written by a zero record, and not
// written since) are not read: on both sides a guest's zero pages cost the digest next to nothing.
import { DIGEST_GROUP_BYTES } from "../memory/layout.js";
import type { Region } from "../memory/region.js";
import type { DigestPool, ThreadTime } from "./digest.js";
import { Hasher } from "./hasher.js";

const CLEAN = 0;
/** Written since the last tick (the value the WASM sync and decoder store). */
const DIRTY = 1;
const QUIET = 2;
/** Never written since the tracker began: a destination's (which starts zeroed) is a zero chunk, whose sum is 0. */
const UNTOUCHED = 3;
/** A source's chunk its first pass has not read yet: hashed once read (passed), or at the end. */
const UNSENT = 4;
/** To hash as soon as the pool is free. */
const READY = 5;

export interface FinalDigest {
  digests: bigint[];
  /** Chunks brought up to date by digests() itself, after the pause, and the bytes of the pages it read: what the pause paid for. */
  chunks: number;
  bytes: number;
}

export class DigestTracker {
  private readonly states: Uint8Array[];
  /** "as-read": 1 for a chunk its first pass has not read yet, which a tick leaves for that pass (written or not, its hash would read it cold). */
  private readonly unread: Uint8Array[];
  /** Instantiated now, not at the pause (a WASM instance costs a few ms to make). */
  private readonly hashers: Hasher[];
  private inFlight: Promise<void> | undefined;
  private error: Error | undefined;
  /** Chunks hashed in the background so far. */
  backgroundChunks = 0;
  /** Whether the hashes may trust layout.zeroPages (not for a checkpoint layer, whose rounds do not read every page). */
  private readonly zeroMap: boolean;

  /**
   * `start`: "as-read" when chunks are hashed as a sender first reads them (passed: a source
   * whose first pass reads every page), "now" when they are hashed from the first tick or pass on
   * (a checkpoint layer, whose rounds read only what changed), "zeroed" when the regions start
   * all zero (the destination, as the protocol requires): a group's term is taken once written,
   * and one never written is known to be zero, with term 0.
   */
  constructor(
    readonly regions: Region[],
    private readonly pool: DigestPool,
    start: "as-read" | "now" | "zeroed",
    /** Where the pool's threads' time on this tracker's hashes is added up. */
    private readonly time: ThreadTime = { ms: 0 },
  ) {
    this.states = regions.map((r) => r.bytes.subarray(r.layout.digestStale, r.layout.digestStale + r.layout.digestChunkCount));
    for (const s of this.states) s.fill(start === "as-read" ? UNSENT : start === "now" ? READY : UNTOUCHED);
    this.unread = this.states.map((s) => new Uint8Array(s.length).fill(start === "as-read" ? 1 : 0));
    // Nothing is known zero but a destination's memory, which starts so; the encoder, the decoder
    // and the syncs keep the map from here on.
    this.zeroMap = start !== "now";
    for (const r of regions) {
      const { zeroPages, pageStale, groupTerms, groupCount, digestChunks, digestChunkCount, pageCount } = r.layout;
      r.bytes.fill(start === "zeroed" ? 1 : 0, zeroPages, zeroPages + pageCount);
      // Every term to take, or (zeroed) every term and sum 0, as a zero group's is.
      r.bytes.fill(start === "zeroed" ? 0 : 1, pageStale, pageStale + pageCount);
      if (start === "zeroed") {
        r.bytes.fill(0, groupTerms, groupTerms + groupCount * 8);
        r.bytes.fill(0, digestChunks, digestChunks + digestChunkCount * 8);
      }
    }
    this.hashers = regions.map((r) => new Hasher(r));
  }

  /** Pages [first, first + count) of region `r` were written (after the write). */
  written(r: number, first: number, count: number): void {
    if (count === 0) return;
    const { digestChunkShift: shift, zeroPages, pageStale } = this.regions[r].layout;
    this.states[r].fill(DIRTY, first >>> shift, ((first + count - 1) >>> shift) + 1);
    this.regions[r].bytes.fill(0, zeroPages + first, zeroPages + first + count);
    this.regions[r].bytes.fill(1, pageStale + first, pageStale + first + count);
  }

  /** Bytes of the groups with a stale page, but for pages known zero: what a pause now would hash. */
  staleBytes(): number {
    let bytes = 0;
    this.regions.forEach((r, i) => {
      const s = this.states[i];
      const { pageStale, zeroPages, pageCount, pageSize, digestChunkShift } = r.layout;
      const groupPages = Math.max(1, DIGEST_GROUP_BYTES / pageSize);
      const b = r.bytes;
      let pages = 0;
      for (let c = 0; c < s.length; c++) {
        if (s[c] === CLEAN || s[c] === UNTOUCHED) continue;
        const end = Math.min(pageCount, (c + 1) << digestChunkShift);
        for (let g = c << digestChunkShift; g < end; g += groupPages) {
          const gEnd = Math.min(end, g + groupPages);
          let stale = false;
          for (let p = g; p < gEnd && !stale; p++) stale = b[pageStale + p] !== 0;
          if (stale) for (let p = g; p < gEnd; p++) if (!(this.zeroMap && b[zeroPages + p] !== 0)) pages++;
        }
      }
      bytes += pages * pageSize;
    });
    return bytes;
  }

  /** Ages the chunks one tick; hashes in the background those quiet since the last tick (and those ready), unless a batch is still out. */
  tick(): void {
    const idle = !this.inFlight;
    const lists = this.states.map((s, i) => {
      const list: number[] = [];
      const unread = this.unread[i];
      for (let c = 0; c < s.length; c++) {
        const state = s[c];
        if (state === DIRTY) s[c] = QUIET;
        else if (idle && ((state === QUIET && !unread[c]) || state === READY)) {
          s[c] = CLEAN;
          list.push(c);
        }
      }
      return list;
    });
    if (idle) this.dispatch(lists);
  }

  /**
   * The sender has passed pages [from, to) of region `r`: read them all (`firstPass`, pages never
   * sent), or read those of them that were dirty. A first pass's chunks are hashed now, while in
   * the cache, even those written since the tracker began; with `frozen` (the guest paused),
   * every chunk wholly passed is.
   */
  passed(r: number, from: number, to: number, { firstPass, frozen }: { firstPass: boolean; frozen: boolean }): void {
    const { pageCount, digestChunkShift } = this.regions[r].layout;
    const s = this.states[r];
    const unread = this.unread[r];
    // The chunks that end within [from, to): the first may have begun before `from`.
    const end = to >= pageCount ? s.length : to >>> digestChunkShift;
    let any = false;
    for (let c = from >>> digestChunkShift; c < end; c++) {
      const state = s[c];
      if (firstPass) unread[c] = 0;
      // A dirty pass read none of a chunk never sent: it waits for its first pass. A first pass
      // read all of a chunk, written before it or not (a running guest's writes make a chunk
      // never sent DIRTY): hashed now, it is left with only the pages written since.
      if ((firstPass && (state === UNSENT || state === DIRTY || state === QUIET)) || (frozen && (state === DIRTY || state === QUIET))) {
        s[c] = READY;
        any = true;
      }
    }
    if (any && !this.inFlight) this.dispatchReady();
  }

  private dispatchReady(): void {
    this.dispatch(
      this.states.map((s) => {
        const list: number[] = [];
        for (let c = 0; c < s.length; c++) {
          if (s[c] === READY) {
            s[c] = CLEAN;
            list.push(c);
          }
        }
        return list;
      }),
    );
  }

  /** Hashes the listed chunks of each region in the pool; once done, whatever became ready meanwhile. */
  private dispatch(lists: number[][]): void {
    const total = lists.reduce((n, l) => n + l.length, 0);
    if (total === 0) return;
    this.backgroundChunks += total;
    const hashed = Promise.all(this.regions.map((r, i) => (lists[i].length ? this.pool.hashChunkList(r, Uint32Array.from(lists[i]), this.zeroMap, this.time) : undefined)));
    this.inFlight = hashed.then(
      () => {
        this.inFlight = undefined;
        this.dispatchReady();
      },
      (error: Error) => {
        this.error ??= error;
        this.inFlight = undefined;
      },
    );
  }

  /** Resolves once no background hash is out. */
  async idle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  /** The digest of each region as its memory is now (frozen: paused, or every page received). */
  async digests(): Promise<FinalDigest> {
    await this.idle();
    if (this.error) throw this.error;
    let chunks = 0;
    let bytes = 0;
    await Promise.all(
      this.regions.map(async (region, i) => {
        const s = this.states[i];
        const list: number[] = [];
        for (let c = 0; c < s.length; c++) {
          // An untouched chunk's sum is 0, as it was set.
          if (s[c] !== CLEAN && s[c] !== UNTOUCHED) list.push(c);
          s[c] = CLEAN;
        }
        chunks += list.length;
        if (list.length) bytes += (await this.pool.hashChunkList(region, Uint32Array.from(list), this.zeroMap, this.time)) * region.pageSize;
      }),
    );
    return { digests: this.hashers.map((h) => h.combineChunks()), chunks, bytes };
  }
}

// Post-copy at the destination: which pages have arrived, and the guest's requests for the rest.
// The guest's threads check presence before each chunk of work (need() in
// assembly/workloads/common.ts) and, for a missing page, publish a fault in the region's presence
// area and sleep on it; this side turns the fault into a page request and wakes them when the page
// is in. The area, 32 bytes at layout.presence, as i32 words:
//   [0] present bitmap address (0: every page is here, no checks)
//   [1] fault state: 0 none, 1 waiting for [2], 2 lost (the migration failed: the guest traps)
//   [2] first page waited for   [3] pages the step will touch from there   [4] faults so far
import type { Region } from "../memory/region.js";
import type { Core } from "../core/core.js";

const Word = { bitmap: 0, state: 1, first: 2, count: 3, faults: 4 } as const;
const FAULT_NONE = 0;
const FAULT_WAITING = 1;
const FAULT_LOST = 2;

export class Presence {
  private readonly words: Int32Array;
  private readonly present: Uint32Array;
  private watching = false;
  private waitingSince = 0;
  /** Milliseconds the guest spent blocked on missing pages. */
  blockedMs = 0;

  constructor(
    private readonly core: Core,
    /** Asks the source for pages [first, first + count). */
    private readonly request: (first: number, count: number) => void,
  ) {
    const { memory, layout } = core.region;
    this.words = new Int32Array(memory.buffer, layout.presence, 8);
    this.present = new Uint32Array(memory.buffer, layout.presentBitmap, layout.bitmapBytes / 4);
  }

  private get region(): Region {
    return this.core.region;
  }

  /** Times the guest found a page missing. */
  get faults(): number {
    return Atomics.load(this.words, Word.faults);
  }

  /** Starts post-copy: every page but those set in `missing` is here; the guest must ask for the rest. */
  begin(missing: number): void {
    const { pageCount, bitmapBytes } = this.region.layout;
    const expected = new Uint32Array(this.region.memory.buffer, missing, bitmapBytes / 4);
    for (let w = 0; w < expected.length; w++) this.present[w] = ~expected[w];
    // Bits past the last page stay clear, like every bitmap's padding.
    if (pageCount % 32 !== 0) this.present[pageCount >>> 5] &= (1 << pageCount % 32) - 1;
    this.present.fill(0, Math.ceil(pageCount / 32));
    Atomics.store(this.words, Word.state, FAULT_NONE);
    Atomics.store(this.words, Word.faults, 0);
    Atomics.store(this.words, Word.bitmap, this.region.layout.presentBitmap);
    this.watching = true;
    void this.watch();
  }

  private isPresent(page: number): boolean {
    return ((Atomics.load(this.present, page >>> 5) >>> (page & 31)) & 1) === 1;
  }

  /** Watches the fault word: each new fault becomes a page request (unless the page came meanwhile). */
  private async watch(): Promise<void> {
    while (this.watching) {
      const state = Atomics.load(this.words, Word.state);
      if (state === FAULT_WAITING && this.waitingSince === 0) {
        this.waitingSince = performance.now();
        const first = Atomics.load(this.words, Word.first);
        if (this.isPresent(first)) this.release();
        else this.request(first, Math.min(Atomics.load(this.words, Word.count), this.region.layout.batchPages));
        continue;
      }
      const wait = Atomics.waitAsync(this.words, Word.state, state);
      if (wait.async) await wait.value;
    }
  }

  /** The request the guest is blocked on, if it is (to ask again after a reconnection). */
  pendingRequest(): { first: number; count: number } | undefined {
    if (!this.watching || Atomics.load(this.words, Word.state) !== FAULT_WAITING) return undefined;
    const first = Atomics.load(this.words, Word.first);
    return this.isPresent(first) ? undefined : { first, count: Math.min(Atomics.load(this.words, Word.count), this.region.layout.batchPages) };
  }

  /** Marks pages arrived (call after they are written): the first n of the core's list, or a run. */
  arrivedListed(n: number): void {
    this.core.markListed(n, this.region.layout.presentBitmap);
    this.wakeIfReady();
  }

  arrivedRange(first: number, count: number): void {
    this.core.markRange(this.region.layout.presentBitmap, first, count);
    this.wakeIfReady();
  }

  private wakeIfReady(): void {
    if (Atomics.load(this.words, Word.state) === FAULT_WAITING && this.isPresent(Atomics.load(this.words, Word.first))) this.release();
  }

  private release(): void {
    if (this.waitingSince > 0) this.blockedMs += performance.now() - this.waitingSince;
    this.waitingSince = 0;
    Atomics.store(this.words, Word.state, FAULT_NONE);
    Atomics.notify(this.words, Word.state);
  }

  /** Every page is here: the guest stops checking. */
  finish(): void {
    Atomics.store(this.words, Word.bitmap, 0);
    this.stop(FAULT_NONE);
  }

  /** The migration failed: a guest thread blocked on a page, or about to be, traps. */
  lose(): void {
    this.stop(FAULT_LOST);
  }

  private stop(state: number): void {
    this.watching = false;
    if (state === FAULT_NONE && this.waitingSince > 0) this.blockedMs += performance.now() - this.waitingSince;
    this.waitingSince = 0;
    Atomics.store(this.words, Word.state, state);
    Atomics.notify(this.words, Word.state);
  }
}

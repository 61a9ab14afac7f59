// A region of guest memory: one shared WebAssembly.Memory holding the guest's pages, its dirty
// log and the engine's scratch, laid out by planLayout.
import { planLayout, type Layout, type LayoutOptions } from "./layout.js";
import { XXH3_SECRET } from "../abi/xxh3-secret.js";

const OS_PAGE = 4096;

export class Region {
  readonly bytes: Uint8Array;
  private readonly dirtyWords: Int32Array;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly layout: Layout,
    readonly options: LayoutOptions,
  ) {
    this.bytes = new Uint8Array(memory.buffer);
    this.dirtyWords = new Int32Array(memory.buffer, layout.dirtyBitmap, layout.bitmapBytes / 4);
  }

  /**
   * A new region, all zero but for the XXH3 secret the digest reads, written once here so that
   * every thread's core finds it. The OS maps the guest's pages lazily: see prefault().
   */
  static create(options: LayoutOptions): Region {
    const layout = planLayout(options);
    const memory = new WebAssembly.Memory({ initial: layout.memoryPages, maximum: layout.memoryPages, shared: true });
    const region = new Region(memory, layout, options);
    region.bytes.set(XXH3_SECRET, layout.hashSecret);
    return region;
  }

  /** The same region seen from another thread, given the memory and the options it was made with. */
  static attach(memory: WebAssembly.Memory, options: LayoutOptions): Region {
    return new Region(memory, planLayout(options), options);
  }

  get pageSize(): number {
    return this.layout.pageSize;
  }

  get pageCount(): number {
    return this.layout.pageCount;
  }

  /** Byte address of a guest page in the memory. */
  pageAddress(page: number): number {
    return this.layout.guest + page * this.layout.pageSize;
  }

  /** A view of guest pages [first, first + count). */
  pages(first: number, count = 1): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.pageAddress(first), count * this.layout.pageSize);
  }

  /**
   * Records that pages [first, first + count) were written. The rule: mark a page *after*
   * writing it (a sync between the write and the mark sees the mark later, so the page is sent
   * again; marking before the write could let the sync take the bit and send the old bytes).
   * Safe from any thread: each word is set with one atomic OR.
   */
  markDirty(first: number, count = 1): void {
    const end = first + count;
    for (let w = first >>> 5, last = (end - 1) >>> 5; w <= last; w++) {
      const lo = w === first >>> 5 ? first & 31 : 0;
      const hi = w === last ? ((end - 1) & 31) + 1 : 32;
      const mask = hi === 32 ? -1 << lo : ((1 << hi) - 1) & (-1 << lo);
      Atomics.or(this.dirtyWords, w, mask);
    }
  }

  /**
   * Touches every OS page of the guest once so the kernel maps it now rather than during a
   * timed run, as QEMU's -mem-prealloc does. It rewrites one byte per OS page with its own
   * value, so call it before any writer runs.
   */
  prefault(firstPage = 0, endPage = this.pageCount): void {
    const { guest, pageSize } = this.layout;
    const end = guest + endPage * pageSize;
    for (let p = guest + firstPage * pageSize; p < end; p += OS_PAGE) this.bytes[p] = this.bytes[p];
  }
}

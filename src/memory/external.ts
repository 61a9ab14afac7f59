// For embedders whose guest memory is their own ArrayBuffer or WebAssembly.Memory (an emulator,
// a WebAssembly runtime): the engine works on a copy in a Region, complete from the moment the
// wrapper exists (whatever the memory held before). The embedder marks pages dirty after writing
// its memory, with the same call as Region.markDirty; flush() copies the marked pages into the
// region, a run of consecutive pages at a time, and only then marks them in the region's dirty
// log (so the rule "mark after the write" holds for the copy too). The source's beforeSync hook
// must flush: pass `hooks: { ...external.hooks, ... }`. At the destination, copyReceived and
// receivedMemory put the received guest into the memory its program resumes on.
import type { Region } from "./region.js";
import { PagewireError } from "../errors.js";

export type GuestBuffer = ArrayBuffer | SharedArrayBuffer | WebAssembly.Memory;

export class ExternalMemory {
  private readonly pending: Int32Array;

  constructor(
    private readonly memory: GuestBuffer,
    readonly region: Region,
  ) {
    const bytes = region.pageCount * region.pageSize;
    if (this.view().length < bytes) throw new PagewireError("EOPTION", `the guest's memory holds ${this.view().length} bytes, less than the region's ${bytes}`);
    // Shared, so the embedder's threads can mark pages too.
    this.pending = new Int32Array(new SharedArrayBuffer(Math.ceil(region.pageCount / 32) * 4));
    // Pages written before the wrapper existed were never marked: the copy starts complete.
    this.region.pages(0, this.region.pageCount).set(this.view().subarray(0, bytes));
  }

  /** The source hook that keeps the copy current: every dirty sync flushes first (the paused one too). */
  get hooks(): { beforeSync: () => void } {
    return { beforeSync: () => void this.flush() };
  }

  /** The embedder's bytes, seen afresh (a WebAssembly.Memory's buffer changes when it grows). */
  private view(): Uint8Array {
    return new Uint8Array(this.memory instanceof WebAssembly.Memory ? this.memory.buffer : this.memory);
  }

  /** Records that the embedder wrote pages [first, first + count); call it after the write. */
  markDirty(first: number, count = 1): void {
    for (let p = first; p < first + count; p++) Atomics.or(this.pending, p >>> 5, 1 << (p & 31));
  }

  /** Copies the pages marked since the last flush into the region and marks them there; returns how many. */
  flush(): number {
    const source = this.view();
    const { pageSize, pageCount } = this.region;
    let copied = 0;
    let runStart = -1;
    const copyRun = (end: number) => {
      this.region.pages(runStart, end - runStart).set(source.subarray(runStart * pageSize, end * pageSize));
      this.region.markDirty(runStart, end - runStart);
      copied += end - runStart;
      runStart = -1;
    };
    for (let w = 0; w < this.pending.length; w++) {
      // Swap-and-clear: a mark made during the copy lands in this flush or the next.
      let bits = this.pending[w] === 0 ? 0 : Atomics.exchange(this.pending, w, 0);
      for (let b = 0; b < 32; b++, bits >>>= 1) {
        const page = w * 32 + b;
        if (page >= pageCount) break;
        if (bits & 1) {
          if (runStart < 0) runStart = page;
        } else if (runStart >= 0) {
          copyRun(page);
        }
      }
    }
    if (runStart >= 0) copyRun(pageCount);
    return copied;
  }
}

/** Bytes of the guest held by `regions`, in order, from page 0. */
function guestBytes(regions: Region[]): number {
  return regions.reduce((sum, r) => sum + r.pageCount * r.pageSize, 0);
}

/**
 * The destination's half: copies a received guest (its regions, in order, from page 0) into the
 * memory its program resumes on: the new module's own memory (a WebAssembly.Memory smaller than
 * the guest is grown to fit), or a view or buffer of it. One copy, for the reason DESIGN.md gives
 * ("Why an embedded program's memory is still copied").
 */
export function copyReceived(regions: Region[], into: GuestBuffer | Uint8Array): void {
  const bytes = guestBytes(regions);
  if (into instanceof WebAssembly.Memory && into.buffer.byteLength < bytes) into.grow(Math.ceil((bytes - into.buffer.byteLength) / 65536));
  const target = into instanceof Uint8Array ? into : new Uint8Array(into instanceof WebAssembly.Memory ? into.buffer : into);
  if (target.length < bytes) throw new PagewireError("EOPTION", `the program's memory holds ${target.length} bytes, less than the ${bytes} received`);
  let at = 0;
  for (const r of regions) {
    target.set(r.pages(0, r.pageCount), at);
    at += r.pageCount * r.pageSize;
  }
}

/**
 * A new WebAssembly.Memory holding a received guest from offset 0, of just its size (in 64 KiB
 * pages, rounded up): what a module that imports its memory is instantiated against
 * (`new WebAssembly.Instance(module, { env: { memory } })`). `maximum` (64 KiB pages) lets the
 * program grow it; `shared` makes a shared memory, for a module that imports one.
 */
export function receivedMemory(regions: Region[], options: { maximum?: number; shared?: boolean } = {}): WebAssembly.Memory {
  const initial = Math.ceil(guestBytes(regions) / 65536);
  const maximum = options.maximum ?? (options.shared ? initial : undefined);
  if (maximum !== undefined && maximum < initial) throw new PagewireError("EOPTION", `a maximum of ${maximum} pages of 64 KiB cannot hold the ${initial} received`);
  const memory = new WebAssembly.Memory({ initial, maximum, shared: options.shared } as WebAssembly.MemoryDescriptor);
  copyReceived(regions, memory);
  return memory;
}

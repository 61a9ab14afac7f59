// What every kernel shares: the context a step receives, dirty marking, a deterministic PRNG.
// A kernel's step does one short unit of work (so a pause lands within a millisecond or so),
// then marks the pages it wrote dirty: after writing, as the dirty-logging rule requires.
import { bitmapMarkRange } from "../bitmap";

// The context (in linear memory, written by src/workload/): where the guest and its bitmaps are.
export const CTX_GUEST: usize = 0; // u32: address of guest page 0 (the workload's data starts here)
export const CTX_BYTES: usize = 4; // u32: bytes of guest memory the workload may use
export const CTX_PAGE_SHIFT: usize = 8; // u32
export const CTX_DIRTY: usize = 12; // u32: the dirty log
export const CTX_FREE: usize = 16; // u32: the free-page hint bitmap
export const CTX_STATE: usize = 20; // u32: the kernel's state struct (device state: it travels)
export const CTX_PRESENCE: usize = 24; // u32: the post-copy presence area (below)

// The presence area, written by the destination during post-copy (src/migration/presence.ts).
const PRESENT_BITMAP: usize = 0; // u32: bitmap of pages that have arrived; 0 once all have (or outside post-copy)
const FAULT_STATE: usize = 4; // i32: FAULT_NONE, FAULT_WAITING (first/count asked for), or FAULT_LOST
const FAULT_FIRST: usize = 8; // u32: first page the guest waits for
const FAULT_COUNT: usize = 12; // u32: pages from there that the step will touch
const FAULT_TOTAL: usize = 16; // u32: times the guest has blocked
const FAULT_NONE: i32 = 0;
const FAULT_WAITING: i32 = 1;
const FAULT_LOST: i32 = 2;

@inline export function guestOf(ctx: usize): usize {
  return <usize>load<u32>(ctx + CTX_GUEST);
}

/** The guest bytes the workload may use (the kernels size their data from this). */
@inline export function bytesOf(ctx: usize): u32 {
  return load<u32>(ctx + CTX_BYTES);
}

@inline export function stateOf(ctx: usize): usize {
  return <usize>load<u32>(ctx + CTX_STATE);
}

/** Marks dirty every page overlapping [address, address + length). */
export function markWritten(ctx: usize, address: usize, length: usize): void {
  if (length == 0) return;
  const guest = guestOf(ctx);
  const shift = load<u32>(ctx + CTX_PAGE_SHIFT);
  const first = <u32>((address - guest) >> shift);
  const last = <u32>((address + length - 1 - guest) >> shift);
  bitmapMarkRange(<usize>load<u32>(ctx + CTX_DIRTY), first, last - first + 1);
}

/** A 64-bit LCG (Knuth's MMIX constants) stepped in place in the state struct; returns the high 32 bits. */
@inline export function nextRandom(statePtr: usize): u32 {
  const x = load<u64>(statePtr) * 6364136223846793005 + 1442695040888963407;
  store<u64>(statePtr, x);
  return <u32>(x >> 32);
}

/**
 * Post-copy's presence check, called once per chunk of work before it touches
 * [address, address + length): returns at once when every page is here (outside post-copy, a
 * single load), else asks the destination for the missing pages and sleeps until they arrive.
 * Traps if the migration broke: the guest's memory is incomplete and it cannot go on.
 */
export function need(ctx: usize, address: usize, length: usize): void {
  const area = <usize>load<u32>(ctx + CTX_PRESENCE);
  if (area == 0 || length == 0) return;
  const present = <usize>atomic.load<u32>(area + PRESENT_BITMAP);
  if (present == 0) return;
  const guest = guestOf(ctx);
  const shift = load<u32>(ctx + CTX_PAGE_SHIFT);
  const last = <u32>((address + length - 1 - guest) >> shift);
  let page = <u32>((address - guest) >> shift);
  while (page <= last) {
    const word = atomic.load<u32>(present + (<usize>(page >>> 5) << 2));
    if (word == <u32>-1) {
      page = (page | 31) + 1;
      continue;
    }
    if ((word >>> (page & 31)) & 1) {
      page++;
      continue;
    }
    waitFor(area, page, last - page + 1);
  }
}

/** Publishes a fault for pages [first, first + count) and sleeps until the destination clears it. */
function waitFor(area: usize, first: u32, count: u32): void {
  atomic.store<u32>(area + FAULT_FIRST, first);
  atomic.store<u32>(area + FAULT_COUNT, count);
  atomic.add<u32>(area + FAULT_TOTAL, 1);
  // Publish only over FAULT_NONE: a lost migration must stay lost.
  if (atomic.cmpxchg<i32>(area + FAULT_STATE, FAULT_NONE, FAULT_WAITING) == FAULT_LOST) unreachable();
  atomic.notify(area + FAULT_STATE, 1);
  let state = atomic.load<i32>(area + FAULT_STATE);
  while (state == FAULT_WAITING) {
    atomic.wait<i32>(area + FAULT_STATE, FAULT_WAITING, -1);
    state = atomic.load<i32>(area + FAULT_STATE);
  }
  if (state == FAULT_LOST) unreachable();
}

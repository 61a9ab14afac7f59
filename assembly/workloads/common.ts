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

@inline export function guestOf(ctx: usize): usize {
  return <usize>load<u32>(ctx + CTX_GUEST);
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

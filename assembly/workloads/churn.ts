// A heap that allocates and frees buffers of 1 to 16 pages in slots of 16 pages. What happens to
// freed memory is the experiment (Gad et al. 2016): left as it is (dirty), zeroed on free (so it
// travels as zero pages), or reported to the engine as free pages (hints) that need not travel.
import { guestOf, stateOf, markWritten, nextRandom, need, CTX_FREE, CTX_PAGE_SHIFT, CTX_BYTES } from "./common";
import { bitmapMarkRange } from "../bitmap";

// State: u64 PRNG, u32 iteration, u32 mode, u32 slots, u32 first data page.
const S_RANDOM: usize = 0;
const S_ITER: usize = 8;
const S_MODE: usize = 12;
const S_SLOTS: usize = 16;
const S_FIRST: usize = 20;
export const FREE_LEAVE_DIRTY: u32 = 0;
export const FREE_ZERO: u32 = 1;
export const FREE_HINT: u32 = 2;
const SLOT_PAGES: u32 = 16;
const OPS_PER_STEP: u32 = 64;

// Layout: the first pages hold the slot table (u32 pages in use per slot), as many pages as it
// needs; slot i starts at page first + 16 i.

/** The slot table's pages: a table page holds 2^(shift-2) slots of 16 pages, sized for every slot that could fit. */
function tablePages(ctx: usize): u32 {
  const shift = load<u32>(ctx + CTX_PAGE_SHIFT);
  const pages = load<u32>(ctx + CTX_BYTES) >> shift;
  return (pages / SLOT_PAGES + (<u32>1 << (shift - 2)) - 1) >> (shift - 2);
}

function slotCount(ctx: usize, first: u32): u32 {
  const pages = load<u32>(ctx + CTX_BYTES) >> load<u32>(ctx + CTX_PAGE_SHIFT);
  return first > pages ? 0 : (pages - first) / SLOT_PAGES;
}

/** 0 when a state fits this guest, else the 1-based number of its first bad field: PRNG, iteration, mode, slots, first data page. */
export function churnCheck(ctx: usize): u32 {
  const s = stateOf(ctx);
  const first = tablePages(ctx);
  if (load<u32>(s + S_FIRST) != first) return 5;
  const slots = load<u32>(s + S_SLOTS);
  if (slots != slotCount(ctx, first) || slots == 0) return 4;
  if (load<u32>(s + S_MODE) > FREE_HINT) return 3;
  return 0;
}

export function churnInit(ctx: usize, seed: u32, mode: u32): void {
  const s = stateOf(ctx);
  const first = tablePages(ctx);
  const slots = slotCount(ctx, first);
  store<u64>(s + S_RANDOM, <u64>seed * 0x9e3779b97f4a7c15 + 3);
  store<u32>(s + S_ITER, 0);
  store<u32>(s + S_MODE, mode);
  store<u32>(s + S_SLOTS, slots);
  store<u32>(s + S_FIRST, first);
  memory.fill(guestOf(ctx), 0, <usize>slots * 4);
  markWritten(ctx, guestOf(ctx), <usize>slots * 4);
  // Every slot starts free: with hints, say so.
  if (mode == FREE_HINT) bitmapMarkRange(<usize>load<u32>(ctx + CTX_FREE), first, slots * SLOT_PAGES);
}

/** Clears free bits atomically: pages leave the free set before the guest writes them again. */
function clearFree(ctx: usize, first: u32, count: u32): void {
  const bm = <usize>load<u32>(ctx + CTX_FREE);
  for (let p = first; p < first + count; p++) atomic.and<u32>(bm + (<usize>(p >>> 5) << 2), ~(<u32>1 << (p & 31)));
}

export function churnStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const shift = load<u32>(ctx + CTX_PAGE_SHIFT);
  const pageBytes: usize = <usize>1 << shift;
  const mode = load<u32>(s + S_MODE);
  const slots = load<u32>(s + S_SLOTS);
  const firstData = load<u32>(s + S_FIRST);
  const table = guestOf(ctx);
  need(ctx, table, <usize>slots * 4);
  for (let op: u32 = 0; op < OPS_PER_STEP; op++) {
    const slot = nextRandom(s) % slots;
    const entry = table + (<usize>slot << 2);
    const used = load<u32>(entry);
    const firstPage = firstData + slot * SLOT_PAGES;
    const data = guestOf(ctx) + (<usize>firstPage << shift);
    need(ctx, data, <usize>SLOT_PAGES << shift);
    if (used > 0) {
      // Free the buffer.
      if (mode == FREE_ZERO) {
        memory.fill(data, 0, <usize>used << shift);
        markWritten(ctx, data, <usize>used << shift);
      } else if (mode == FREE_HINT) {
        bitmapMarkRange(<usize>load<u32>(ctx + CTX_FREE), firstPage, used);
        // Freed pages must travel again (as nothing): mark them dirty after hinting.
        markWritten(ctx, data, <usize>used << shift);
      }
      store<u32>(entry, 0);
    } else {
      // Allocate 1 to 16 pages and fill them.
      const pages = 1 + (nextRandom(s) % SLOT_PAGES);
      if (mode == FREE_HINT) clearFree(ctx, firstPage, pages);
      const words = (<usize>pages * pageBytes) >> 3;
      const value = (<u64>nextRandom(s) << 32) | <u64>load<u32>(s + S_ITER);
      for (let w: usize = 0; w < words; w++) store<u64>(data + (w << 3), value + w);
      markWritten(ctx, data, <usize>pages << shift);
      store<u32>(entry, pages);
    }
  }
  markWritten(ctx, table, <usize>slots * 4);
  const iter = load<u32>(s + S_ITER) + 1;
  store<u32>(s + S_ITER, iter);
  return iter;
}

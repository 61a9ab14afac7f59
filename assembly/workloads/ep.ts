// Embarrassingly parallel, as NPB EP: Gaussian pairs by the polar method, counted in square
// annuli. Compute-bound: each step writes only its small table of counts and sums.
import { bytesOf, guestOf, stateOf, markWritten, nextRandom, need } from "./common";

// State: u64 PRNG, u32 iteration. Guest: f64 counts[10], f64 sx, f64 sy.
const S_RANDOM: usize = 0;
const S_ITER: usize = 8;
const PAIRS: u32 = 1 << 15;

/** 0 when the guest holds EP's table (its state has no field that could point outside it), else 1. */
export function epCheck(ctx: usize): u32 {
  return bytesOf(ctx) < 96 ? 1 : 0;
}

export function epInit(ctx: usize, seed: u32): void {
  const s = stateOf(ctx);
  store<u64>(s + S_RANDOM, <u64>seed * 0x9e3779b97f4a7c15 + 7);
  store<u32>(s + S_ITER, 0);
  memory.fill(guestOf(ctx), 0, 96);
  markWritten(ctx, guestOf(ctx), 96);
}

export function epStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const table = guestOf(ctx);
  need(ctx, table, 96);
  let sx = load<f64>(table + 80);
  let sy = load<f64>(table + 88);
  for (let i: u32 = 0; i < PAIRS; i++) {
    const x = 2 * (<f64>nextRandom(s) / 4294967296.0) - 1;
    const y = 2 * (<f64>nextRandom(s) / 4294967296.0) - 1;
    const t = x * x + y * y;
    if (t > 1 || t == 0) continue;
    const f = Math.sqrt((-2 * Math.log(t)) / t);
    const gx = x * f;
    const gy = y * f;
    const annulus = <usize>min<f64>(9, Math.floor(max<f64>(Math.abs(gx), Math.abs(gy))));
    store<f64>(table + (annulus << 3), load<f64>(table + (annulus << 3)) + 1);
    sx += gx;
    sy += gy;
  }
  store<f64>(table + 80, sx);
  store<f64>(table + 88, sy);
  markWritten(ctx, table, 96);
  const iter = load<u32>(s + S_ITER) + 1;
  store<u32>(s + S_ITER, iter);
  return iter;
}

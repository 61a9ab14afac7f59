// 3D 7-point Jacobi on two n³ float64 grids (as NPB MG/LU sweep whole grids): each iteration
// writes every point of one grid from the other. One step computes one z-plane.
import { bytesOf, guestOf, stateOf, markWritten, need } from "./common";

// State: u32 iteration, u32 plane, u32 n.
const S_ITER: usize = 0;
const S_PLANE: usize = 4;
const S_N: usize = 8;

export function stencilSize(bytes: u32): u32 {
  // Two grids of n³ doubles.
  return <u32>Math.floor(Math.cbrt(<f64>bytes / 16));
}

/** 0 when a state (one that travelled) fits this guest, else the 1-based number of its first bad field: iteration, plane, n. */
export function stencilCheck(ctx: usize): u32 {
  const s = stateOf(ctx);
  const n = load<u32>(s + S_N);
  if (n != stencilSize(bytesOf(ctx)) || n == 0) return 3;
  if (load<u32>(s + S_PLANE) >= n) return 2;
  return 0;
}

export function stencilInit(ctx: usize, n: u32): void {
  const s = stateOf(ctx);
  store<u32>(s + S_ITER, 0);
  store<u32>(s + S_PLANE, 0);
  store<u32>(s + S_N, n);
  const a = guestOf(ctx);
  const points = <usize>n * n * n;
  for (let i: usize = 0; i < points; i++) {
    const z = <f64>(i / (<usize>n * n));
    const y = <f64>((i / n) % n);
    const x = <f64>(i % n);
    store<f64>(a + (i << 3), 300 + 20 * Math.sin(x * 0.05) * Math.cos(y * 0.07) + z * 0.01);
  }
  markWritten(ctx, a, points << 4);
}

/** Computes one plane of the next grid; returns the iteration count. */
export function stencilStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const n = <usize>load<u32>(s + S_N);
  const iter = load<u32>(s + S_ITER);
  const z = <usize>load<u32>(s + S_PLANE);
  const grid = n * n * n;
  const base = guestOf(ctx);
  const src = base + ((iter & 1) == 0 ? 0 : grid << 3);
  const dst = base + ((iter & 1) == 0 ? grid << 3 : 0);
  const plane = n * n;
  const out = dst + ((z * plane) << 3);
  const below: usize = z == 0 ? 0 : z - 1;
  const above: usize = z + 1 == n ? z : z + 1;
  need(ctx, src + ((below * plane) << 3), ((above - below + 1) * plane) << 3);
  need(ctx, out, plane << 3);
  if (z == 0 || z == n - 1) {
    memory.copy(out, src + ((z * plane) << 3), plane << 3);
  } else {
    for (let y: usize = 0; y < n; y++) {
      for (let x: usize = 0; x < n; x++) {
        const i = z * plane + y * n + x;
        const p = src + (i << 3);
        if (y == 0 || y == n - 1 || x == 0 || x == n - 1) {
          store<f64>(out + ((y * n + x) << 3), load<f64>(p));
          continue;
        }
        const sum = load<f64>(p - 8) + load<f64>(p + 8) + load<f64>(p - (n << 3)) + load<f64>(p + (n << 3)) + load<f64>(p - (plane << 3)) + load<f64>(p + (plane << 3));
        store<f64>(out + ((y * n + x) << 3), load<f64>(p) * 0.4 + sum * 0.1);
      }
    }
  }
  markWritten(ctx, out, plane << 3);
  if (z + 1 == n) {
    store<u32>(s + S_PLANE, 0);
    store<u32>(s + S_ITER, iter + 1);
    return iter + 1;
  }
  store<u32>(s + S_PLANE, <u32>z + 1);
  return iter;
}

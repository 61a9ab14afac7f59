// 2D complex FFT passes over an N×N array (re, im float64 pairs): forward over rows, forward
// over columns (strided), then the inverse of both, and again; the data stays bounded and every
// pass rewrites the whole array. One step transforms one row or one column.
import { bytesOf, guestOf, stateOf, markWritten, need } from "./common";

// State: u32 iteration, u32 pass (0 rows, 1 columns, 2 rows inverse, 3 columns inverse), u32 index, u32 log2 N.
const S_ITER: usize = 0;
const S_PASS: usize = 4;
const S_INDEX: usize = 8;
const S_LOG: usize = 12;

// Layout: the array (16 N² bytes), a twiddle table (N/2 complex), one line of scratch (N complex).
@inline function twiddles(ctx: usize, n: usize): usize { return guestOf(ctx) + ((n * n) << 4); }
@inline function scratch(ctx: usize, n: usize): usize { return twiddles(ctx, n) + (n << 3); }

export function fftSize(bytes: u32): u32 {
  // 16 N² + 24 N bytes, N a power of two.
  let log: u32 = 1;
  while ((<u64>16 << (2 * (log + 1))) + (<u64>24 << (log + 1)) <= <u64>bytes) log++;
  return log;
}

/** 0 when a state fits this guest, else the 1-based number of its first bad field: iteration, pass, index, log2 N. */
export function fftCheck(ctx: usize): u32 {
  const s = stateOf(ctx);
  const log = load<u32>(s + S_LOG);
  if (log != fftSize(bytesOf(ctx))) return 4;
  if (load<u32>(s + S_PASS) > 3) return 2;
  if (load<u32>(s + S_INDEX) >= (<u32>1 << log)) return 3;
  return 0;
}

export function fftInit(ctx: usize, log: u32): void {
  const n = <usize>1 << log;
  const s = stateOf(ctx);
  store<u32>(s + S_ITER, 0);
  store<u32>(s + S_PASS, 0);
  store<u32>(s + S_INDEX, 0);
  store<u32>(s + S_LOG, log);
  const a = guestOf(ctx);
  for (let i: usize = 0; i < n * n; i++) {
    const x = <f64>(i % n);
    const y = <f64>(i / n);
    store<f64>(a + (i << 4), Math.sin(x * 0.1) + Math.cos(y * 0.03));
    store<f64>(a + (i << 4) + 8, 0);
  }
  const t = twiddles(ctx, n);
  for (let k: usize = 0; k < n / 2; k++) {
    const angle = (-2 * Math.PI * <f64>k) / <f64>n;
    store<f64>(t + (k << 4), Math.cos(angle));
    store<f64>(t + (k << 4) + 8, Math.sin(angle));
  }
  markWritten(ctx, a, scratch(ctx, n) - a);
}

/** In-place radix-2 FFT of the n complex values at p; inverse conjugates and scales by 1/n. */
function transform(ctx: usize, p: usize, n: usize, inverse: bool): void {
  for (let i: usize = 1, j: usize = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const a = p + (i << 4);
      const b = p + (j << 4);
      const re = load<f64>(a);
      const im = load<f64>(a, 8);
      store<f64>(a, load<f64>(b));
      store<f64>(a, load<f64>(b, 8), 8);
      store<f64>(b, re);
      store<f64>(b, im, 8);
    }
  }
  const t = twiddles(ctx, n);
  const sign: f64 = inverse ? -1 : 1;
  for (let len: usize = 2; len <= n; len <<= 1) {
    const step = n / len;
    for (let start: usize = 0; start < n; start += len) {
      for (let k: usize = 0; k < len / 2; k++) {
        const w = t + ((k * step) << 4);
        const wr = load<f64>(w);
        const wi = sign * load<f64>(w, 8);
        const a = p + ((start + k) << 4);
        const b = p + ((start + k + len / 2) << 4);
        const br = load<f64>(b) * wr - load<f64>(b, 8) * wi;
        const bi = load<f64>(b) * wi + load<f64>(b, 8) * wr;
        const ar = load<f64>(a);
        const ai = load<f64>(a, 8);
        store<f64>(a, ar + br);
        store<f64>(a, ai + bi, 8);
        store<f64>(b, ar - br);
        store<f64>(b, ai - bi, 8);
      }
    }
  }
  if (inverse) {
    const scale = 1 / <f64>n;
    for (let i: usize = 0; i < n; i++) {
      store<f64>(p + (i << 4), load<f64>(p + (i << 4)) * scale);
      store<f64>(p + (i << 4) + 8, load<f64>(p + (i << 4) + 8) * scale);
    }
  }
}

export function fftStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const log = load<u32>(s + S_LOG);
  const n = <usize>1 << log;
  const pass = load<u32>(s + S_PASS);
  const index = <usize>load<u32>(s + S_INDEX);
  const a = guestOf(ctx);
  const inverse = pass >= 2;
  need(ctx, twiddles(ctx, n), n << 3);
  if ((pass & 1) == 0) {
    const row = a + ((index * n) << 4);
    need(ctx, row, n << 4);
    transform(ctx, row, n, inverse);
    markWritten(ctx, row, n << 4);
  } else {
    // A column: gather into scratch, transform, scatter back; every row's page is written.
    const line = scratch(ctx, n);
    // A column touches a word of every row: the whole array (a cheap check once it is all here).
    need(ctx, a, (n * n) << 4);
    need(ctx, line, n << 4);
    for (let i: usize = 0; i < n; i++) memory.copy(line + (i << 4), a + ((i * n + index) << 4), 16);
    transform(ctx, line, n, inverse);
    // The scratch line is guest memory too: it must be marked like any other write.
    markWritten(ctx, line, n << 4);
    for (let i: usize = 0; i < n; i++) {
      memory.copy(a + ((i * n + index) << 4), line + (i << 4), 16);
      markWritten(ctx, a + ((i * n + index) << 4), 16);
    }
  }
  if (index + 1 < n) {
    store<u32>(s + S_INDEX, <u32>index + 1);
    return load<u32>(s + S_ITER);
  }
  store<u32>(s + S_INDEX, 0);
  if (pass < 3) {
    store<u32>(s + S_PASS, pass + 1);
    return load<u32>(s + S_ITER);
  }
  store<u32>(s + S_PASS, 0);
  const iter = load<u32>(s + S_ITER) + 1;
  store<u32>(s + S_ITER, iter);
  return iter;
}

// Conjugate gradient on a large CSR sparse matrix (the 2D 5-point Laplacian on an m×m grid,
// stored explicitly: a read-only bulk), with small hot vectors x, r, p, q. Each step handles a
// chunk of rows of one phase; partial sums live in the state struct and travel with it.
import { bytesOf, guestOf, stateOf, markWritten, need } from "./common";

// State: u32 iteration, u32 phase, u32 cursor (row), u32 rows, f64 rr, pq, rrNew, alpha, beta.
const S_ITER: usize = 0;
const S_PHASE: usize = 4;
const S_CURSOR: usize = 8;
const S_ROWS: usize = 12;
const S_RR: usize = 16;
const S_PQ: usize = 24;
const S_RR_NEW: usize = 32;
const S_ALPHA: usize = 40;
const S_BETA: usize = 48;
const CHUNK_ROWS: u32 = 16384;
const NNZ_PER_ROW: u32 = 5;

// Layout in the guest: rowptr u32[rows + 1], cols u32[5 rows], vals f64[5 rows], x, r, p, q f64[rows].
@inline function rowptr(ctx: usize): usize { return guestOf(ctx); }
@inline function cols(ctx: usize, rows: u32): usize { return rowptr(ctx) + ((((<usize>rows + 1) << 2) + 7) & ~7); }
@inline function vals(ctx: usize, rows: u32): usize { return cols(ctx, rows) + <usize>rows * NNZ_PER_ROW * 4; }
@inline function vector(ctx: usize, rows: u32, k: u32): usize { return vals(ctx, rows) + <usize>rows * NNZ_PER_ROW * 8 + <usize>k * rows * 8; }

/** Grid side m, so that the matrix and vectors fit in `bytes` (about 96 bytes a row). */
export function cgSize(bytes: u32): u32 {
  return <u32>Math.floor(Math.sqrt(<f64>bytes / 100));
}

/** 0 when a state fits this guest, else the 1-based number of its first bad field: iteration, phase, cursor, rows. */
export function cgCheck(ctx: usize): u32 {
  const s = stateOf(ctx);
  const m = cgSize(bytesOf(ctx));
  const rows = load<u32>(s + S_ROWS);
  if (rows != m * m || rows == 0) return 4;
  if (load<u32>(s + S_PHASE) > 2) return 2;
  if (load<u32>(s + S_CURSOR) >= rows) return 3;
  return 0;
}

export function cgInit(ctx: usize, m: u32): void {
  const rows = m * m;
  const s = stateOf(ctx);
  store<u32>(s + S_ITER, 0);
  store<u32>(s + S_PHASE, 0);
  store<u32>(s + S_CURSOR, 0);
  store<u32>(s + S_ROWS, rows);
  const rp = rowptr(ctx);
  const c = cols(ctx, rows);
  const v = vals(ctx, rows);
  let k: u32 = 0;
  for (let i: u32 = 0; i < rows; i++) {
    store<u32>(rp + (<usize>i << 2), k);
    const y = i / m;
    const x = i % m;
    // Neighbours in column order (up, left, self, right, down); a missing one (at the border)
    // becomes an explicit zero entry on the diagonal.
    for (let j: u32 = 0; j < 5; j++) {
      const inside = j == 2 || (j == 0 && y > 0) || (j == 1 && x > 0) || (j == 3 && x + 1 < m) || (j == 4 && y + 1 < m);
      const col = j == 0 ? i - m : j == 1 ? i - 1 : j == 2 ? i : j == 3 ? i + 1 : i + m;
      store<u32>(c + (<usize>k << 2), inside ? col : i);
      store<f64>(v + (<usize>k << 3), j == 2 ? 4.0 : inside ? -1.0 : 0.0);
      k++;
    }
  }
  store<u32>(rp + (<usize>rows << 2), k);
  resetVectors(ctx, rows);
  markWritten(ctx, rp, vector(ctx, rows, 4) - rp);
}

/** x = 0, r = p = b (all ones): the start of a solve. */
function resetVectors(ctx: usize, rows: u32): void {
  const x = vector(ctx, rows, 0);
  const r = vector(ctx, rows, 1);
  const p = vector(ctx, rows, 2);
  for (let i: usize = 0; i < rows; i++) {
    store<f64>(x + (i << 3), 0);
    store<f64>(r + (i << 3), 1);
    store<f64>(p + (i << 3), 1);
  }
  store<f64>(stateOf(ctx) + S_RR, <f64>rows);
  store<f64>(stateOf(ctx) + S_PQ, 0);
  markWritten(ctx, x, <usize>rows * 24);
}

export function cgStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const rows = load<u32>(s + S_ROWS);
  const phase = load<u32>(s + S_PHASE);
  const start = load<u32>(s + S_CURSOR);
  const end = min(rows, start + CHUNK_ROWS);
  const x = vector(ctx, rows, 0);
  const r = vector(ctx, rows, 1);
  const p = vector(ctx, rows, 2);
  const q = vector(ctx, rows, 3);
  const from = <usize>start << 3;
  const length = <usize>(end - start) << 3;
  if (phase == 0) {
    // q = A p, and p·q.
    const rp = rowptr(ctx);
    const c = cols(ctx, rows);
    const v = vals(ctx, rows);
    // Rows [start, end) read their matrix entries and p within one grid line (m rows) of them.
    const m = <u32>Math.sqrt(<f64>rows);
    const near = start > m ? start - m : 0;
    const far = min(rows, end + m);
    need(ctx, rp + (<usize>start << 2), <usize>(end - start + 1) << 2);
    need(ctx, c + (<usize>start * NNZ_PER_ROW << 2), <usize>(end - start) * NNZ_PER_ROW << 2);
    need(ctx, v + (<usize>start * NNZ_PER_ROW << 3), <usize>(end - start) * NNZ_PER_ROW << 3);
    need(ctx, p + (<usize>near << 3), <usize>(far - near) << 3);
    need(ctx, q + from, length);
    let pq = load<f64>(s + S_PQ);
    for (let i = start; i < end; i++) {
      let sum: f64 = 0;
      for (let k = load<u32>(rp + (<usize>i << 2)), e = load<u32>(rp + (<usize>(i + 1) << 2)); k < e; k++) {
        sum += load<f64>(v + (<usize>k << 3)) * load<f64>(p + (<usize>load<u32>(c + (<usize>k << 2)) << 3));
      }
      store<f64>(q + (<usize>i << 3), sum);
      pq += load<f64>(p + (<usize>i << 3)) * sum;
    }
    store<f64>(s + S_PQ, pq);
    markWritten(ctx, q + from, length);
  } else if (phase == 1) {
    // x += αp, r -= αq, and r·r.
    const alpha = load<f64>(s + S_ALPHA);
    for (let k: u32 = 0; k < 4; k++) need(ctx, vector(ctx, rows, k) + from, length);
    let rr = load<f64>(s + S_RR_NEW);
    for (let i = start; i < end; i++) {
      const at = <usize>i << 3;
      store<f64>(x + at, load<f64>(x + at) + alpha * load<f64>(p + at));
      const ri = load<f64>(r + at) - alpha * load<f64>(q + at);
      store<f64>(r + at, ri);
      rr += ri * ri;
    }
    store<f64>(s + S_RR_NEW, rr);
    markWritten(ctx, x + from, length);
    markWritten(ctx, r + from, length);
  } else {
    // p = r + βp.
    const beta = load<f64>(s + S_BETA);
    need(ctx, r + from, length);
    need(ctx, p + from, length);
    for (let i = start; i < end; i++) {
      const at = <usize>i << 3;
      store<f64>(p + at, load<f64>(r + at) + beta * load<f64>(p + at));
    }
    markWritten(ctx, p + from, length);
  }
  store<u32>(s + S_CURSOR, end);
  if (end < rows) return load<u32>(s + S_ITER);
  store<u32>(s + S_CURSOR, 0);
  if (phase == 0) {
    store<f64>(s + S_ALPHA, load<f64>(s + S_RR) / load<f64>(s + S_PQ));
    store<f64>(s + S_RR_NEW, 0);
    store<u32>(s + S_PHASE, 1);
    return load<u32>(s + S_ITER);
  }
  if (phase == 1) {
    store<f64>(s + S_BETA, load<f64>(s + S_RR_NEW) / load<f64>(s + S_RR));
    store<f64>(s + S_RR, load<f64>(s + S_RR_NEW));
    store<u32>(s + S_PHASE, 2);
    return load<u32>(s + S_ITER);
  }
  const iter = load<u32>(s + S_ITER) + 1;
  store<u32>(s + S_ITER, iter);
  store<u32>(s + S_PHASE, 0);
  store<f64>(s + S_PQ, 0);
  // Converged: start the solve again, so the kernel keeps working for as long as it is asked.
  if (load<f64>(s + S_RR) < 1e-20) {
    need(ctx, x, <usize>rows * 24);
    resetVectors(ctx, rows);
  }
  return iter;
}

// Deterministic page contents of the kinds HPC guests hold, for tests, benchmarks and demos.
// Every page is a pure function of (class, page index, seed), so two processes can generate
// the same guest without sending it.

export const PAGE_CLASSES = ["float64-field", "int32-indices", "text", "random", "mostly-zero"] as const;
export type PageClass = (typeof PAGE_CLASSES)[number] | "zero";

/** SplitMix64-style mixer on 32-bit halves: a fast, well-spread PRNG seed per page. */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** xorshift32 over a closure-free state array, so filling a page allocates nothing. */
function next(state: Uint32Array): number {
  let x = state[0];
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  state[0] = x;
  return x >>> 0;
}

const WORDS = (
  "the of and to in is for on that with as by at from this be are was it an or which " +
  "matrix vector solver grid stencil pressure velocity boundary iteration residual norm " +
  "converged mesh node rank process barrier checkpoint memory page migration kernel " +
  "temperature gradient flux cell face element partition halo exchange timestep energy"
).split(" ");
const WORD_BYTES = WORDS.map((w) => Buffer.from(w + " ", "latin1"));

const state = new Uint32Array(1);

/** Fills `page` (a view of one page) with content of the given class. */
export function fillPage(page: Uint8Array, kind: PageClass, index: number, seed = 1): void {
  state[0] = mix(index, seed) | 1;
  const size = page.byteLength;
  switch (kind) {
    case "zero":
      page.fill(0);
      return;
    case "float64-field": {
      // A smooth 3D field: neighbours differ in the low mantissa bits, as in a stencil grid.
      const f = new Float64Array(page.buffer, page.byteOffset, size / 8);
      const phase = (next(state) % 1000) / 100;
      for (let i = 0; i < f.length; i++) f[i] = 300 + 20 * Math.sin(phase + i * 0.003) + i * 1e-4;
      return;
    }
    case "int32-indices": {
      // CSR column indices of a mesh matrix with two unknowns per node: each node's list of 16
      // increasing neighbour columns appears once per unknown, as in FEM matrices.
      const v = new Int32Array(page.buffer, page.byteOffset, size / 4);
      let col = index * 97;
      for (let i = 0; i < v.length; i += 32) {
        let c = col;
        for (let k = 0; k < 16 && i + k < v.length; k++) {
          c += 1 + (next(state) & 15);
          v[i + k] = c;
        }
        for (let k = 0; k < 16 && i + 16 + k < v.length; k++) v[i + 16 + k] = v[i + k];
        col += 1 + (next(state) & 7);
      }
      return;
    }
    case "text": {
      let at = 0;
      while (at < size) {
        const word = WORD_BYTES[next(state) % WORD_BYTES.length];
        const n = Math.min(word.length, size - at);
        for (let i = 0; i < n; i++) page[at + i] = word[i];
        at += n;
      }
      return;
    }
    case "random": {
      const v = new Uint32Array(page.buffer, page.byteOffset, size / 4);
      for (let i = 0; i < v.length; i++) v[i] = next(state);
      return;
    }
    case "mostly-zero": {
      page.fill(0);
      const v = new Uint32Array(page.buffer, page.byteOffset, size / 4);
      for (let k = 0; k < 8; k++) v[next(state) % v.length] = next(state) | 1;
      return;
    }
  }
}

/** The quarter of a mixed guest that LZ4 shrinks, and the quarter it cannot (smooth float64 fields do not shrink under LZ4). */
const COMPRESSIBLE: PageClass[] = ["int32-indices", "text", "mostly-zero", "int32-indices"];
const INCOMPRESSIBLE: PageClass[] = ["random", "random", "random", "float64-field"];

/**
 * The class of page `index` in a mixed guest: half zero, a quarter compressible, a quarter
 * incompressible, in runs of 16 pages as allocations are.
 */
export function mixedClass(index: number, seed = 1): PageClass {
  const r = mix(index >>> 4, seed ^ 0x5bd1e995) % 16;
  if (r < 8) return "zero";
  return r < 12 ? COMPRESSIBLE[r - 8] : INCOMPRESSIBLE[r - 12];
}

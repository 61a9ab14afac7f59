// The workload kernels (assembly/workloads/) as the TypeScript side sees them.
import type { Region } from "../memory/region.js";
import { PagewireError } from "../errors.js";

export interface WorkloadExports {
  stencilSize(bytes: number): number;
  stencilInit(ctx: number, n: number): void;
  stencilStep(ctx: number): number;
  stencilCheck(ctx: number): number;
  cgSize(bytes: number): number;
  cgInit(ctx: number, m: number): void;
  cgStep(ctx: number): number;
  cgCheck(ctx: number): number;
  fftSize(bytes: number): number;
  fftInit(ctx: number, log: number): void;
  fftStep(ctx: number): number;
  fftCheck(ctx: number): number;
  sortSize(bytes: number): number;
  sortInit(ctx: number, keys: number, seed: number): void;
  sortStep(ctx: number): number;
  sortCheck(ctx: number): number;
  epInit(ctx: number, seed: number): void;
  epStep(ctx: number): number;
  epCheck(ctx: number): number;
  churnInit(ctx: number, seed: number, mode: number): void;
  churnStep(ctx: number): number;
  churnCheck(ctx: number): number;
}

/** What the churn heap does with freed memory (Gad et al. 2016). */
export const FREE_MODES = ["dirty", "zero", "hint"] as const;
export type FreeMode = (typeof FREE_MODES)[number];

export interface Kernel {
  /** One line for help texts and reports. */
  describe: string;
  init(w: WorkloadExports, ctx: number, bytes: number, seed: number, freeMode: FreeMode): void;
  /** One short unit of work; returns the iterations completed so far. */
  step(w: WorkloadExports, ctx: number): number;
  /** 0 when the state in the context fits the guest, else the 1-based number of its first bad field. */
  check(w: WorkloadExports, ctx: number): number;
  /** The state's fields, in order, as check() numbers them. */
  stateFields: readonly string[];
}

export const KERNELS: Record<string, Kernel> = {
  stencil: {
    describe: "3D 7-point Jacobi on two float64 grids (whole grids rewritten every sweep, like NPB MG)",
    init: (w, ctx, bytes) => w.stencilInit(ctx, w.stencilSize(bytes)),
    step: (w, ctx) => w.stencilStep(ctx),
    check: (w, ctx) => w.stencilCheck(ctx),
    stateFields: ["iteration", "plane", "n"],
  },
  cg: {
    describe: "conjugate gradient on a large CSR matrix (read-only bulk, small hot vectors)",
    init: (w, ctx, bytes) => w.cgInit(ctx, w.cgSize(bytes)),
    step: (w, ctx) => w.cgStep(ctx),
    check: (w, ctx) => w.cgCheck(ctx),
    stateFields: ["iteration", "phase", "cursor", "rows"],
  },
  fft: {
    describe: "2D complex FFT passes over rows and strided columns, forward then inverse",
    init: (w, ctx, bytes) => w.fftInit(ctx, w.fftSize(bytes)),
    step: (w, ctx) => w.fftStep(ctx),
    check: (w, ctx) => w.fftCheck(ctx),
    stateFields: ["iteration", "pass", "index", "log2 N"],
  },
  sort: {
    describe: "integer bucket sort with scattered writes (like NPB IS)",
    init: (w, ctx, bytes, seed) => w.sortInit(ctx, w.sortSize(bytes), seed),
    step: (w, ctx) => w.sortStep(ctx),
    check: (w, ctx) => w.sortCheck(ctx),
    stateFields: ["PRNG", "iteration", "phase", "cursor", "keys"],
  },
  ep: {
    describe: "compute-bound Gaussian pairs with almost no writes (like NPB EP)",
    init: (w, ctx, _bytes, seed) => w.epInit(ctx, seed),
    step: (w, ctx) => w.epStep(ctx),
    check: (w, ctx) => w.epCheck(ctx),
    stateFields: ["guest size"],
  },
  churn: {
    describe: "a heap allocating and freeing buffers; freed memory left dirty, zeroed, or hinted free",
    init: (w, ctx, _bytes, seed, freeMode) => w.churnInit(ctx, seed, FREE_MODES.indexOf(freeMode)),
    step: (w, ctx) => w.churnStep(ctx),
    check: (w, ctx) => w.churnCheck(ctx),
    stateFields: ["PRNG", "iteration", "mode", "slots", "first data page"],
  },
};

export function kernelByName(name: string): Kernel {
  const kernel = KERNELS[name];
  if (!kernel) throw new PagewireError("EOPTION", `unknown workload "${name}": choose one of ${Object.keys(KERNELS).join(", ")}`);
  return kernel;
}

/** Writes the kernels' context for a region (see assembly/workloads/common.ts) and returns its address. */
export function writeContext(region: Region): number {
  const { workloadContext, guest, pageCount, pageSize, pageShift, dirtyBitmap, freeBitmap, workloadState, presence } = region.layout;
  const words = new Uint32Array(region.memory.buffer, workloadContext, 7);
  words.set([guest, Math.min(0xffffffff, pageCount * pageSize), pageShift, dirtyBitmap, freeBitmap, workloadState, presence]);
  return workloadContext;
}

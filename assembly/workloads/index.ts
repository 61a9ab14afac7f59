// The workload kernels: deterministic HPC-style guest programs that run on guest memory in
// worker threads (src/workload/). A separate module from the core, on the same shared memory.
export { stencilSize, stencilInit, stencilStep } from "./stencil";
export { cgSize, cgInit, cgStep } from "./cg";
export { fftSize, fftInit, fftStep } from "./fft";
export { sortSize, sortInit, sortStep } from "./sort";
export { epInit, epStep } from "./ep";
export { churnInit, churnStep } from "./churn";

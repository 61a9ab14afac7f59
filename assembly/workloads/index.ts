// The workload kernels: deterministic HPC-style guest programs that run on guest memory in
// worker threads (src/workload/). A separate module from the core, on the same shared memory.
export { stencilSize, stencilCheck, stencilInit, stencilStep } from "./stencil";
export { cgSize, cgCheck, cgInit, cgStep } from "./cg";
export { fftSize, fftCheck, fftInit, fftStep } from "./fft";
export { sortSize, sortCheck, sortInit, sortStep } from "./sort";
export { epCheck, epInit, epStep } from "./ep";
export { churnCheck, churnInit, churnStep } from "./churn";

// Worker: runs one workload kernel on a region, a step at a time, parking at safe points.
import { workerData, parentPort } from "node:worker_threads";
import { Region } from "../memory/region.js";
import { instantiate } from "../runtime/module.js";
import { safePoint, throttleSleep, progressed } from "./pause-control.js";
import { kernelByName, writeContext, type WorkloadExports } from "./kernels.js";
import type { WorkerSetup } from "./workload.js";
import { Counter } from "./workload.js";

const setup = workerData as WorkerSetup;
const region = Region.attach(setup.memory, setup.layout);
const wasm = instantiate<WorkloadExports>("workloads", setup.memory);
const kernel = kernelByName(setup.kernel);
const control = new Int32Array(setup.control);
const counters = new Float64Array(setup.counters);
const ctx = writeContext(region);
if (setup.init) kernel.init(wasm, ctx, region.pageCount * region.pageSize, setup.init.seed, setup.init.freeMode);
counters[Counter.iterations] = setup.startIterations;
parentPort!.postMessage("ready");
while (safePoint(control)) {
  if (setup.stopAt > 0 && counters[Counter.iterations] >= setup.stopAt) break;
  const began = performance.now();
  const iterations = kernel.step(wasm, ctx);
  throttleSleep(control, performance.now() - began);
  const now = Date.now();
  if (counters[Counter.firstStepAt] === 0) counters[Counter.firstStepAt] = now;
  counters[Counter.lastStepAt] = now;
  counters[Counter.steps]++;
  counters[Counter.iterations] = iterations;
  progressed(control);
}
parentPort!.postMessage("done");

// Worker: hashes the digest chunks, or sums the page hashes, it is given (see digest.ts).
import { parentPort } from "node:worker_threads";
import { planLayout } from "../memory/layout.js";
import { instantiateCore } from "./module.js";
import type { CoreExports } from "./abi.js";
import { hashChunks, sumPages, type DigestJob } from "./digest.js";

const instances = new WeakMap<WebAssembly.Memory, CoreExports>();

parentPort!.on("message", (job: DigestJob) => {
  let wasm = instances.get(job.memory);
  if (!wasm) {
    wasm = instantiateCore(job.memory);
    instances.set(job.memory, wasm);
  }
  const layout = planLayout(job.layout);
  if (job.kind === "pages") {
    parentPort!.postMessage(sumPages(wasm, layout, job.first, job.end, job.skip));
  } else {
    hashChunks(wasm, layout, job.first, job.end);
    parentPort!.postMessage(0n);
  }
});

// Worker: hashes the digest chunks it is given (see digest.ts).
import { parentPort } from "node:worker_threads";
import { planLayout } from "../memory/layout.js";
import { instantiateCore } from "./module.js";
import type { CoreExports } from "./abi.js";
import { hashChunks, type DigestJob } from "./digest.js";

const instances = new WeakMap<WebAssembly.Memory, CoreExports>();

parentPort!.on("message", (job: DigestJob) => {
  let wasm = instances.get(job.memory);
  if (!wasm) {
    wasm = instantiateCore(job.memory);
    instances.set(job.memory, wasm);
  }
  hashChunks(wasm, planLayout(job.layout), job.first, job.end);
  parentPort!.postMessage("done");
});

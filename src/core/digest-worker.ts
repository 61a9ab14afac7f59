// Worker: hashes the digest chunks, or sums the page hashes, it is given (see digest.ts), and
// answers with the job's id.
import { parentPort } from "node:worker_threads";
import { Region } from "../memory/region.js";
import { Hasher } from "./hasher.js";
import type { DigestAnswer, DigestJob } from "./digest.js";

const hashers = new WeakMap<WebAssembly.Memory, Hasher>();

parentPort!.on("message", (job: DigestJob) => {
  let answer: DigestAnswer;
  try {
    let hasher = hashers.get(job.memory);
    if (!hasher) {
      hasher = new Hasher(Region.attach(job.memory, job.layout));
      hashers.set(job.memory, hasher);
    }
    if (job.kind === "pages") {
      answer = { id: job.id, sum: hasher.sumPages(job.first, job.end, job.skip) };
    } else {
      hasher.hashChunks(job.first, job.end);
      answer = { id: job.id, sum: 0n };
    }
  } catch (error) {
    answer = { id: job.id, error: error instanceof Error ? error.message : String(error) };
  }
  parentPort!.postMessage(answer);
});

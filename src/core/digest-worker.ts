// Worker: brings the digest chunks it is given up to date, or sums the page hashes (see digest.ts), and
// answers with the job's id.
import { parentPort } from "node:worker_threads";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Region } from "../memory/region.js";
import { Hasher } from "./hasher.js";
import type { DigestAnswer, DigestJob } from "./digest.js";

// Each job brings a handle on a guest's shared memory. This thread allocates almost nothing, so
// it would almost never collect garbage, and the handles of finished migrations would keep their
// memory alive (a listener's RSS grew by one guest per migration). A collection once the jobs
// at hand are answered lets it go; this small heap takes well under a millisecond.
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;
let collecting: NodeJS.Timeout | undefined;

function run(job: DigestJob): DigestAnswer {
  try {
    const region = Region.attach(job.memory, job.layout);
    if (job.kind === "prefault") {
      region.prefault(job.first, job.end);
      return { id: job.id, sum: 0n };
    }
    const hasher = new Hasher(region);
    if (job.kind === "pages") return { id: job.id, sum: hasher.sumPages(job.first, job.end, job.skip) };
    const read = job.kind === "list" ? hasher.hashChunkList(job.chunks!, job.zeroMap) : hasher.hashChunks(job.first, job.end);
    return { id: job.id, sum: BigInt(read) };
  } catch (error) {
    return { id: job.id, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Idle this long after a job, the thread collects: a migration's background hashes come every few
 * ms, and a collection after each cost more than the hashing. Under a steady stream of
 * migrations it is never idle that long, so it also collects every COLLECT_EVERY jobs.
 */
const COLLECT_AFTER_MS = 200;
const COLLECT_EVERY = 100;
let jobs = 0;

function collectNow(): void {
  if (collecting) clearTimeout(collecting);
  collecting = undefined;
  jobs = 0;
  collect();
}

parentPort!.on("message", (job: DigestJob) => {
  const start = performance.now();
  const answer = run(job);
  answer.ms = performance.now() - start;
  parentPort!.postMessage(answer);
  if (++jobs >= COLLECT_EVERY) return collectNow();
  if (collecting) clearTimeout(collecting);
  collecting = setTimeout(collectNow, COLLECT_AFTER_MS);
  collecting.unref();
});

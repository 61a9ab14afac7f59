// Worker: dirties pages of a region at a set rate, as a running guest would: it changes a word of
// the page, then marks the page dirty; random pages, or a hot set swept in order (one word per
// page, the sweep's number). Parks at safe points between writes.
import { workerData, parentPort } from "node:worker_threads";
import { Region } from "../memory/region.js";
import { safePoint, progressed } from "./pause-control.js";
import type { WriterSetup } from "./dirty-writer.js";

const setup = workerData as WriterSetup;
const region = Region.attach(setup.memory, setup.layout);
const control = new Int32Array(setup.control);
const counters = new Float64Array(setup.counters);
const wordsPerPage = region.pageSize / 8;
const guest = new BigUint64Array(setup.memory.buffer, region.layout.guest, region.pageCount * wordsPerPage);
const tick = new Int32Array(new SharedArrayBuffer(4));
let state = setup.seed | 1;
let written = counters[0];
const start = performance.now();
const base = written;
const sweep = setup.sweep;

function random(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}

while (safePoint(control)) {
  const due = Math.min(4096, Math.floor(((performance.now() - start) * setup.pagesPerSecond) / 1000) - (written - base));
  if (due <= 0) {
    Atomics.wait(tick, 0, 0, 1);
    continue;
  }
  if (sweep) {
    for (let i = 0; i < due; i++) {
      const page = sweep.first + (written % sweep.count);
      guest[page * wordsPerPage] = BigInt(Math.floor(++written / sweep.count));
      region.markDirty(page);
    }
  } else {
    for (let i = 0; i < due; i++) {
      const page = random() % region.pageCount;
      guest[page * wordsPerPage + (random() % wordsPerPage)] = BigInt(++written);
      region.markDirty(page);
    }
  }
  counters[0] = written;
  progressed(control);
}
counters[0] = written;
parentPort?.postMessage("stopped");

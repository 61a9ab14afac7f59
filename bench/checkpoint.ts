// `npm run bench -- checkpoint`: live checkpoints and restores of a 1 GiB guest (the mixed image,
// static and with a writer) and of each kernel while it runs, against the disk's own speed
// measured in the same run (dd with conv=fdatasync to write; dd from a cold page cache to read).
// Restores start from a cold page cache too, where the kernel lets this process drop it. With QEMU
// 9.0 or later installed, QEMU's mapped-ram saves and loads the same image in the same run.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Checkpoint, type CheckpointStats } from "../src/checkpoint/checkpoint.js";
import { restore } from "../src/checkpoint/restore.js";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { precopy } from "../src/policy/precopy.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import type { Policy } from "../src/policy/policy.js";
import type { SourceHooks } from "../src/migration/source-options.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { Workload } from "../src/workload/workload.js";
import { KERNELS } from "../src/workload/kernels.js";
import { type Row, progress } from "./report.js";
import { configureMigration, qemuVersion, startQemu, timedMigration } from "./qemu.js";

export interface CheckpointBenchOptions {
  bytes: number;
  /** Guest size for the kernels, which take long to initialise at 1 GiB. */
  kernelBytes: number;
  repeats: number;
}

export const checkpointDefaults: CheckpointBenchOptions = { bytes: 2 ** 30, kernelBytes: 256 << 20, repeats: 3 };
export const checkpointQuick: CheckpointBenchOptions = { bytes: 64 << 20, kernelBytes: 32 << 20, repeats: 1 };

const mb = (bytes: number) => bytes / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Drops the page cache, so a read comes from the disk; false where this process may not. */
function dropCaches(): boolean {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

function timed(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

/** The disk's speed with dd: writing `bytes` of random data with fdatasync, and reading them back cold. */
function diskSpeed(dir: string, bytes: number): { write: number; read: number } {
  const source = join(dir, "dd-source");
  const target = join(dir, "dd-target");
  const count = String(Math.ceil(bytes / (16 << 20)));
  execFileSync("dd", ["if=/dev/urandom", `of=${source}`, "bs=16M", `count=${count}`], { stdio: "ignore" });
  const write = timed(() => execFileSync("dd", [`if=${source}`, `of=${target}`, "bs=16M", "conv=fdatasync"], { stdio: "ignore" }));
  dropCaches();
  const read = timed(() => execFileSync("dd", [`if=${target}`, "of=/dev/null", "bs=16M"], { stdio: "ignore" }));
  rmSync(source);
  rmSync(target);
  return { write: mb(bytes) / (write / 1000), read: mb(bytes) / (read / 1000) };
}

interface Measured {
  stats: CheckpointStats;
  restoreMs: number;
}

/**
 * Checkpoints `regions` with `policy` and `hooks`, then restores the file cold and checks it, into
 * regions of the same shape pre-faulted first (as a VM's memory with -mem-prealloc: first touches
 * of fresh memory cost 0.5–3 s per GiB here and are not the restore's).
 */
async function checkpointAndRestore(path: string, regions: Region[], policy: Policy, hooks?: SourceHooks): Promise<Measured> {
  const { stats } = await new Checkpoint(regions, { path, policy, hooks }).write();
  const into = regions.map((r) => Region.create({ pageSize: r.pageSize, pageCount: r.pageCount }));
  for (const r of into) r.prefault();
  dropCaches();
  const start = performance.now();
  await restore([path], into);
  const restoreMs = performance.now() - start;
  rmSync(path);
  return { stats, restoreMs };
}

/**
 * QEMU saving the same image with `migrate file:` and mapped-ram (pages at fixed offsets, like
 * ours), one stream or multifd 2, and loading it into a destination started with -incoming defer
 * and -mem-prealloc, from a cold page cache. The guest: -machine none (no vCPU: static memory), the
 * image loaded at address 0.
 */
async function qemuMappedRam(dir: string, image: Uint8Array, multifd: boolean): Promise<{ save: number; load: number }> {
  const raw = join(dir, "image.raw");
  const file = join(dir, "qemu.ckpt");
  writeFileSync(raw, image);
  rmSync(file, { force: true });
  const channels = multifd ? 2 : 1;
  const source = await startQemu(["-device", `loader,file=${raw},addr=0,force-raw=on`], join(dir, "qemu-source.sock"));
  let save: number;
  try {
    await configureMigration(source.qmp, ["mapped-ram"], channels);
    save = (await timedMigration(source.qmp, "migrate", `file:${file}`)).ms;
  } finally {
    source.qmp.close();
    source.process.kill();
  }
  dropCaches();
  const destination = await startQemu(["-incoming", "defer", "-mem-prealloc"], join(dir, "qemu-destination.sock"));
  try {
    await configureMigration(destination.qmp, ["mapped-ram"], channels);
    return { save, load: (await timedMigration(destination.qmp, "migrate-incoming", `file:${file}`)).ms };
  } finally {
    destination.qmp.close();
    destination.process.kill();
    rmSync(file, { force: true });
    rmSync(raw, { force: true });
  }
}

export async function runCheckpoint(o: CheckpointBenchOptions): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "pagewire-bench-checkpoint-"));
  const rows: Row[] = [];
  const gib = (o.bytes / 2 ** 30).toFixed(2);
  try {
    progress(`the disk: dd, ${gib} GiB`);
    const disk = diskSpeed(dir, o.bytes);
    const cold = dropCaches();
    const pages = o.bytes / 4096;
    const mixed = Region.create({ pageCount: pages });
    for (let p = 0; p < pages; p++) {
      const kind = mixedClass(p);
      if (kind !== "zero") fillPage(mixed.pages(p), kind, p);
    }
    progress(`mixed ${gib} GiB, static, stop-and-copy into the file, ${o.repeats} runs`);
    const runs: Measured[] = [];
    for (let i = 0; i < o.repeats; i++) runs.push(await checkpointAndRestore(join(dir, "mixed.ckpt"), [mixed], stopCopy()));
    const save = runs.map((r) => mb(r.stats["bytes-written"]) / (r.stats["total-time"] / 1000));
    const load = runs.map((r) => mb(o.bytes) / (r.restoreMs / 1000));
    const one = runs[0].stats;
    rows.push({
      suite: "checkpoint", id: "checkpoint.save-mixed", params: { bytes: o.bytes, guest: "mixed", live: false }, samples: save,
      name: `checkpoint ${gib} GiB mixed (static): bytes written per second`, value: median(save), unit: "MB/s",
      baseline: { name: "dd conv=fdatasync", value: disk.write }, target: { min: 0.8, of: "ratio" },
      note: `median total ${median(runs.map((r) => r.stats["total-time"])).toFixed(0)} ms for ${mb(one["bytes-written"]).toFixed(0)} MB written (zero pages are holes: ${mb(one["disk-bytes"]).toFixed(0)} MB on disk of a ${mb(one["file-bytes"]).toFixed(0)} MB file); the guest's ${mb(o.bytes).toFixed(0)} MB saved at ${median(runs.map((r) => mb(o.bytes) / (r.stats["total-time"] / 1000))).toFixed(0)} MB/s`,
    });
    rows.push({
      suite: "checkpoint", id: "checkpoint.restore-mixed", params: { bytes: o.bytes, guest: "mixed", cold }, samples: load,
      name: `restore ${gib} GiB mixed, digest checked${cold ? ", cold cache" : ", page cache warm"}: guest bytes per second`, value: median(load), unit: "MB/s",
      baseline: { name: `dd read${cold ? " (cold cache)" : ""}`, value: disk.read }, target: { min: 0.8, of: "ratio" },
      note: `median ${median(runs.map((r) => r.restoreMs)).toFixed(0)} ms; holes read as zeros without the disk`,
    });

    const version = qemuVersion();
    if (o.bytes !== 2 ** 30) progress("the QEMU comparison runs at 1 GiB only (its guest is -m 1024)");
    else if (!version || version.major < 9) progress(`${version ? `QEMU ${version.major}.${version.minor} has no mapped-ram (9.0 and later)` : "no qemu-system-x86_64"}: install QEMU 10.0 from Debian's bookworm-backports to compare`);
    else {
      for (const multifd of [false, true]) {
        progress(`QEMU ${version.major}.${version.minor} mapped-ram${multifd ? " with multifd 2" : ""}, the same image, ${o.repeats} runs`);
        const q: Array<{ save: number; load: number }> = [];
        for (let i = 0; i < o.repeats; i++) q.push(await qemuMappedRam(dir, mixed.pages(0, pages), multifd));
        const label = `QEMU ${version.major}.${version.minor} mapped-ram${multifd ? ", multifd 2" : ""}`;
        const ours = (ms: number[]) => median(ms);
        rows.push({
          suite: "checkpoint", id: "checkpoint.save-mixed", params: { bytes: o.bytes, guest: "mixed", baseline: multifd ? "qemu-mapped-ram-multifd" : "qemu-mapped-ram" },
          name: `checkpoint ${gib} GiB mixed (static) vs ${label}: time`, value: ours(runs.map((r) => r.stats["total-time"])), unit: "ms",
          baseline: { name: label, value: median(q.map((x) => x.save)) }, target: { max: 1, of: "ratio" }, samples: runs.map((r) => r.stats["total-time"]),
        });
        rows.push({
          suite: "checkpoint", id: "checkpoint.restore-mixed", params: { bytes: o.bytes, guest: "mixed", baseline: multifd ? "qemu-mapped-ram-multifd" : "qemu-mapped-ram" },
          name: `restore ${gib} GiB mixed, cold, vs ${label} loading it (-mem-prealloc): time`, value: ours(runs.map((r) => r.restoreMs)), unit: "ms",
          baseline: { name: label, value: median(q.map((x) => x.load)) }, target: { max: 1, of: "ratio" }, samples: runs.map((r) => r.restoreMs),
        });
      }
    }

    progress(`mixed ${gib} GiB with a writer at 25,000 pages/s, pre-copy into the file`);
    const writer = new DirtyWriter(mixed, 25_000, 3);
    await writer.until(1000);
    const live = await checkpointAndRestore(join(dir, "live.ckpt"), [mixed], precopy(), { pause: () => writer.pause(), resume: () => writer.resume() });
    await writer.stop();
    rows.push({
      suite: "checkpoint", id: "checkpoint.live-mixed.total-time", params: { bytes: o.bytes, guest: "mixed", dirtyRate: 25_000 },
      name: `checkpoint ${gib} GiB mixed, writer 25,000 pages/s: total time`, value: live.stats["total-time"], unit: "ms",
      note: `${live.stats.rounds} rounds, downtime ${live.stats.downtime.toFixed(0)} ms (fdatasync included), ${mb(live.stats["bytes-written"]).toFixed(0)} MB written; restore ${live.restoreMs.toFixed(0)} ms`,
    });

    for (const kernel of Object.keys(KERNELS)) {
      progress(`${kernel} on ${(o.kernelBytes / 2 ** 20).toFixed(0)} MiB, live`);
      const region = Region.create({ pageCount: o.kernelBytes / 4096 });
      region.prefault();
      const workload = Workload.start(region, kernel);
      await workload.until(2);
      const m = await checkpointAndRestore(join(dir, `${kernel}.ckpt`), [region], precopy(), {
        pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState(),
      });
      await workload.stop();
      rows.push({
        suite: "checkpoint", id: "checkpoint.live-kernel.total-time", params: { bytes: o.kernelBytes, kernel },
        name: `checkpoint ${kernel} ${(o.kernelBytes / 2 ** 20).toFixed(0)} MiB live: total time`, value: m.stats["total-time"], unit: "ms",
        note: `${m.stats.rounds} rounds (${m.stats.policy["stop-reason"]}), downtime ${m.stats.downtime.toFixed(0)} ms, ${mb(m.stats["bytes-written"]).toFixed(0)} MB written, ${mb(m.stats["disk-bytes"]).toFixed(0)} MB on disk; restore ${m.restoreMs.toFixed(0)} ms (${(mb(o.kernelBytes) / (m.restoreMs / 1000)).toFixed(0)} MB/s)`,
      });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The live half of `npm run bench -- peers`: QEMU runs a guest of our own (bench/guest/hot-sweep.S,
// a multiboot kernel) that sweeps a hot set of the 1 GiB image, one word per page, as fast as its
// vCPU goes (the image is loaded from 16 MiB to 16 MiB below the top: its bytes in low memory and
// at the top keep the BIOS from booting, so pagewire's guest has those zero too); pagewire gets a thread sweeping the same pages of the same image at the rate the QEMU
// guest reached before its migration. Both migrate with a 300 ms downtime limit (QEMU's default),
// interleaved run by run. Each engine's memory is checked independently: QEMU's destination
// (started with -S, so it stays paused) against its paused source through pmemsave into a FIFO,
// pagewire's destination SHA-256 against the source's memory at the pause.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Region } from "../src/memory/region.js";
import type { Policy } from "../src/policy/policy.js";
import type { MigrationStats } from "../src/migration/stats.js";
import type { HotSet } from "../src/workload/dirty-writer.js";
import { migration } from "./e2e.js";
import { precopy } from "../src/policy/precopy.js";
import { buildHotSweep, configureMigration, freePort, memorySha256, stopQemu, pagesWritten, startQemu, untilMigrated } from "./qemu.js";
import type { QmpClient } from "./qmp-client.js";
import { type Row, progress } from "./report.js";

const BYTES = 2 ** 30;
/** The image's bytes below this and this close to the top are the BIOS's (zero for pagewire). */
const BIOS_BYTES = 16 << 20;
/** The hot set starts at 64 MiB: above the kernel, the BIOS's tables and the loader's low memory. */
const HOT_FIRST_PAGE = (64 << 20) / 4096;

interface QemuLiveRun {
  completed: boolean;
  total: number;
  downtime: number;
  bytes: number;
  syncs: number;
  /** Pages per second the guest wrote in the second before the migration, and while it ran. */
  rateBefore: number;
  rateDuring: number;
  /** The destination's memory equals the source's at the end (both paused). */
  sameMemory: boolean;
}

interface OursLiveRun {
  completed: boolean;
  stats?: MigrationStats;
  /** The destination's digest threads' time on the proof, ms. */
  destinationProofMs: number;
  rateDuring: number;
  sameMemory: boolean;
  error?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The hot set of a live case. */
function hotSet(pages: number): HotSet {
  return { first: HOT_FIRST_PAGE, count: pages };
}

/**
 * One QEMU migration of the image with the hot-sweep guest running. `bandwidth` in bytes/s (QEMU's
 * max-bandwidth; uncapped: 1e12); cancelled after `giveUpMs` if it has not converged.
 */
async function qemuLive(dir: string, image: string, kernel: string, channels: number, o: { bandwidth?: number; autoConverge?: boolean; giveUpMs?: number; hotPages: number }): Promise<QemuLiveRun> {
  const port = await freePort();
  const guest = ["-kernel", kernel, "-device", `loader,file=${image},addr=${BIOS_BYTES},force-raw=on`];
  const destination = await startQemu([...guest, "-incoming", "defer", "-mem-prealloc", "-S"], join(dir, "dst.sock"), "pc");
  const source = await startQemu(guest, join(dir, "src.sock"), "pc");
  try {
    // The BIOS takes seconds under this nested KVM, and the first pass over fresh memory is slow.
    const bootBy = performance.now() + 120_000;
    while ((await pagesWritten(source.qmp)) < 2 * o.hotPages) {
      if (performance.now() > bootBy) throw new Error("QEMU's hot-sweep guest did not get through two sweeps in 120 s");
      await sleep(100);
    }
    const before = await pagesWritten(source.qmp);
    const beforeAt = performance.now();
    await sleep(1000);
    const rateBefore = ((await pagesWritten(source.qmp)) - before) / ((performance.now() - beforeAt) / 1000);
    for (const side of [source, destination]) await configureMigration(side.qmp, o.autoConverge ? ["auto-converge"] : [], channels);
    await source.qmp.execute("migrate-set-parameters", { "max-bandwidth": o.bandwidth ?? 1e12 });
    await destination.qmp.execute("migrate-incoming", { uri: `tcp:127.0.0.1:${port}` });
    const start = await pagesWritten(source.qmp);
    await source.qmp.execute("migrate", { uri: `tcp:127.0.0.1:${port}` });
    const info = await untilMigrated(source.qmp, o.giveUpMs);
    const ram = (info.ram ?? {}) as Record<string, number>;
    const completed = info.status === "completed";
    const total = completed ? Number(info["total-time"]) : Number(info["total-time"] ?? o.giveUpMs);
    const downtime = completed ? Number(info.downtime) : NaN;
    const rateDuring = completed ? ((await pagesWritten(source.qmp)) - start) / ((total - downtime) / 1000) : NaN;
    let sameMemory = false;
    if (completed) {
      await untilMigrated(destination.qmp);
      // From 1 MiB up: below it the BIOS area reads through the chipset's shadow-RAM mapping, and
      // two of its bytes differ between a source and its destination even for QEMU itself.
      const ramSha256 = (side: { qmp: QmpClient }, fifo: string) => memorySha256(side.qmp, join(dir, fifo), 1 << 20, BYTES - (1 << 20));
      sameMemory = (await ramSha256(source, "src.fifo")) === (await ramSha256(destination, "dst.fifo"));
    }
    return { completed, total, downtime, bytes: ram.transferred ?? 0, syncs: ram["dirty-sync-count"] ?? 0, rateBefore, rateDuring, sameMemory };
  } finally {
    await Promise.all([source, destination].map(stopQemu));
  }
}

/** One pagewire migration of `region` with a thread sweeping the hot set at `rate` pages/s. */
async function oursLive(region: Region, sha256: () => string, o: { policy: Policy; channels: number; rate: number; hotPages: number; bandwidth?: number; compress?: boolean; delta?: boolean; giveUpMs?: number }): Promise<OursLiveRun> {
  let written = 0;
  let received = "";
  let destinationProofMs = NaN;
  try {
    const stats = await migration({
      region, policy: o.policy, channels: o.channels, bandwidth: o.bandwidth, compress: o.compress, delta: o.delta, giveUpMs: o.giveUpMs,
      dirtyRate: o.rate, sweep: hotSet(o.hotPages),
      onWriter: (pages) => (written = pages),
      onReceived: (sha) => (received = sha),
      onDestination: (d) => (destinationProofMs = d["digest-thread-time"]),
    });
    const running = (stats["total-time"] - stats.downtime) / 1000;
    return { completed: true, stats, destinationProofMs, rateDuring: written / running, sameMemory: received === sha256() };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    progress(`  pagewire ${o.policy.name}: ${message}`);
    return { completed: false, destinationProofMs, rateDuring: NaN, sameMemory: false, error: message };
  }
}

/** Assembles the guest for each hot-set size; undefined (with a message) without GNU as and ld. */
function hotSweepKernels(dir: string, sizes: number[]): Map<number, string> | undefined {
  const kernels = new Map<number, string>();
  for (const pages of sizes) {
    const kernel = buildHotSweep(dir, HOT_FIRST_PAGE, pages);
    if (!kernel) {
      progress("peers: no GNU as and ld (binutils) here to build QEMU's live guest; the live cases are skipped");
      return undefined;
    }
    kernels.set(pages, kernel);
  }
  return kernels;
}

export interface LivePeersOptions {
  repeats: number;
  /** Hot sets, in pages, for the uncapped cases. */
  hotPages: number[];
  /** The capped cases: the largest hot set at this link (bytes/s), 0 to skip; each gives up after giveUpMs. */
  cappedBandwidth: number;
  giveUpMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** What pagewire's proof cost, which QEMU does not spend: the digest threads' time at each end (medians). */
export function proofNote(sourceMs: number[], destinationMs: number[]): string {
  return `pagewire's proof took its digest threads ${median(sourceMs).toFixed(0)} ms at the source and ${median(destinationMs).toFixed(0)} ms at the destination (medians; QEMU checks nothing)`;
}

const mib = (pages: number) => `${(pages * 4096) / 2 ** 20} MiB`;
const kps = (rate: number) => `${(rate / 1000).toFixed(0)}k`;

/** The live rows: each hot set, one stream and two channels (QEMU: multifd 2), then the capped link. */
export async function runLivePeers(dir: string, region: Region, deltaRegion: Region, qemu: string, policies: Record<string, Policy>, o: LivePeersOptions): Promise<Row[]> {
  const kernels = hotSweepKernels(dir, o.hotPages);
  if (!kernels) return [];
  for (const r of [region, deltaRegion]) {
    r.bytes.fill(0, r.layout.guest, r.layout.guest + BIOS_BYTES);
    r.bytes.fill(0, r.layout.guest + BYTES - BIOS_BYTES, r.layout.guest + BYTES);
  }
  const image = join(dir, "live.raw");
  writeFileSync(image, region.pages(BIOS_BYTES / 4096, (BYTES - 2 * BIOS_BYTES) / 4096));
  const rows: Row[] = [];
  const regionSha = (r: Region) => () => createHash("sha256").update(r.pages(0, r.pageCount)).digest("hex");
  for (const hotPages of o.hotPages) {
    for (const channels of [1, 2]) {
      const label = `live, ${mib(hotPages)} hot set, ${channels === 1 ? "one stream" : `${channels} channels vs multifd ${channels}`}`;
      progress(`${label}: ${qemu} and pagewire interleaved, ${o.repeats} runs each`);
      const theirs: QemuLiveRun[] = [];
      const ours: OursLiveRun[] = [];
      // The largest hot set over one stream also with delta encoding (XBZRLE's idea: a page that
      // changed in one word goes as that word), which QEMU has too but leaves off by default.
      // ... and with precopy's halve-pause: a round more past the first fit while it halves the pause.
      const withDelta = hotPages === Math.max(...o.hotPages) && channels === 1;
      const delta: OursLiveRun[] = [];
      const halved: OursLiveRun[] = [];
      for (let i = 0; i < o.repeats; i++) {
        const q = await qemuLive(dir, image, kernels.get(hotPages)!, channels, { hotPages });
        theirs.push(q);
        ours.push(await oursLive(region, regionSha(region), { policy: policies.precopy, channels, rate: q.rateBefore, hotPages }));
        if (withDelta) delta.push(await oursLive(deltaRegion, regionSha(deltaRegion), { policy: policies.precopy, channels, rate: q.rateBefore, hotPages, delta: true }));
        if (withDelta) halved.push(await oursLive(region, regionSha(region), { policy: precopy({ halvePause: true }), channels, rate: q.rateBefore, hotPages }));
      }
      rows.push(...liveRows(label, { hotPages, channels, peer: qemu }, qemu, theirs, ours, channels === 1 ? 0.5 : 1));
      if (withDelta) rows.push(...liveRows(`${label}, pagewire with delta encoding`, { hotPages, channels, peer: qemu, delta: true }, qemu, theirs, delta, 0.5));
      if (withDelta) rows.push(...liveRows(`${label}, pagewire precopy with halve-pause`, { hotPages, channels, peer: qemu, halvePause: true }, qemu, theirs, halved, 0.5));
    }
  }
  if (o.cappedBandwidth > 0) {
    const hotPages = Math.max(...o.hotPages);
    const link = `${((o.cappedBandwidth * 8) / 1e9).toFixed(0)} Gbit/s`;
    const label = `live, ${mib(hotPages)} hot set, capped at ${link}`;
    progress(`${label}: ${qemu} with and without auto-converge (given up after ${o.giveUpMs / 1000} s), then pagewire's policies`);
    const runs: Array<[string, QemuLiveRun]> = [];
    for (const autoConverge of [false, true]) {
      runs.push([autoConverge ? `${qemu} auto-converge` : qemu, await qemuLive(dir, image, kernels.get(hotPages)!, 1, { hotPages, bandwidth: o.cappedBandwidth, autoConverge, giveUpMs: o.giveUpMs })]);
    }
    const rate = median(runs.map(([, q]) => q.rateBefore));
    const qemuNote = runs.map(([name, q]) => (q.completed ? `${name}: ${q.total} ms, downtime ${q.downtime} ms, ${(q.bytes / 1e9).toFixed(2)} GB` : `${name}: did not converge in ${o.giveUpMs / 1000} s (${(q.bytes / 1e9).toFixed(2)} GB sent)`)).join("; ");
    for (const [name, policy] of Object.entries(policies)) {
      const compressed = name.endsWith("+delta+lz4");
      const target = compressed ? deltaRegion : region;
      const run = await oursLive(target, regionSha(target), { policy, channels: 1, rate, hotPages, bandwidth: o.cappedBandwidth, compress: compressed, delta: compressed, giveUpMs: o.giveUpMs });
      const params = { hotPages, link, policy: name, peer: qemu };
      const s = run.stats;
      rows.push({
        suite: "peers", id: "peers.live-capped.downtime", params, name: `${label}, pagewire ${name}: downtime`,
        value: s ? s.downtime : NaN, unit: "ms", target: compressed ? { max: 500 } : undefined,
        note: s
          ? `total ${s["total-time"].toFixed(0)} ms, ${s.rounds.length} rounds, ${(s.transferred / 1e9).toFixed(2)} GB; writer ${kps(run.rateDuring)} pages/s during (asked ${kps(rate)}, QEMU's guest's rate before); ${run.sameMemory ? "destination SHA-256 equal to the source's" : "DESTINATION MEMORY DIFFERS"}. ${qemuNote}`
          : `did not finish in ${o.giveUpMs / 1000} s (${run.error}). ${qemuNote}`,
      });
    }
  }
  return rows;
}

function liveRows(label: string, params: Row["params"], qemu: string, theirs: QemuLiveRun[], ours: OursLiveRun[], downtimeTarget: number): Row[] {
  const done = ours.filter((r) => r.stats).map((r) => r.stats!);
  const qDone = theirs.filter((q) => q.completed);
  const problems = [
    ...(theirs.some((q) => q.completed && !q.sameMemory) ? [`${qemu}'s destination memory differs from its source's`] : []),
    ...(ours.some((r) => r.completed && !r.sameMemory) ? ["pagewire's destination memory differs from its source's"] : []),
    ...(done.length < ours.length ? [`pagewire failed ${ours.length - done.length} of ${ours.length}: ${ours.find((r) => r.error)?.error}`] : []),
    ...(qDone.length < theirs.length ? [`${qemu} did not complete ${theirs.length - qDone.length} of ${theirs.length}`] : []),
  ];
  const note =
    `${qemu}: ${qDone.map((q) => `${q.total} ms/${q.downtime} ms/${(q.bytes / 1e9).toFixed(2)} GB/${q.syncs} syncs, guest ${kps(q.rateBefore)} pages/s before, ${kps(q.rateDuring)} during`).join("; ")}. ` +
    `pagewire: ${ours.map((r) => (r.stats ? `${r.stats["total-time"].toFixed(0)} ms/${r.stats.downtime.toFixed(0)} ms/${(r.stats.transferred / 1e9).toFixed(2)} GB/${r.stats.rounds.length} rounds, writer ${kps(r.rateDuring)} pages/s during` : "failed")).join("; ")}` +
    (problems.length ? `; ${problems.join("; ")}` : "; every destination's memory equals its source's (SHA-256)") +
    (done.length ? `; ${proofNote(done.map((s) => s["digest-thread-time"]), ours.filter((r) => r.stats).map((r) => r.destinationProofMs))}` : "");
  const qm = (f: (q: QemuLiveRun) => number) => (qDone.length ? median(qDone.map(f)) : NaN);
  const om = (f: (s: MigrationStats) => number) => (done.length ? median(done.map(f)) : NaN);
  return [
    { suite: "peers", id: "peers.live.total-time", params, samples: done.map((s) => s["total-time"]), name: `${label}: total time`, value: om((s) => s["total-time"]), unit: "ms", baseline: { name: qemu, value: qm((q) => q.total) }, target: { max: 1, of: "ratio" }, note },
    { suite: "peers", id: "peers.live.downtime", params, samples: done.map((s) => s.downtime), name: `${label}: downtime`, value: om((s) => s.downtime), unit: "ms", baseline: { name: qemu, value: qm((q) => q.downtime) }, target: { max: downtimeTarget, of: "ratio" } },
    { suite: "peers", id: "peers.live.bytes", params, name: `${label}: bytes on the wire`, value: om((s) => s.transferred) / 1e6, unit: "MB", baseline: { name: qemu, value: qm((q) => q.bytes) / 1e6 }, target: { max: 1, of: "ratio" } },
  ];
}

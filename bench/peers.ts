// `npm run bench -- peers`: pagewire against QEMU migrating the same 1 GiB image between two
// processes over loopback, interleaved in one run: one stream, and two channels against QEMU's
// multifd 2; static here, live (a hot set swept while it migrates) in peers-live.ts. Both destinations hold pre-faulted memory (QEMU's -mem-prealloc; pagewire's listen
// --size); both destinations' memory is checked independently (SHA-256: QEMU's through pmemsave into a FIFO).
// QEMU's guest is -machine none (no vCPU: static memory) with the image loaded at address 0. Needs
// qemu-system-x86_64 (10.0 from Debian 12's bookworm-backports); skipped with that message without.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { precopy } from "../src/policy/precopy.js";
import { earlyStop } from "../src/policy/early-stop.js";
import { mplm } from "../src/policy/mplm.js";
import type { MigrationStats } from "../src/migration/stats.js";
import { migration } from "./e2e.js";
import { configureMigration, freePort, memorySha256, stopQemu, qemuVersion, startQemu, untilMigrated } from "./qemu.js";
import { type Row, progress } from "./report.js";
import { type LivePeersOptions, proofNote, runLivePeers } from "./peers-live.js";
import { peersChart } from "./peers-chart.js";

export interface PeersOptions {
  repeats: number;
  /** The live cases (bench/peers-live.ts), or none. */
  live?: LivePeersOptions;
  /** Write docs/peers.svg and docs/peers.json (the full run only). */
  chart: boolean;
}

const PAGES_PER_MIB = 256;
export const peersDefaults: PeersOptions = { repeats: 3, chart: true, live: { repeats: 3, hotPages: [64 * PAGES_PER_MIB, 512 * PAGES_PER_MIB], cappedBandwidth: 125e6, giveUpMs: 30_000 } };
export const peersQuick: PeersOptions = { repeats: 1, chart: false, live: { repeats: 1, hotPages: [64 * PAGES_PER_MIB], cappedBandwidth: 0, giveUpMs: 30_000 } };

const BYTES = 2 ** 30;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

interface QemuRun {
  total: number;
  downtime: number;
  bytes: number;
  sha256: string;
}

/** One QEMU migration of the image between two QEMU processes; multifd with `channels` > 1. */
async function qemuMigration(dir: string, image: string, channels: number): Promise<QemuRun> {
  const port = await freePort();
  const destination = await startQemu(["-incoming", "defer", "-mem-prealloc"], join(dir, "dst.sock"));
  const source = await startQemu(["-device", `loader,file=${image},addr=0,force-raw=on`], join(dir, "src.sock"));
  try {
    for (const side of [source, destination]) await configureMigration(side.qmp, [], channels);
    // QEMU caps a migration at 128 MiB/s unless told otherwise; pagewire has no cap by default.
    await source.qmp.execute("migrate-set-parameters", { "max-bandwidth": 1e12 });
    await destination.qmp.execute("migrate-incoming", { uri: `tcp:127.0.0.1:${port}` });
    await source.qmp.execute("migrate", { uri: `tcp:127.0.0.1:${port}` });
    const info = await untilMigrated(source.qmp);
    await untilMigrated(destination.qmp);
    const received = await memorySha256(destination.qmp, join(dir, "received.fifo"), 0, BYTES);
    const ram = info.ram as Record<string, number>;
    return { total: Number(info["total-time"]), downtime: Number(info.downtime), bytes: ram.transferred, sha256: received };
  } finally {
    await Promise.all([source, destination].map(stopQemu));
  }
}

export async function runPeers(o: PeersOptions): Promise<Row[]> {
  const version = qemuVersion();
  if (!version) {
    progress("peers: no qemu-system-x86_64 here; install QEMU 10.0 (add bookworm-backports to apt's sources, then apt-get install -t bookworm-backports qemu-system-x86) to compare");
    return [];
  }
  const qemu = `QEMU ${version.major}.${version.minor}`;
  const dir = mkdtempSync(join(tmpdir(), "pagewire-peers-"));
  try {
    const pages = BYTES / 4096;
    // A lane for channel 1's thread, which then encodes what it sends (SourceOptions.channelThreads).
    const region = Region.create({ pageCount: pages, lanes: 2 });
    for (let p = 0; p < pages; p++) {
      const kind = mixedClass(p);
      if (kind !== "zero") fillPage(region.pages(p), kind, p);
    }
    const image = join(dir, "image.raw");
    writeFileSync(image, region.pages(0, pages));
    const expected = sha256(region.pages(0, pages));
    // QEMU is compiled ahead of time; pagewire's JavaScript is compiled as it runs, and a
    // process's first two migrations of this image still pay for that (150-250 ms of CPU more
    // each, from \`perf record\`): an embedder that migrates many times pays it once. Each
    // destination is still a fresh process, as each of QEMU's is.
    progress("warming up pagewire's process: two migrations over one channel and one over two channels on threads, not timed");
    for (const channels of [1, 1, 2]) await migration({ region, policy: precopy(), channels, channelThreads: channels > 1 });
    const rows: Row[] = [];
    for (const channels of [1, 2]) {
      const label = channels === 1 ? "one stream" : `${channels} channels vs multifd ${channels}`;
      progress(`static 1 GiB mixed image, ${label}: ${qemu} and pagewire interleaved, ${o.repeats} runs each`);
      const theirs: QemuRun[] = [];
      const ours: MigrationStats[] = [];
      const threaded: MigrationStats[] = [];
      const destinationProofMs: number[] = [];
      const problems: string[] = [];
      const check = (sha: string) => sha !== expected && problems.push("pagewire's destination memory differs from the image");
      for (let i = 0; i < o.repeats; i++) {
        const q = await qemuMigration(dir, image, channels);
        if (q.sha256 !== expected) problems.push(`${qemu}'s destination memory differs from the image`);
        theirs.push(q);
        ours.push(await migration({ region, policy: precopy(), channels, onReceived: check, onDestination: (d) => destinationProofMs.push(d["digest-thread-time"]) }));
        if (channels > 1) threaded.push(await migration({ region, policy: precopy(), channels, channelThreads: true, onReceived: check }));
      }
      const total = ours.map((s) => s["total-time"]);
      const qTotal = median(theirs.map((q) => q.total));
      const params = { bytes: BYTES, guest: "mixed", live: false, channels, peer: qemu };
      rows.push({
        suite: "peers", id: "peers.static.total-time", params, samples: total,
        name: `static 1 GiB, ${label}: total time`, value: median(total), unit: "ms",
        baseline: { name: `${qemu}${channels > 1 ? ` multifd ${channels}` : ""}`, value: qTotal }, target: { max: channels === 1 ? 0.8 : 1, of: "ratio" },
        note: `${qemu} runs ${theirs.map((q) => q.total).join(", ")} ms, downtime ${median(theirs.map((q) => q.downtime))} ms, ${(median(theirs.map((q) => q.bytes)) / 1e6).toFixed(0)} MB; pagewire downtime ${median(ours.map((s) => s.downtime)).toFixed(0)} ms, ${(median(ours.map((s) => s.transferred)) / 1e6).toFixed(0)} MB${problems.length ? `; ${problems.join("; ")}` : "; both destinations' SHA-256 equal the image's"}; ${proofNote(ours.map((s) => s["digest-thread-time"]), destinationProofMs)}`,
      });
      if (threaded.length) {
        const t = threaded.map((s) => s["total-time"]);
        rows.push({
          suite: "peers", id: "peers.static-threads.total-time", params: { ...params, channelThreads: true }, samples: t,
          name: `static 1 GiB, ${label}, channels on threads: total time`, value: median(t), unit: "ms",
          baseline: { name: `${qemu} multifd ${channels}`, value: qTotal }, target: { max: 1, of: "ratio" },
          note: `channels past the first on worker threads (SourceOptions.channelThreads); on the main thread: ${median(total).toFixed(0)} ms in the same run`,
        });
      }
      rows.push({
        suite: "peers", id: "peers.static.downtime", params, samples: ours.map((s) => s.downtime),
        name: `static 1 GiB, ${label}: downtime`, value: median(ours.map((s) => s.downtime)), unit: "ms",
        baseline: { name: qemu, value: median(theirs.map((q) => q.downtime)) },
      });
      rows.push({
        suite: "peers", id: "peers.static.bytes", params,
        name: `static 1 GiB, ${label}: bytes on the wire`, value: median(ours.map((s) => s.transferred)) / 1e6, unit: "MB",
        baseline: { name: qemu, value: median(theirs.map((q) => q.bytes)) / 1e6 },
      });
    }
    if (o.live) {
      // Delta encoding keeps a copy of the pages it sent: room for the largest hot set.
      const deltaRegion = Region.create({ pageCount: pages, deltaCacheBytes: Math.max(...o.live.hotPages) * 4096 * 1.25 });
      deltaRegion.pages(0, pages).set(region.pages(0, pages));
      const policies = { precopy: precopy(), "early-stop": earlyStop(), mplm: mplm(), "early-stop+delta+lz4": earlyStop() };
      rows.push(...(await runLivePeers(dir, region, deltaRegion, qemu, policies, o.live)));
    }
    if (o.chart && existsSync("docs")) {
      const date = new Date().toISOString();
      writeFileSync("docs/peers.svg", peersChart(rows, { date: date.slice(0, 10), machine: `${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${qemu}` }));
      writeFileSync("docs/peers.json", JSON.stringify({ date, qemu, rows }, null, 1) + "\n");
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

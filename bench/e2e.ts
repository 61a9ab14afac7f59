// `npm run bench -- e2e`: real migrations between two processes over loopback, against raw TCP
// moving the same bytes in the same run. The destination holds a pre-faulted guest (as QEMU's
// -mem-prealloc) before anything is timed.
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { Source } from "../src/migration/source.js";
import type { MigrationStats } from "../src/migration/stats.js";
import type { Received } from "../src/migration/listener-types.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { precopy } from "../src/policy/precopy.js";
import type { Policy } from "../src/policy/policy.js";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { DirtyWriter, type HotSet } from "../src/workload/dirty-writer.js";
import { regionPages } from "../src/cli/guest.js";
import { type Row, progress } from "./report.js";

const PAGE = 4096;
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const SINK = fileURLToPath(new URL("./tcp-sink.js", import.meta.url));

export interface E2eOptions {
  bytes: number;
  /** Dirty rates (pages/s) for the pre-copy runs. */
  dirtyRates: number[];
  /** Cap for the slow-link runs, bytes/s. */
  slowLink: number;
  /** Runs of each of the raw-TCP comparison's contenders. */
  repeats: number;
  /** A static guest this large (several regions) for the pause's cost at scale; 0 to skip. */
  largeBytes: number;
}

export const e2eDefaults: E2eOptions = { bytes: 2 ** 30, dirtyRates: [0, 25_000, 100_000, 250_000], slowLink: 125e6, repeats: 3, largeBytes: 5 * 2 ** 30 };
export const e2eQuick: E2eOptions = { bytes: 64 << 20, dirtyRates: [0, 25_000], slowLink: 125e6, repeats: 1, largeBytes: 0 };

function message(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (m.type === type) {
        child.off("message", onMessage);
        resolve(m);
      } else if (m.type === "failed") reject(new Error(String(m.message)));
    };
    child.on("message", onMessage);
    child.once("exit", (code) => reject(new Error(`child exited (${code}) before ${type}`)));
  });
}

/**
 * Raw Node TCP between two processes: 1 MiB writes from shared memory, honouring backpressure;
 * the receiver (bench/tcp-sink.ts) discards the bytes, copies them into pre-faulted shared
 * memory, or has them read straight into it. The direct receiver connects to us: Node takes a
 * caller's read buffer only on sockets that connect.
 */
async function rawTcp(source: Uint8Array, receiver: "discard" | "copy" | "direct" | "tls", certificate?: Certificate): Promise<number> {
  let socket: Socket;
  let sink: ChildProcess;
  if (receiver === "direct") {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
    sink = fork(SINK, [String(source.length), receiver, String((server.address() as AddressInfo).port)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    socket = await accepted;
    server.close();
  } else {
    const files = receiver === "tls" ? [certificate!.certFile, certificate!.keyFile] : [];
    sink = fork(SINK, [String(source.length), receiver, ...files], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const { port } = (await message(sink, "listening")) as { port: number };
    socket = receiver === "tls" ? tlsConnect({ port, host: "127.0.0.1", ca: certificate!.cert }) : connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once(receiver === "tls" ? "secureConnect" : "connect", resolve));
  }
  const done = message(sink, "done");
  const start = performance.now();
  for (let at = 0; at < source.length; at += 1 << 20) {
    if (!socket.write(source.subarray(at, at + (1 << 20)))) await new Promise((resolve) => socket.once("drain", resolve));
  }
  await done;
  const ms = performance.now() - start;
  socket.destroy();
  sink.kill();
  return ms;
}

interface Migration {
  /** The guest: one region, or several (as `pagewire listen --size` splits a large one). */
  region: Region | Region[];
  policy: Policy;
  compress?: boolean;
  bandwidth?: number;
  dirtyRate?: number;
  /** Over TLS with this certificate (the source trusts it as its CA). */
  tls?: Certificate;
  channels?: number;
  channelThreads?: boolean;
  /** XBZRLE-style delta encoding (the regions need a delta cache). */
  delta?: boolean;
  /** Hash all memory for the digest at the pause (SourceOptions.fullDigest). */
  fullDigest?: boolean;
  /** The writer sweeps this hot set in order instead of writing random pages. */
  sweep?: HotSet;
  /** Cancels the migration after this long (it then rejects with EABORTED). */
  giveUpMs?: number;
  /** Called with the destination's SHA-256 of the memory it received. */
  onReceived?: (sha256: string) => void;
  /** Called with the destination's statistics (its digest threads' time on the proof among them). */
  onDestination?: (stats: Received["stats"]) => void;
  /** Called with the pages the writer wrote from the start of the migration to the pause. */
  onWriter?: (pages: number) => void;
}

interface Certificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
}

/** A throwaway self-signed certificate for 127.0.0.1 (openssl), or undefined when openssl is missing. */
function throwawayCertificate(): Certificate | undefined {
  const dir = mkdtempSync(join(tmpdir(), "pagewire-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
    return { certFile, keyFile, cert: readFileSync(certFile) };
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

/** One migration into a fresh destination process holding a pre-faulted guest of the same size. */
export async function migration(m: Migration): Promise<MigrationStats> {
  const regions = Array.isArray(m.region) ? m.region : [m.region];
  const size = `${regions.reduce((sum, r) => sum + r.pageCount, 0) * PAGE}`;
  const tlsArgs = m.tls ? ["--tls-cert", m.tls.certFile, "--tls-key", m.tls.keyFile] : [];
  const shaArgs = m.onReceived ? ["--sha256"] : [];
  const child = fork(CLI, ["listen", "--port", "0", "--once", "--ipc", "--size", size, ...tlsArgs, ...shaArgs], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const writer = m.dirtyRate ? new DirtyWriter(regions[0], m.dirtyRate, 3, m.sweep) : undefined;
  try {
    const { port } = (await message(child, "listening")) as { port: number };
    const completed = message(child, "completed");
    completed.catch(() => undefined);
    await writer?.until(1000);
    const written = writer?.written ?? 0;
    const signal = m.giveUpMs ? AbortSignal.timeout(m.giveUpMs) : undefined;
    const stats = await new Source(regions, {
      host: "127.0.0.1",
      port,
      policy: m.policy,
      compress: m.compress,
      bandwidth: m.bandwidth,
      channels: m.channels,
      channelThreads: m.channelThreads,
      delta: m.delta,
      fullDigest: m.fullDigest,
      signal,
      tls: m.tls ? { ca: m.tls.cert } : undefined,
      hooks: writer ? { pause: () => writer.pause(), resume: () => writer.resume() } : undefined,
    }).migrate();
    m.onWriter?.((writer?.written ?? 0) - written);
    const received = await completed;
    m.onReceived?.(String(received.sha256));
    m.onDestination?.(received.stats as Received["stats"]);
    return stats;
  } finally {
    await writer?.stop();
    // Its exit frees the guest's memory: done before the next run is timed.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill();
      await exited;
    }
  }
}

function fill(region: Region, kind: (page: number) => Parameters<typeof fillPage>[1]): void {
  for (let p = 0; p < region.pageCount; p++) {
    const k = kind(p);
    if (k !== "zero") fillPage(region.pages(p), k, p);
  }
}

const mb = (bytes: number) => bytes / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function runE2e(o: E2eOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const pages = o.bytes / PAGE;
  const gib = (o.bytes / 2 ** 30).toFixed(2);

  progress(`random guest of ${gib} GiB: raw TCP vs stop-and-copy, ${o.repeats} runs each, interleaved`);
  const random = Region.create({ pageCount: pages });
  fill(random, () => "random");
  const raw: number[] = [];
  const rawCopy: number[] = [];
  const rawDirect: number[] = [];
  const ours: MigrationStats[] = [];
  const destinationProofMs: number[] = [];
  const certificate = throwawayCertificate();
  const overTls: MigrationStats[] = [];
  const rawTls: number[] = [];
  for (let i = 0; i < o.repeats; i++) {
    raw.push(await rawTcp(random.pages(0, pages), "discard"));
    rawCopy.push(await rawTcp(random.pages(0, pages), "copy"));
    rawDirect.push(await rawTcp(random.pages(0, pages), "direct"));
    ours.push(await migration({ region: random, policy: stopCopy(), onDestination: (d) => destinationProofMs.push(d["digest-thread-time"]) }));
    if (certificate) {
      rawTls.push(await rawTcp(random.pages(0, pages), "tls", certificate));
      overTls.push(await migration({ region: random, policy: stopCopy(), tls: certificate }));
    }
  }
  const rawMs = median(raw);
  const rawCopyMs = median(rawCopy);
  const sourceProofMs = median(ours.map((s) => s["digest-thread-time"]));
  const randomStop = ours.sort((a, b) => a["total-time"] - b["total-time"])[ours.length >> 1];
  const rate = (ms: number) => mb(o.bytes) / (ms / 1000);
  const randomSamples = ours.map((s) => rate(s["total-time"]));
  rows.push({
    suite: "e2e", id: "e2e.stop-copy-random", params: { bytes: o.bytes, pages: "random", baseline: "raw-tcp" }, samples: randomSamples,
    name: `stop-copy ${gib} GiB random pages`, value: rate(randomStop["total-time"]), unit: "MB/s",
    baseline: { name: "raw Node TCP", value: rate(rawMs) }, target: { min: 0.85, of: "ratio" },
    note: `medians of ${o.repeats}: ${randomStop["total-time"].toFixed(0)} ms in all (setup ${randomStop["setup-time"].toFixed(0)} ms, digest check ${randomStop["verify-time"]} ms) vs ${rawMs.toFixed(0)} ms raw; the proof took the digest threads ${sourceProofMs.toFixed(0)} ms at the source and ${median(destinationProofMs).toFixed(0)} ms at the destination, on the cores raw TCP has to itself`,
  });
  rows.push({
    suite: "e2e", id: "e2e.stop-copy-random", params: { bytes: o.bytes, pages: "random", baseline: "raw-tcp-copying" }, samples: randomSamples,
    name: `stop-copy ${gib} GiB random pages, vs a receiver that copies`, value: rate(randomStop["total-time"]), unit: "MB/s",
    baseline: { name: "raw TCP + copy into shared memory", value: rate(rawCopyMs) },
    note: "a receiver without zero-copy reads must copy each byte once into guest memory; this is that floor",
  });
  rows.push({
    suite: "e2e", id: "e2e.stop-copy-random", params: { bytes: o.bytes, pages: "random", baseline: "raw-tcp-in-place" }, samples: randomSamples,
    name: `stop-copy ${gib} GiB random pages, vs a receiver that reads in place`, value: rate(randomStop["total-time"]), unit: "MB/s",
    baseline: { name: "raw TCP read straight into shared memory", value: rate(median(rawDirect)) },
    note: "a receiver that reads straight into guest memory, as pagewire's listener does on plain TCP (src/transport/adopt.ts), with no records to decode and nothing to prove",
  });
  if (certificate) {
    const tlsMedian = overTls.sort((a, b) => a["total-time"] - b["total-time"])[overTls.length >> 1];
    rows.push({
      suite: "e2e", id: "e2e.stop-copy-random-tls", params: { bytes: o.bytes, pages: "random", baseline: "plain-tcp" }, samples: overTls.map((s) => rate(s["total-time"])),
      name: `stop-copy ${gib} GiB random pages over TLS`, value: rate(tlsMedian["total-time"]), unit: "MB/s",
      baseline: { name: "the same migration over plain TCP", value: rate(randomStop["total-time"]) },
      note: `medians of ${o.repeats}, interleaved: ${tlsMedian["total-time"].toFixed(0)} ms over TLS 1.3 (AES-GCM, one core per side) vs ${randomStop["total-time"].toFixed(0)} ms plain; a TLS socket cannot read in place`,
    });
    rows.push({
      suite: "e2e", id: "e2e.stop-copy-random-tls", params: { bytes: o.bytes, pages: "random", baseline: "raw-tls" }, samples: overTls.map((s) => rate(s["total-time"])),
      name: `stop-copy ${gib} GiB random pages over TLS, vs raw Node TLS`, value: rate(tlsMedian["total-time"]), unit: "MB/s",
      baseline: { name: "raw Node TLS + copy into shared memory", value: rate(median(rawTls)) }, target: { min: 0.85, of: "ratio" },
      note: `raw TLS median ${median(rawTls).toFixed(0)} ms: Node's TLS, not pagewire, sets the pace`,
    });
    rmSync(join(certificate.certFile, ".."), { recursive: true, force: true });
  } else {
    progress("no openssl: the TLS comparison is skipped (install openssl to measure it)");
  }

  progress(`mixed guest of ${gib} GiB (half zero, a quarter compressible, a quarter random)`);
  const mixed = Region.create({ pageCount: pages });
  fill(mixed, (p) => mixedClass(p));
  for (const [label, bandwidth] of [["loopback", undefined], ["1 Gbit/s", o.slowLink]] as const) {
    for (const compress of [false, true]) {
      progress(`stop-copy mixed, ${label}, ${compress ? "LZ4" : "no compression"}`);
      const s = await migration({ region: mixed, policy: stopCopy(), compress, bandwidth });
      const qemu = label === "loopback" && o.bytes === 2 ** 30 ? { name: "QEMU 7.2 (FACTS.md)", value: 280 } : undefined;
      rows.push({
        suite: "e2e", id: "e2e.stop-copy-mixed.total-time", params: { bytes: o.bytes, link: label, compress },
        name: `stop-copy ${gib} GiB mixed, ${label}, ${compress ? "lz4" : "raw"}: total time`, value: s["total-time"], unit: "ms",
        baseline: qemu, target: qemu ? { max: 280 } : undefined,
        note: `downtime ${s.downtime.toFixed(0)} ms, ${mb(s.transferred).toFixed(0)} MB on the wire`,
      });
      rows.push({
        suite: "e2e", id: "e2e.stop-copy-mixed.bytes", params: { bytes: o.bytes, link: label, compress },
        name: `stop-copy ${gib} GiB mixed, ${label}, ${compress ? "lz4" : "raw"}: bytes on the wire`, value: mb(s.transferred), unit: "MB",
        baseline: qemu ? { name: "QEMU 7.2 (FACTS.md)", value: 540 } : undefined, target: qemu && compress ? { max: 540 } : undefined,
      });
    }
  }

  for (const rate of o.dirtyRates) {
    progress(`pre-copy mixed, writer at ${rate} pages/s`);
    const s = await migration({ region: mixed, policy: precopy(), dirtyRate: rate });
    rows.push(pauseRow(s, `precopy ${gib} GiB mixed, ${rate} dirty pages/s`, { bytes: o.bytes, dirtyRate: rate }));
    rows.push({
      suite: "e2e", id: "e2e.precopy-mixed.total-time", params: { bytes: o.bytes, dirtyRate: rate },
      name: `precopy ${gib} GiB mixed, ${rate} dirty pages/s: total time`, value: s["total-time"], unit: "ms",
      note: `${s.rounds.length} rounds, downtime ${s.downtime.toFixed(0)} ms, ${mb(s.transferred).toFixed(0)} MB sent; ${s.policy["stop-reason"]}`,
    });
    rows.push({
      suite: "e2e", id: "e2e.precopy-mixed.downtime", params: { bytes: o.bytes, dirtyRate: rate }, name: `precopy ${gib} GiB mixed, ${rate} dirty pages/s: downtime`, value: s.downtime, unit: "ms",
      note: `expected ${s["expected-downtime"].toFixed(0)} ms (fixed costs included)`,
    });
  }
  if (o.largeBytes) {
    const large = regionPages(o.largeBytes, PAGE).map((pageCount) => Region.create({ pageCount }));
    const label = `${(o.largeBytes / 2 ** 30).toFixed(0)} GiB in ${large.length} regions`;
    progress(`pre-copy of a static guest of ${label}: the pause with nothing left to send`);
    for (const r of large) fill(r, (p) => mixedClass(p));
    rows.push(pauseRow(await migration({ region: large, policy: precopy() }), `precopy ${label} mixed, static`, { bytes: o.largeBytes, regions: large.length }));
  }
  return rows;
}

/**
 * What the pause cost beyond sending the final round at the bandwidth the live rounds measured:
 * the digest's remaining hashes, the last messages. The target is 10 ms however large the guest.
 */
function pauseRow(s: MigrationStats, name: string, params: Row["params"]): Row {
  const liveMs = s["total-time"] - s["setup-time"] - s.downtime;
  const bandwidth = s["precopy-bytes"] / Math.max(1, liveMs); // bytes per ms
  const sending = s["downtime-bytes"] / bandwidth;
  return {
    suite: "e2e", id: "e2e.pause-overhead", params, name: `${name}: the pause beyond its final round`, value: s.downtime - sending, unit: "ms",
    target: { max: 10 },
    note: `downtime ${s.downtime.toFixed(1)} ms = ${(s["downtime-bytes"] / 1e6).toFixed(1)} MB at the live rounds' ${(bandwidth / 1e3).toFixed(0)} MB/s (${sending.toFixed(1)} ms) + the rest; the source hashed ${(s["pause-hashed-bytes"] / 2 ** 20).toFixed(0)} MiB for the digest after the pause, the destination verified in ${s["verify-time"].toFixed(1)} ms`,
  };
}

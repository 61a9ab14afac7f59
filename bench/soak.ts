// `pagewire bench soak`: one listener through many migrations with faults injected at random
// points (a connection cut, a link that stalls, a source cancelled), as a long-lived destination
// meets them. Every migration must either complete with the source's memory at the pause, or fail
// with the source's guest resumed and still running; the listener's memory and sockets must stay
// flat. Sources run in this process, each through a proxy that injects the fault.
import { createServer, connect, type Server, type Socket } from "node:net";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { precopy } from "../src/policy/precopy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { type Row, progress } from "./report.js";
import { sha256 } from "../src/cli/source-run.js";

export interface SoakOptions {
  migrations: number;
  bytes: number;
}

export const soakDefaults: SoakOptions = { migrations: 1000, bytes: 8 << 20 };
export const soakQuick: SoakOptions = { migrations: 60, bytes: 4 << 20 };

type Fault = "none" | "cut" | "stall" | "cancel";
const FAULTS: Fault[] = ["none", "cut", "stall", "cancel"];

/** A TCP proxy to `port` that, once `after` bytes went towards the destination, cuts or stalls every connection through it. */
async function faultProxy(port: number, fault: Fault, after: number): Promise<{ port: number; close(): void }> {
  let forwarded = 0;
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.push(client, upstream);
    const swallow = () => undefined;
    client.on("error", swallow);
    upstream.on("error", swallow);
    client.on("data", (chunk: Buffer) => {
      forwarded += chunk.length;
      if (forwarded > after && fault === "cut") for (const s of sockets) s.destroy();
      else if (forwarded > after && fault === "stall") client.pause(); // nothing more goes either way
      else upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

export async function runSoak(o: SoakOptions): Promise<Row[]> {
  const pages = o.bytes / 4096;
  const listener = new Listener({ secret: "soak", idleTimeoutMs: 1000 });
  const port = await listener.listen(0);
  const counts: Record<string, number> = { completed: 0, failedIntact: 0, broken: 0 };
  const broken: string[] = [];
  const byFault: Record<Fault, number> = { none: 0, cut: 0, stall: 0, cancel: 0 };
  let seed = 0x9e3779b9;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const region = Region.create({ pageCount: pages });
  for (let p = 0; p < pages; p++) fillPage(region.pages(p), mixedClass(p, 5), p, 5);
  const before = { rss: 0, sockets: sockets() };
  listener.on("completed", (r) => r.release());
  for (let i = 0; i < o.migrations; i++) {
    const fault = FAULTS[Math.floor(rand() * FAULTS.length)];
    byFault[fault]++;
    const proxy = await faultProxy(port, fault, Math.floor(rand() * o.bytes));
    const writer = new DirtyWriter(region, 20_000, i + 1);
    await writer.until(50);
    const cancel = new AbortController();
    let paused = false;
    let resumed = false;
    let atPause = "";
    let onDone!: (r: { regions: Region[] }) => void;
    const received = new Promise<string>((resolve) => {
      onDone = (r) => resolve(sha256(r.regions));
      listener.on("completed", onDone);
    });
    const source = new Source([region], {
      host: "127.0.0.1", port: proxy.port, secret: "soak", signal: cancel.signal, timeoutMs: 500,
      policy: precopy({ downtimeLimitMs: 50, maxRounds: 4 }),
      hooks: {
        pause: async () => {
          await writer.pause();
          paused = true;
        },
        resume: () => {
          resumed = true;
          writer.resume();
        },
        deviceState: () => {
          atPause = sha256([region]);
          return new Uint8Array(0);
        },
      },
    });
    if (fault === "cancel") {
      const at = rand() * o.bytes;
      source.on("progress", (p) => p.transferred > at && cancel.abort());
    }
    const outcome = await source.migrate().then(() => "completed", (e: Error) => e.message);
    if (outcome === "completed") {
      if ((await received) === atPause) counts.completed++;
      else {
        counts.broken++;
        broken.push(`${i} ${fault}: completed with memory other than the source's`);
      }
    } else {
      // Failed: a guest that was paused must have been resumed, and it must be running.
      const running = await Promise.race([writer.until(writer.written + 1).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
      if ((!paused || resumed) && running) counts.failedIntact++;
      else {
        counts.broken++;
        broken.push(`${i} ${fault}: failed (${outcome}) with the guest ${paused && !resumed ? "left paused" : "not running"}`);
      }
    }
    listener.off("completed", onDone);
    await writer.stop();
    proxy.close();
    if (i === 9) before.rss = rssMiB();
    if (i % 100 === 99 || i === o.migrations - 1) progress(`${i + 1} migrations: ${counts.completed} completed, ${counts.failedIntact} failed with the source intact, ${counts.broken} broken; RSS ${rssMiB().toFixed(0)} MiB`);
  }
  // Sessions a fault left behind end at the idle timeout; then only the listening socket remains.
  const deadline = performance.now() + 5000;
  while (listener.active().length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const after = { rss: rssMiB(), sockets: sockets() };
  await listener.close();
  const note = `${o.migrations} migrations of ${o.bytes >> 20} MiB, faults ${JSON.stringify(byFault)}`;
  return [
    { suite: "soak", id: "soak.outcomes", params: { migrations: o.migrations, bytes: o.bytes }, name: "migrations that ended neither verified nor with the source intact", value: counts.broken, unit: "", target: { max: 0 }, note: `${note}: ${counts.completed} completed verified, ${counts.failedIntact} failed with the source running${broken.length ? `; ${broken.slice(0, 5).join("; ")}` : ""}` },
    { suite: "soak", id: "soak.rss-growth", params: { migrations: o.migrations, bytes: o.bytes }, name: "listener process RSS growth after the 10th migration", value: after.rss - before.rss, unit: "MiB", target: { max: o.bytes / 2 ** 20 * 4 } },
    { suite: "soak", id: "soak.sockets", params: { migrations: o.migrations }, name: "TCP sockets open at the end, beyond those at the start", value: after.sockets - before.sockets, unit: "", target: { max: 1 }, note: "the listening socket" },
  ];
}

// Real peers for migration tests: a destination in its own process, guests, independent digests,
// a hand-driven source for crafting frames, and a proxy that cuts connections.
import { fork, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import type { LayoutOptions } from "../src/memory/layout.js";
import { Listener, type ListenerOptions } from "../src/migration/listener.js";
import { Workload } from "../src/workload/workload.js";
import { Core } from "../src/core/core.js";

const CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));

export interface DestinationProcess {
  port: number;
  child: ChildProcess;
  /** The next message of this type the process reports (completed, failed, refused, round-end), optionally one that `matches`. */
  next(type: string, matches?: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(): void;
}

/** Starts `pagewire listen --port 0 --ipc --sha256 ...args` in a child process. */
export async function startDestination(...args: string[]): Promise<DestinationProcess> {
  const child = fork(CLI, ["listen", "--port", "0", "--ipc", "--sha256", ...args], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const queue: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  child.on("message", (m: Record<string, unknown>) => {
    queue.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const next = async (type: string, matches: (m: Record<string, unknown>) => boolean = () => true) => {
    for (;;) {
      const i = queue.findIndex((m) => m.type === type && matches(m));
      if (i >= 0) return queue.splice(i, 1)[0];
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`destination exited before reporting ${type}`);
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), exited]);
    }
  };
  const { port } = (await next("listening")) as { port: number };
  return { port, child, next, exited, kill: () => child.kill("SIGKILL") };
}

/** A guest region of mixed pages. */
export function guest(pageCount: number, seed = 1, options: Partial<LayoutOptions> = {}): Region {
  const region = Region.create({ pageCount, ...options });
  for (let p = 0; p < pageCount; p++) {
    const kind = mixedClass(p, seed);
    if (kind !== "zero") fillPage(region.pages(p), kind, p, seed);
  }
  return region;
}

/** SHA-256 of regions' guest memory: a check independent of the protocol's XXH3 digest. */
export function sha256(regions: Region[]): string {
  const hash = createHash("sha256");
  for (const r of regions) hash.update(r.pages(0, r.pageCount));
  return hash.digest("hex");
}

/**
 * A TCP proxy to `port` that cuts connections by the bytes that went from client to server, over
 * all connections: given a number, it cuts every connection once that many went (and every one
 * after); given a list, it cuts the connections open when the count passes each mark, once per
 * mark, and passes everything through after the last. `cutNow` cuts the connections open now;
 * `cuts` counts the cuts made.
 */
export async function cuttingProxy(port: number, limits: number | number[]): Promise<{ port: number; server: Server; cut: Promise<void>; cuts: () => number; cutNow: () => void }> {
  let forwarded = 0;
  let cuts = 0;
  const marks = typeof limits === "number" ? [limits] : [...limits];
  const forever = typeof limits === "number";
  let onCut!: () => void;
  const cut = new Promise<void>((resolve) => (onCut = resolve));
  let sockets: Socket[] = [];
  const cutNow = () => {
    for (const s of sockets) s.destroy();
    sockets = [];
    cuts++;
    onCut();
  };
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.push(client, upstream);
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
    upstream.on("data", (d) => client.write(d));
    client.on("data", (d) => {
      forwarded += d.length;
      if (marks.length > 0 && forwarded > marks[0]) {
        if (!forever) marks.shift();
        return cutNow();
      }
      upstream.write(d);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, server, cut, cuts: () => cuts, cutNow };
}

/** Runs `run` against a listener on a free loopback port, closed afterwards. */
export async function withListener(options: ListenerOptions, run: (listener: Listener, port: number) => Promise<void>): Promise<void> {
  const listener = new Listener(options);
  const port = await listener.listen(0);
  try {
    await run(listener, port);
  } finally {
    await listener.close();
  }
}

/**
 * For a workload migrated live: its digest after `stopAt` iterations of a run that never moved,
 * and a listener in which it continues (from the state and memory it received) to `stopAt`;
 * `ending(received)` waits for it to finish there and says how many iterations it ran and the
 * digest of the memory it ended with, to compare with { iterations: stopAt, digest: unmovedDigest }.
 */
export async function continuingDestination(kernel: string, stopAt: number, seed: number, secret: string) {
  const alone = Region.create({ pageCount: 4096 });
  await Workload.start(alone, kernel, { stopAt, seed }).done;
  let onDestination!: (w: Workload) => void;
  const continued = new Promise<Workload>((resolve) => (onDestination = resolve));
  const listener = new Listener({ secret, hooks: { resume: (state, regions) => onDestination(Workload.resumeFrom(regions[0], state, { stopAt }).workload) } });
  const port = await listener.listen(0);
  const ending = async (received: Promise<{ regions: Region[] }>) => {
    const workload = await continued;
    await workload.done;
    return { iterations: workload.iterations, digest: new Core((await received).regions[0]).digest() };
  };
  return { unmovedDigest: new Core(alone).digest(), listener, port, ending };
}

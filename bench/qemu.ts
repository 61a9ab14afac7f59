// QEMU as a peer in the benchmarks: its version, a QEMU started with a QMP socket (1 GiB of memory,
// no vCPU for static memory, or a live guest of our own that sweeps a hot set), and a migration
// followed to its end over QMP.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { QmpClient } from "./qmp-client.js";

const HOT_SWEEP = fileURLToPath(new URL("../../bench/guest/hot-sweep.S", import.meta.url));
/** Where the hot-sweep guest keeps the pages it has written (bench/guest/hot-sweep.S). */
const PAGES_WRITTEN = 0x7000;

/** QEMU's version, if qemu-system-x86_64 is installed. */
export function qemuVersion(): { major: number; minor: number } | undefined {
  try {
    const m = /version (\d+)\.(\d+)/.exec(execFileSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }));
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** A free loopback port for QEMU to listen on (QEMU cannot report the one it picked). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Assembles the hot-sweep guest (bench/guest/hot-sweep.S) for a hot set of `pages` pages from
 * page `first`, into `dir`; returns the kernel's path, or undefined without GNU as and ld.
 */
export function buildHotSweep(dir: string, first: number, pages: number): string | undefined {
  const object = join(dir, `hot-${pages}.o`);
  const kernel = join(dir, `hot-${pages}.elf`);
  try {
    execFileSync("as", ["--32", "--defsym", `HOT_BASE=${first * 4096}`, "--defsym", `HOT_PAGES=${pages}`, "-o", object, HOT_SWEEP], { stdio: "ignore" });
    // -N: one segment at 1 MiB, the multiboot header within the file's first 8 KiB.
    execFileSync("ld", ["-m", "elf_i386", "-N", "-Ttext=0x100000", "-e", "_start", "-o", kernel, object], { stdio: "ignore" });
    return kernel;
  } catch {
    return undefined;
  }
}

/** "PGWR", which the hot-sweep guest writes after its count once it runs. */
const RUNNING = 0x52574750;

/** The pages the hot-sweep guest has written so far (a 32-bit count, read from its memory); -1 until it runs. */
export async function pagesWritten(qmp: QmpClient): Promise<number> {
  const out = String(await qmp.execute("human-monitor-command", { "command-line": `xp /2wx ${PAGES_WRITTEN}` }));
  const [count, mark] = out.split(":")[1].trim().split(/\s+/).map((word) => parseInt(word, 16));
  return mark === RUNNING ? count : -1;
}

/**
 * QEMU with 1 GiB under KVM and `args`, with its QMP negotiated: -machine none (static memory: no
 * vCPU), or -machine pc for a guest that runs (`machine`).
 */
export async function startQemu(args: string[], socket: string, machine: "none" | "pc" = "none"): Promise<{ process: ChildProcess; qmp: QmpClient }> {
  rmSync(socket, { force: true });
  const process = spawn("qemu-system-x86_64", ["-machine", `${machine},accel=kvm`, "-m", "1024", "-nodefaults", "-display", "none", "-qmp", `unix:${socket},server=on,wait=off`, ...args], { stdio: "ignore" });
  while (!existsSync(socket)) await new Promise((resolve) => setTimeout(resolve, 20));
  const qmp = await QmpClient.connect(socket);
  await qmp.execute("qmp_capabilities");
  return { process, qmp };
}

/**
 * Ends a QEMU and waits until it has exited: freeing a gigabyte of guest memory takes its kernel
 * a moment of CPU, which would otherwise land in the next run measured.
 */
export async function stopQemu(side: { process: ChildProcess; qmp: QmpClient }): Promise<void> {
  side.qmp.close();
  if (side.process.exitCode !== null || side.process.signalCode !== null) return;
  const exited = new Promise((resolve) => side.process.once("exit", resolve));
  side.process.kill();
  await exited;
}

/**
 * Polls query-migrate until the migration completed (then asks once more: QEMU fills total-time a
 * moment later) or failed; after `giveUpMs`, cancels it and resolves with its last report (status
 * "cancelled") once QEMU has.
 */
export async function untilMigrated(qmp: QmpClient, giveUpMs = Infinity): Promise<Record<string, unknown>> {
  const deadline = performance.now() + giveUpMs;
  let last: Record<string, unknown> = {};
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as Record<string, unknown>;
    if (info.status === "completed") {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return (await qmp.execute("query-migrate")) as Record<string, unknown>;
    }
    if (info.status === "cancelled") return { ...last, status: "cancelled" };
    if (info.status === "failed") throw new Error(`QEMU's migration failed: ${String(info["error-desc"])}`);
    if (info.status === "active") last = info;
    if (performance.now() > deadline && info.status !== "cancelling") await qmp.execute("migrate_cancel");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Turns on `capabilities` (and multifd with `channels` > 1) on one side of a migration. */
export async function configureMigration(qmp: QmpClient, capabilities: string[], channels = 1): Promise<void> {
  const all = [...capabilities, ...(channels > 1 ? ["multifd"] : [])];
  if (all.length) await qmp.execute("migrate-set-capabilities", { capabilities: all.map((capability) => ({ capability, state: true })) });
  if (channels > 1) await qmp.execute("migrate-set-parameters", { "multifd-channels": channels });
}

/** Runs `command` (migrate or migrate-incoming) to `uri` and follows it to the end; resolves with its ms and QEMU's report. */
export async function timedMigration(qmp: QmpClient, command: string, uri: string): Promise<{ ms: number; info: Record<string, unknown> }> {
  const start = performance.now();
  await qmp.execute(command, { uri });
  const info = await untilMigrated(qmp);
  return { ms: performance.now() - start, info };
}

/**
 * SHA-256 of `size` bytes of a QEMU's memory from guest address `from`, streamed through a FIFO
 * at `fifo`: nothing is written to disk (a 1 GiB dump file left the kernel writing back and
 * discarding a gigabyte while the next run was timed).
 */
export async function memorySha256(qmp: QmpClient, fifo: string, from: number, size: number): Promise<string> {
  rmSync(fifo, { force: true });
  execFileSync("mkfifo", [fifo]);
  const hash = createHash("sha256");
  const read = new Promise<void>((resolve, reject) => createReadStream(fifo).on("data", (b) => hash.update(b)).on("end", resolve).on("error", reject));
  await qmp.execute("pmemsave", { val: from, size, filename: fifo });
  await read;
  rmSync(fifo, { force: true });
  return hash.digest("hex");
}

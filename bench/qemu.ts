// QEMU as a peer in the benchmarks: its version, a QEMU started with a QMP socket (no vCPU, 1 GiB of
// memory, as the comparisons use it), and a migration followed to its end over QMP.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { QmpClient } from "./qmp-client.js";

/** QEMU's version, if qemu-system-x86_64 is installed. */
export function qemuVersion(): { major: number; minor: number } | undefined {
  try {
    const m = /version (\d+)\.(\d+)/.exec(execFileSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }));
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** QEMU with -machine none (static memory: no vCPU), 1 GiB, under KVM, and `args`; with its QMP negotiated. */
export async function startQemu(args: string[], socket: string): Promise<{ process: ChildProcess; qmp: QmpClient }> {
  rmSync(socket, { force: true });
  const process = spawn("qemu-system-x86_64", ["-machine", "none,accel=kvm", "-m", "1024", "-nodefaults", "-display", "none", "-qmp", `unix:${socket},server=on,wait=off`, ...args], { stdio: "ignore" });
  while (!existsSync(socket)) await new Promise((resolve) => setTimeout(resolve, 20));
  const qmp = await QmpClient.connect(socket);
  await qmp.execute("qmp_capabilities");
  return { process, qmp };
}

/** Polls query-migrate until the migration completed (then asks once more: QEMU fills total-time a moment later) or failed. */
export async function untilMigrated(qmp: QmpClient): Promise<Record<string, unknown>> {
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as Record<string, unknown>;
    if (info.status === "completed") {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return (await qmp.execute("query-migrate")) as Record<string, unknown>;
    }
    if (info.status === "failed") throw new Error(`QEMU's migration failed: ${String(info["error-desc"])}`);
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

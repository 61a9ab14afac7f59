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

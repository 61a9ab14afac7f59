// The QMP control socket: its framing, and a migration scripted over it as one scripts QEMU's
// (parameters, capabilities, migrate, query-migrate until completed, MIGRATION events, quit).
// The same client runs against a real QEMU when one is installed.
import { describe, it, expect } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonObjects } from "../src/cli/qmp.js";
import { QmpClient } from "../bench/qmp-client.js";

const CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const QEMU = "/usr/bin/qemu-system-x86_64";

/** Runs pagewire; `output(pattern)` resolves with the first match of a line it printed (stdout or stderr). */
function start(args: string[]) {
  let out = "";
  const waiters: Array<() => void> = [];
  const child = execFile(process.execPath, [CLI, ...args], { timeout: 60_000 });
  const take = (d: string) => {
    out += d;
    waiters.splice(0).forEach((w) => w());
  };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const output = async (pattern: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const m = pattern.exec(out);
      if (m) return m;
      if (child.exitCode !== null) throw new Error(`pagewire ${args.join(" ")} exited before printing ${pattern}: ${out}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { child, exited, output };
}

/** The port a `listen --json` destination listens on, from its first document. */
const portOf = async (d: ReturnType<typeof start>) => Number((await d.output(/"port":(\d+)/))[1]);

/**
 * Connects to QEMU's socket. QEMU says nothing when it listens, and it creates the file before it
 * listens on it: retrying a refused connection for a few seconds is the only way to know.
 */
async function connectWhenListening(path: string): Promise<QmpClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await QmpClient.connect(path);
    } catch (error) {
      if (attempt > 250) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

describe("QMP framing", () => {
  it("splits a stream into JSON objects whatever the chunks, braces in strings included", () => {
    const text = '{"execute":"a","arguments":{"s":"}{\\"}"}}  {"execute":"b"}\r\n{"x":[{"y":1}]}';
    for (const size of [1, 2, 5, 13, text.length]) {
      const parser = new JsonObjects();
      const objects: string[] = [];
      for (let i = 0; i < text.length; i += size) objects.push(...parser.push(text.slice(i, i + size)));
      expect(objects.map((o) => JSON.parse(o))).toEqual([{ execute: "a", arguments: { s: '}{"}' } }, { execute: "b" }, { x: [{ y: 1 }] }]);
    }
  });
});

describe("a migration scripted over QMP", () => {
  it("follows QEMU's commands and answers on both sides", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-qmp-"));
    const destination = start(["listen", "--port", "0", "--json", "--qmp", `unix:${join(dir, "dst.sock")}`]);
    await destination.output(/QMP on /);
    const dst = await QmpClient.connect(join(dir, "dst.sock"));
    const source = start(["send", "--size", "32m", "--warmup-seconds", "0", "--dirty-rate", "5000", "--qmp", `unix:${join(dir, "src.sock")}`]);
    await source.output(/QMP on /);
    const src = await QmpClient.connect(join(dir, "src.sock"));
    try {
      expect(src.greeting.QMP.version.package).toMatch(/^pagewire /);
      expect(src.greeting.QMP.capabilities).toEqual([]);
      await expect(src.execute("query-migrate")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
      for (const c of [src, dst]) await c.execute("qmp_capabilities");
      await expect(src.execute("qmp_capabilities")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
      expect(await src.execute("query-migrate")).toEqual({}); // QEMU answers {} before a migration
      await src.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }, { capability: "multifd", state: true }] });
      await dst.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
      await src.execute("migrate-set-parameters", { "downtime-limit": 200, "max-bandwidth": 400e6, "multifd-channels": 2 });
      expect(await src.execute("query-migrate-parameters")).toMatchObject({ "downtime-limit": 200, "max-bandwidth": 400e6, "multifd-channels": 2 });
      await expect(src.execute("migrate-set-parameters", { "no-such-parameter": 1 })).rejects.toMatchObject({ errorClass: "GenericError" });
      await expect(src.execute("no-such-command")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
      await src.execute("migrate", { uri: `tcp:127.0.0.1:${await portOf(destination)}` });
      await src.event("MIGRATION", (d) => d.status === "completed");
      const info = (await src.execute("query-migrate")) as Record<string, unknown> & { ram: Record<string, number> };
      expect(info).toMatchObject({ status: "completed", "total-time": expect.any(Number), downtime: expect.any(Number), "setup-time": expect.any(Number) });
      expect(info.ram).toMatchObject({ total: 32 << 20, transferred: expect.any(Number), duplicate: expect.any(Number), normal: expect.any(Number), "dirty-sync-count": expect.any(Number) });
      expect(src.events.map((e) => e.data?.status)).toEqual(["setup", "active", "completed"]);
      await dst.event("MIGRATION", (d) => d.status === "completed");
      expect(await dst.execute("query-migrate")).toMatchObject({ status: "completed" });
      for (const c of [src, dst]) await c.execute("quit");
      expect(await source.exited).toBe(0);
      expect(await destination.exited).toBe(0);
    } finally {
      src.close();
      dst.close();
      source.child.kill();
      destination.child.kill();
    }
  });

  it("refuses migrate_cancel once post-copy is active, as QEMU does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-qmp-"));
    const destination = start(["listen", "--port", "0", "--json", "--once"]);
    const source = start(["send", "--size", "64m", "--warmup-seconds", "0", "--policy", "postcopy", "--bandwidth", "100mbit", "--qmp", `unix:${join(dir, "src.sock")}`]);
    await source.output(/QMP on /);
    const src = await QmpClient.connect(join(dir, "src.sock"));
    try {
      await src.execute("qmp_capabilities");
      await src.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
      await src.execute("migrate", { uri: `tcp:127.0.0.1:${await portOf(destination)}` });
      await src.event("MIGRATION", (d) => d.status === "postcopy-active");
      await expect(src.execute("migrate_cancel")).rejects.toThrow(/refused in postcopy-active/);
      await src.event("MIGRATION", (d) => d.status === "completed");
      await src.execute("quit");
      expect(await source.exited).toBe(0);
    } finally {
      src.close();
      source.child.kill();
      destination.child.kill();
    }
  });
});

describe.skipIf(!existsSync(QEMU))("the same client against QEMU", () => {
  it("negotiates, reads and sets migration parameters, and quits", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-qemu-"));
    const path = join(dir, "qmp.sock");
    const qemu = spawn(QEMU, ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", `unix:${path},server=on,wait=off`], { stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => qemu.once("exit", (code) => resolve(code)));
    const client = await connectWhenListening(path);
    try {
      expect(client.greeting.QMP.version.qemu.major).toBeGreaterThanOrEqual(7);
      await expect(client.execute("query-migrate")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
      await client.execute("qmp_capabilities");
      expect(await client.execute("query-migrate")).toEqual({});
      await client.execute("migrate-set-parameters", { "downtime-limit": 200, "multifd-channels": 2 });
      expect(await client.execute("query-migrate-parameters")).toMatchObject({ "downtime-limit": 200, "multifd-channels": 2 });
      await client.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
      await expect(client.execute("no-such-command")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
      await client.execute("quit");
      expect(await exited).toBe(0);
    } finally {
      client.close();
      qemu.kill();
    }
  });
});

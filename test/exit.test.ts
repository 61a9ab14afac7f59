// The README's two-process flow and a program embedding the library must end by themselves
// once the migration is done: nothing half-open, no thread left holding the process.
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startDestination } from "./peers.js";

const CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const FIXTURE = fileURLToPath(new URL("./fixtures/migrate-and-exit.mjs", import.meta.url));

/** Runs node with `args`; resolves with its exit code and output, or rejects if it is still running after 20 s. */
function run(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, args, { timeout: 20_000, killSignal: "SIGKILL" }, (_error, stdout) => {
      if (child.signalCode === "SIGKILL") reject(new Error(`node ${args.join(" ")} did not exit within 20 s`));
      else resolve({ code: child.exitCode, stdout });
    });
  });
}

describe("processes end when the migration is done", () => {
  it("pagewire send exits 0 against a long-running pagewire listen, which serves the next one too", async () => {
    const destination = await startDestination();
    try {
      for (let i = 0; i < 2; i++) {
        const completed = destination.next("completed");
        const send = await run([CLI, "send", "--to", `127.0.0.1:${destination.port}`, "--size", "16m"]);
        expect(send.code).toBe(0);
        expect(send.stdout).toMatch(/migration completed/);
        await completed;
      }
    } finally {
      destination.kill();
    }
  });

  it("a program that calls Source.migrate() and Listener.close() exits by itself", async () => {
    expect(await run([FIXTURE])).toEqual({ code: 0, stdout: "completed" });
  });
});

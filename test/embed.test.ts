// A real WebAssembly program from npm, migrated live between two processes: the Lua 5.4 VM of
// wasmoon, driven in slices, found dirty by hash, continued at the destination from its migrated
// memory; its result must equal a run that never moved (examples/lua-live/).
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const EXAMPLE = fileURLToPath(new URL("../examples/lua-live/migrate.mjs", import.meta.url));

describe("a real WebAssembly program migrated live", () => {
  it("Lua 5.4 (wasmoon) continues at the destination and ends with the result of a run that never moved", async () => {
    const report = await new Promise<Record<string, unknown>>((resolve, reject) => {
      execFile(process.execPath, [EXAMPLE, "--steps", "300", "--json"], { timeout: 120_000 }, (error, stdout) => (error && !stdout ? reject(error) : resolve(JSON.parse(stdout))));
    });
    expect(report).toMatchObject({ program: "Lua 5.4 (wasmoon)", equal: true });
    expect(Number(report["paused-at-step"])).toBeGreaterThan(0);
    expect(Number(report["paused-at-step"])).toBeLessThan(300);
    expect(Number(report["downtime-ms"])).toBeGreaterThan(0);
  });
});

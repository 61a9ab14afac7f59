// Real WebAssembly programs from npm, migrated live between two processes: the Lua 5.4 VM of
// wasmoon and the QuickJS engine of quickjs-emscripten, driven in slices, found dirty by hash,
// continued at the destination from their migrated memory; each result must equal a run that
// never moved (examples/wasm-live/).
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const EXAMPLE = fileURLToPath(new URL("../examples/wasm-live/migrate.mjs", import.meta.url));

describe("real WebAssembly programs migrated live", () => {
  for (const [program, name] of [["lua", "Lua 5.4 (wasmoon)"], ["quickjs", "QuickJS (quickjs-emscripten)"]]) {
    it(`${name} continues at the destination and ends with the result of a run that never moved`, async () => {
      const report = await new Promise<Record<string, unknown>>((resolve, reject) => {
        execFile(process.execPath, [EXAMPLE, "--program", program, "--steps", "200", "--json"], { timeout: 120_000 }, (error, stdout) => (error && !stdout ? reject(error) : resolve(JSON.parse(stdout))));
      });
      expect(report).toMatchObject({ program: name, equal: true });
      expect(Number(report["paused-at-step"])).toBeGreaterThan(0);
      expect(Number(report["paused-at-step"])).toBeLessThan(200);
    });
  }
});

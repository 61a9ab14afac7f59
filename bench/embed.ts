// `npm run bench -- embed`: what a live migration costs a real program from npm (the Lua 5.4 VM of
// wasmoon, the QuickJS engine of quickjs-emscripten; examples/wasm-live/), under the default policy
// and under early-stop: the program's rate before, during and after, the downtime it saw, the
// bytes sent. Each run also checks the program's result against a run that never moved.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { type Row, progress } from "./report.js";

export interface EmbedOptions {
  steps: number;
  repeats: number;
}

export const embedDefaults: EmbedOptions = { steps: 1200, repeats: 3 };
export const embedQuick: EmbedOptions = { steps: 300, repeats: 1 };

// In a clone, beside the sources; the example is not in the package.
const EXAMPLE = fileURLToPath(new URL("../../examples/wasm-live/migrate.mjs", import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function run(program: string, policy: string, steps: number): Promise<Record<string, number | string | boolean>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [EXAMPLE, "--program", program, "--policy", policy, "--steps", String(steps), "--json"], { timeout: 300_000 }, (error, stdout) =>
      error && !stdout ? reject(error) : resolve(JSON.parse(stdout)),
    );
  });
}

export async function runEmbed(o: EmbedOptions): Promise<Row[]> {
  if (!existsSync(EXAMPLE)) {
    progress("embed: the example (examples/wasm-live) is in a clone of the repository, not in the package");
    return [];
  }
  const rows: Row[] = [];
  for (const program of ["lua", "quickjs"]) {
    for (const policy of ["precopy", "early-stop"]) {
      progress(`${program} under ${policy}, ${o.repeats} runs`);
      const runs: Array<Record<string, number | string | boolean>> = [];
      for (let i = 0; i < o.repeats; i++) runs.push(await run(program, policy, o.steps));
      const m = (key: string) => median(runs.map((r) => Number(r[key])));
      const params = { program, policy, steps: o.steps };
      const name = String(runs[0].program);
      const equal = runs.every((r) => r.equal === true);
      rows.push({
        suite: "embed", id: "embed.downtime", params, samples: runs.map((r) => Number(r["downtime-ms"])),
        name: `${name}, ${policy}: downtime`, value: m("downtime-ms"), unit: "ms",
        note: `${m("bytes") / 1e3} kB sent in ${m("rounds")} rounds; the program's rate ${m("steps-per-second-before").toFixed(0)} steps/s before, ${m("steps-per-second-during").toFixed(0)} during, ${m("steps-per-second-after").toFixed(0)} after; ${equal ? "every result equals the unmoved run's" : "A RESULT DIFFERS from the unmoved run's"}`,
        target: { max: 300 },
      });
      rows.push({
        suite: "embed", id: "embed.rate-during", params, samples: runs.map((r) => Number(r["steps-per-second-during"])),
        name: `${name}, ${policy}: rate during the migration`, value: m("steps-per-second-during"), unit: "steps/s",
        baseline: { name: "its rate before", value: m("steps-per-second-before") },
      });
    }
  }
  return rows;
}

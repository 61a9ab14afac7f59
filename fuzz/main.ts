// `npm run fuzz -- TARGET... [--runs N] [--seed S]`: long fuzzing runs on demand (npm test runs a
// short pass). An input that crashes a target is kept in test/fuzz-corpus/TARGET/, where the test
// suite replays it from then on.
import { mkdirSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { TARGETS, FuzzCrash, mutator } from "./targets.js";

function valueOf(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

const argv = process.argv.slice(2);
const runs = Number(valueOf(argv, "--runs") ?? 1_000_000);
const seed = Number(valueOf(argv, "--seed") ?? Date.now() % 2 ** 31);
const names = argv.filter((a, i) => !a.startsWith("--") && !["--runs", "--seed"].includes(argv[i - 1]));
const chosen = names.length ? names : Object.keys(TARGETS);
const unknown = chosen.filter((n) => !(n in TARGETS));
if (unknown.length) {
  process.stderr.write(`unknown target ${unknown.join(", ")}: choose among ${Object.keys(TARGETS).join(", ")}\n`);
  process.exit(2);
}
let crashes = 0;

/** Keeps a crashing input where the test suite replays it, and says so. */
function keep(name: string, error: FuzzCrash, input: Uint8Array): void {
  crashes++;
  const bytes = error.input ?? input;
  const dir = new URL(`../../test/fuzz-corpus/${name}/`, import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL(`crash-${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}.bin`, dir);
  writeFileSync(file, bytes);
  process.stderr.write(`${name}: ${error.message.split("\n")[0]}; kept as ${file.pathname}\n`);
}

for (const name of chosen) {
  const target = TARGETS[name];
  const missing = target.unavailable?.();
  if (missing) {
    process.stderr.write(`${name}: skipped: ${missing}\n`);
    continue;
  }
  const seeds = target.seeds();
  const mutate = mutator(seed);
  const start = performance.now();
  let input = seeds[0];
  for (let i = 0; i <= runs; i++) {
    try {
      if (i === runs) {
        target.finish?.();
        break;
      }
      input = mutate(seeds[i % seeds.length], seeds);
      target.run(input);
    } catch (error) {
      if (!(error instanceof FuzzCrash)) throw error;
      keep(name, error, input);
    }
    if (i % 100_000 === 99_999) process.stderr.write(`${name}: ${i + 1} inputs, ${((i + 1) / ((performance.now() - start) / 1000)).toFixed(0)}/s\n`);
  }
  process.stdout.write(`${name}: ${runs} inputs from seed ${seed} in ${((performance.now() - start) / 1000).toFixed(1)} s\n`);
}
process.exitCode = crashes ? 1 : 0;

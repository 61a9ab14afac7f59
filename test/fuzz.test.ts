// A short fuzzing pass over every target (npm run fuzz runs long ones), and every input that
// ever crashed one, kept in test/fuzz-corpus/TARGET/.
import { describe, it, expect } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { TARGETS, mutator } from "../fuzz/targets.js";

const RUNS = 3000;

describe("fuzzing", () => {
  for (const [name, target] of Object.entries(TARGETS)) {
    const missing = target.unavailable?.();
    it.skipIf(missing !== undefined)(`${name}: ${RUNS} mutated inputs, and the kept ones, end in refusals only${missing ? ` (skipped: ${missing})` : ""}`, () => {
      const seeds = target.seeds();
      for (const seed of seeds) target.run(seed);
      const mutate = mutator(12345);
      for (let i = 0; i < RUNS; i++) target.run(mutate(seeds[i % seeds.length], seeds));
      const dir = new URL(`./fuzz-corpus/${name}/`, import.meta.url);
      const kept = existsSync(dir) ? readdirSync(dir) : [];
      for (const file of kept) target.run(new Uint8Array(readFileSync(new URL(file, dir))));
      target.finish?.();
      expect(seeds.length).toBeGreaterThan(0);
    });
  }
});

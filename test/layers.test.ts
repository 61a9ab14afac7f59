// The layers of docs/DESIGN.md, checked on the imports as they are: every import in src/ points
// down the table (or stays in its layer), and no file imports itself through others, in src/ or
// bench/.
import { describe, it, expect } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Bottom to top, as docs/DESIGN.md's table lists them (top first there). */
const LAYERS: Array<{ name: string; paths: string[] }> = [
  { name: "abi", paths: ["src/abi/", "src/errors.ts"] },
  { name: "runtime", paths: ["src/runtime/"] },
  { name: "memory", paths: ["src/memory/"] },
  { name: "core", paths: ["src/core/"] },
  { name: "workload", paths: ["src/workload/"] },
  { name: "wire", paths: ["src/wire/"] },
  { name: "channels", paths: ["src/transport/"] },
  { name: "policy", paths: ["src/policy/"] },
  { name: "migration", paths: ["src/migration/"] },
  { name: "checkpoint", paths: ["src/checkpoint/"] },
  { name: "job", paths: ["src/job/"] },
  { name: "face", paths: ["src/cli/", "src/index.ts"] },
];

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return files(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

/** The project files a file imports (type-only imports too: they are arrows of the design). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const found = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)].map((m) => m[1]);
  return found.map((spec) => relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, ".ts"));
}

function layerOf(file: string): number {
  const rank = LAYERS.findIndex((l) => l.paths.some((p) => (p.endsWith("/") ? file.startsWith(p) : file === p)));
  if (rank < 0) throw new Error(`${file} is in no layer of docs/DESIGN.md: add its folder to LAYERS and to the table`);
  return rank;
}

/** Every cycle of the import graph, as a path of files. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe("the layers", () => {
  const src = files("src");
  const graph = new Map([...src, ...files("bench")].map((f) => [f, importsOf(f)]));

  it("every file of src/ belongs to a layer, and imports only its own layer or those below", () => {
    const upward: string[] = [];
    for (const file of src) {
      for (const target of graph.get(file)!) {
        if (layerOf(target) > layerOf(file)) upward.push(`${file} (${LAYERS[layerOf(file)].name}) imports ${target} (${LAYERS[layerOf(target)].name})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("no file imports itself through others", () => {
    expect([...graph.values()].flat().length).toBeGreaterThan(100); // the imports were found
    expect(cycles(graph).map((c) => c.join(" → "))).toEqual([]);
  });

  it("finds an upward arrow and a cycle when there is one", () => {
    expect(layerOf("src/memory/region.ts")).toBeLessThan(layerOf("src/core/core.ts"));
    expect(cycles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]))).toEqual([["a", "b", "c", "a"]]);
  });
});

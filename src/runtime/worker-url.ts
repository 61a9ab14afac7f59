import { fileURLToPath } from "node:url";

/**
 * The URL of a compiled worker script next to `from` (an import.meta.url). Workers run compiled
 * JavaScript: when `from` is a TypeScript source (under vitest), the build in dist/ is used.
 */
export function workerUrl(name: string, from: string): URL {
  if (!from.endsWith(".ts")) return new URL(`./${name}.js`, from);
  const path = fileURLToPath(new URL(`./${name}.js`, from)).replace(/\/src\//, "/dist/src/");
  return new URL(`file://${path}`);
}

// Loads the compiled core once per thread and instantiates it on a shared memory.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CoreExports } from "./abi.js";
import { PagewireError } from "../errors.js";

let compiled: WebAssembly.Module | undefined;

/** build/core.wasm, found from this file whether it runs from src/ (vitest) or dist/src/. */
export function coreWasmPath(): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.includes("/dist/src/") ? new URL("../../../", import.meta.url) : new URL("../../", import.meta.url);
  return fileURLToPath(new URL("build/core.wasm", root));
}

function coreModule(): WebAssembly.Module {
  if (!compiled) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(readFileSync(coreWasmPath()));
    } catch {
      throw new PagewireError("ECORE", `the WASM core is not built (${coreWasmPath()} missing): run "npm run build"`);
    }
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}

/** A fresh instance of the core whose linear memory is `memory` (shared, imported). */
export function instantiateCore(memory: WebAssembly.Memory): CoreExports {
  const instance = new WebAssembly.Instance(coreModule(), { env: { memory } });
  return instance.exports as unknown as CoreExports;
}

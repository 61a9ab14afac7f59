// Loads compiled WASM modules (build/*.wasm) once per thread and instantiates them on a shared memory.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CoreExports } from "../abi/abi.js";
import { PagewireError } from "../errors.js";

const compiled = new Map<string, WebAssembly.Module>();

/** build/NAME.wasm, found from this file whether it runs from src/ (vitest) or dist/src/. */
export function wasmPath(name: string): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.includes("/dist/src/") ? new URL("../../../", import.meta.url) : new URL("../../", import.meta.url);
  return fileURLToPath(new URL(`build/${name}.wasm`, root));
}

/** A fresh instance of build/NAME.wasm whose linear memory is `memory` (shared, imported). */
export function instantiate<T>(name: string, memory: WebAssembly.Memory): T {
  let module = compiled.get(name);
  if (!module) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(readFileSync(wasmPath(name)));
    } catch {
      throw new PagewireError("ECORE", `the WASM module ${name} is not built (${wasmPath(name)} missing): run "npm run build"`);
    }
    module = new WebAssembly.Module(bytes);
    compiled.set(name, module);
  }
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as T;
}

/** A fresh instance of the core on `memory`. */
export function instantiateCore(memory: WebAssembly.Memory): CoreExports {
  return instantiate<CoreExports>("core", memory);
}

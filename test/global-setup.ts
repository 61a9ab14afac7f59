// Child processes and workers run the built dist/ and build/*.wasm while test bodies run the
// sources: a stale build would test old code without a word. Before any test, rebuild whatever is
// older than its sources (nothing, after `npm test`, which builds first).
import { execSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const mtime = (path: string) => (existsSync(path) ? statSync(path).mtimeMs : 0);

export default function setup(): void {
  const staleJs = files("src").some((ts) => ts.endsWith(".ts") && mtime(ts) > mtime(join("dist", ts.replace(/\.ts$/, ".js"))));
  const wasm = ["build/core.wasm", "build/core.debug.wasm", "build/workloads.wasm"];
  const oldestWasm = Math.min(...wasm.map(mtime));
  const staleWasm = files("assembly").some((ts) => mtime(ts) > oldestWasm);
  if (staleWasm) {
    process.stderr.write("global setup: build/*.wasm is older than assembly/: rebuilding it\n");
    execSync("npm run build:wasm --silent", { stdio: "inherit" });
  }
  if (staleJs) {
    process.stderr.write("global setup: dist/ is older than src/ (child processes and workers run it): rebuilding it\n");
    execSync("npm run build:ts --silent", { stdio: "inherit" });
  }
}

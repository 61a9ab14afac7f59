// The packed package, as a user gets it from npm: installed into a scratch project, with no
// build step and no network, used from plain JavaScript, its command run, and its types compiled
// by an ordinary strict Node project (lib ES2022, types node only).
import { describe, it, expect, beforeAll } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
let project: string;

const run = (command: string, args: string[], cwd = project) => execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), "pagewire-user-"));
  // Packed as built (npm test built it first): --ignore-scripts, or npm would rebuild.
  run(NPM, ["pack", "--ignore-scripts", "--pack-destination", project], ROOT);
  const tarball = readdirSync(project).find((f) => f.endsWith(".tgz"))!;
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user", private: true, type: "module" }));
  run(NPM, ["install", "--offline", "--no-audit", "--no-fund", `./${tarball}`]);
}, 120_000);

describe("the packed package", () => {
  it("holds the compiled core and no build tools", () => {
    const installed = join(project, "node_modules", "pagewire");
    expect(existsSync(join(installed, "build", "core.wasm"))).toBe(true);
    expect(existsSync(join(installed, "build", "workloads.wasm"))).toBe(true);
    expect(existsSync(join(project, "node_modules", "assemblyscript"))).toBe(false);
  });

  it("migrates from plain JavaScript, and its command runs", () => {
    writeFileSync(
      join(project, "migrate.mjs"),
      `import { Listener, Source, Region, stopCopy } from "pagewire";
const listener = new Listener({ secret: "s" });
const port = await listener.listen(0);
const region = Region.create({ pageCount: 256 });
region.pages(0, 256).fill(3);
const received = listener.next();
const stats = await new Source([region], { host: "127.0.0.1", port, secret: "s", policy: stopCopy() }).migrate();
const { regions } = await received;
await listener.close();
console.log(stats.status, regions[0].pages(255)[4095]);`,
    );
    expect(run(process.execPath, ["migrate.mjs"]).trim()).toBe("completed 3");
    const bin = join(project, "node_modules", ".bin", "pagewire");
    expect(run(bin, ["--version"]).trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(run(bin, ["send", "--help"])).toMatch(/--to HOST:PORT/);
  });

  it("type-checks in a strict Node project, and a misspelt event does not", () => {
    writeFileSync(
      join(project, "use.ts"),
      `import { Region, Source, Listener, precopy, PagewireError, type MigrationStats, type Received } from "pagewire";
const region = Region.create({ pageCount: 16 });
const source = new Source([region], { host: "::1", port: 7420, policy: precopy({ downtimeLimitMs: 50 }) });
source.on("progress", (p) => p.expectedDowntimeMs.toFixed(1));
// @ts-expect-error: no such event
source.on("progres", () => undefined);
const listener = new Listener();
listener.on("completed", (r: Received) => r.release());
export async function go(): Promise<MigrationStats | string> {
  try {
    return await source.migrate();
  } catch (e) {
    return e instanceof PagewireError ? \`\${e.code} \${e.number}\` : String(e);
  }
}
const memory: WebAssembly.Memory = region.memory;
void memory;`,
    );
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const flags = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--types", "node", "--typeRoots", join(ROOT, "node_modules", "@types"), "use.ts"];
    expect(() => run(process.execPath, [tsc, ...flags])).not.toThrow();
  });
});

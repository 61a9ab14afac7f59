// The package's version, read from its package.json (two levels above dist/src/cli/ and src/cli/).
import { readFileSync } from "node:fs";

function packageVersion(): string {
  for (const up of ["../../../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "pagewire" && pkg.version) return pkg.version;
    } catch {
      // Not there from this build's layout: try the other.
    }
  }
  return "unknown";
}

export const VERSION = packageVersion();

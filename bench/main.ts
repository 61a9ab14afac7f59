// `npm run bench -- SUITE... [--json] [--quick]`: runs benchmark suites and prints a table
// (or JSON with --json). Progress goes to stderr.
import { printTable, type Row } from "./report.js";
import { runCore, coreDefaults, coreQuick } from "./core.js";
import { runE2e, e2eDefaults, e2eQuick } from "./e2e.js";
import { runWorkloads, workloadDefaults, workloadQuick } from "./workloads.js";
import { runPolicies, policyDefaults, policyQuick, LINKS } from "./policies.js";
import { runListener, listenerDefaults, listenerQuick } from "./listener.js";
import { pathToFileURL } from "node:url";
import { parseSize } from "../src/cli/units.js";

/**
 * --quick, and for the policies suite --size SIZE, --runs N, --link NAME and --policies A,B,...
 * (the full run takes hours at 1 GiB).
 */
interface BenchOptions {
  quick: boolean;
  size?: number;
  runs?: number;
  link?: string;
  policies?: string[];
}

const SUITES: Record<string, (o: BenchOptions) => Row[] | Promise<Row[]>> = {
  core: (o) => runCore(o.quick ? coreQuick : coreDefaults),
  e2e: (o) => runE2e(o.quick ? e2eQuick : e2eDefaults),
  workloads: (o) => runWorkloads(o.quick ? workloadQuick : workloadDefaults),
  listener: (o) => runListener({ ...(o.quick ? listenerQuick : listenerDefaults), ...(o.size ? { bytes: o.size } : {}), ...(o.runs ? { migrations: o.runs } : {}) }),
  policies: (o) => {
    const base = o.quick ? policyQuick : policyDefaults;
    const links = o.link ? LINKS.filter((l) => (l.bandwidth ?? "uncapped") === o.link) : base.links;
    if (links.length === 0) throw new Error(`unknown link ${o.link}: say uncapped or 1gbit`);
    const unknown = o.policies?.filter((p) => !base.policies.includes(p)) ?? [];
    if (unknown.length > 0) throw new Error(`unknown policy ${unknown.join(", ")}: say some of ${base.policies.join(", ")}`);
    return runPolicies({ ...base, bytes: o.size ?? base.bytes, runs: o.runs ?? base.runs, links, policies: o.policies ?? base.policies });
  },
};

function valueOf(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runBench(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  const quick = argv.includes("--quick");
  const size = valueOf(argv, "--size");
  const runs = valueOf(argv, "--runs");
  const policies = valueOf(argv, "--policies")?.split(",");
  const options: BenchOptions = { quick, size: size ? parseSize(size) : undefined, runs: runs ? Number(runs) : undefined, link: valueOf(argv, "--link"), policies };
  const names = argv.filter((a, i) => !a.startsWith("--") && !["--size", "--runs", "--link", "--policies"].includes(argv[i - 1]));
  const unknown = names.filter((n) => !(n in SUITES));
  if (names.length === 0 || unknown.length > 0) {
    process.stderr.write(
      `${unknown.length ? `unknown suite: ${unknown.join(", ")}\n` : ""}usage: npm run bench -- SUITE... [--json] [--quick] [--size SIZE] [--runs N] [--link uncapped|1gbit] [--policies A,B,...]\nsuites: ${Object.keys(SUITES).join(", ")}\n`,
    );
    return 2;
  }
  const rows: Row[] = [];
  for (const name of names) {
    process.stderr.write(`${name}:\n`);
    rows.push(...(await SUITES[name](options)));
  }
  const meta = { date: new Date().toISOString(), node: process.version, ...options };
  process.stdout.write(json ? JSON.stringify({ ...meta, rows }, null, 2) + "\n" : printTable(rows) + "\n");
  return 0;
}

// Run as a script (npm run bench), or imported by `pagewire bench`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exitCode = await runBench(process.argv.slice(2));

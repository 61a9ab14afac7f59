// `npm run bench -- SUITE... [--json] [--quick]`: runs benchmark suites and prints a table
// (or JSON with --json). Progress goes to stderr.
import { printTable, type Row } from "./report.js";
import { runCore, coreDefaults, coreQuick } from "./core.js";
import { runE2e, e2eDefaults, e2eQuick } from "./e2e.js";
import { runWorkloads, workloadDefaults, workloadQuick } from "./workloads.js";

const SUITES: Record<string, (quick: boolean) => Row[] | Promise<Row[]>> = {
  core: (quick) => runCore(quick ? coreQuick : coreDefaults),
  e2e: (quick) => runE2e(quick ? e2eQuick : e2eDefaults),
  workloads: (quick) => runWorkloads(quick ? workloadQuick : workloadDefaults),
};

async function main(argv: string[]): Promise<void> {
  const json = argv.includes("--json");
  const quick = argv.includes("--quick");
  const names = argv.filter((a) => !a.startsWith("--"));
  const unknown = names.filter((n) => !(n in SUITES));
  if (names.length === 0 || unknown.length > 0) {
    process.stderr.write(
      `${unknown.length ? `unknown suite: ${unknown.join(", ")}\n` : ""}usage: npm run bench -- SUITE... [--json] [--quick]\nsuites: ${Object.keys(SUITES).join(", ")}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const rows: Row[] = [];
  for (const name of names) {
    process.stderr.write(`${name}:\n`);
    rows.push(...(await SUITES[name](quick)));
  }
  const meta = { date: new Date().toISOString(), node: process.version, quick };
  process.stdout.write(json ? JSON.stringify({ ...meta, rows }, null, 2) + "\n" : printTable(rows) + "\n");
}

await main(process.argv.slice(2));

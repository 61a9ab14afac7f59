#!/usr/bin/env node
// The pagewire command line. Exit status: 0 done, 1 failed, 2 bad usage, 130 interrupted.
import { listenCommand, LISTEN_HELP } from "./listen.js";
import { sendCommand, SEND_HELP } from "./send.js";
import { migrateCommand, MIGRATE_HELP } from "./migrate.js";
import { checkpointCommand, CHECKPOINT_HELP } from "./checkpoint.js";
import { restoreCommand, RESTORE_HELP } from "./restore.js";
import { jobCommand, JOB_HELP } from "./job.js";
import { PagewireError } from "../errors.js";
import { POLICIES } from "../policy/index.js";
import { VERSION } from "./version.js";

async function policiesCommand(): Promise<number> {
  for (const [name, entry] of Object.entries(POLICIES)) {
    process.stdout.write(`  ${name.padEnd(11)} ${entry.describe}\n${entry.parameters.length ? `  ${"".padEnd(11)} parameters: ${entry.parameters.join(", ")}\n` : ""}`);
  }
  return 0;
}

/** The benchmark harness, shipped in the package beside the commands (dist/bench/). */
async function benchCommand(argv: string[]): Promise<number> {
  const bench = (await import(new URL("../../bench/main.js", import.meta.url).href)) as { runBench(argv: string[]): Promise<number> };
  return bench.runBench(argv);
}

const HELP = `pagewire ${VERSION}: live migration of memory

${MIGRATE_HELP.split("\n")[0]}
${LISTEN_HELP.split("\n")[0]}
${SEND_HELP.split("\n")[0]}
${CHECKPOINT_HELP.split("\n")[0]}
${RESTORE_HELP.split("\n")[0]}
${JOB_HELP.split("\n")[0]}
pagewire policies             list the migration policies and their parameters
pagewire bench SUITE...       benchmarks: core, e2e, workloads, policies, listener (--help)
pagewire --version            the version

pagewire COMMAND --help shows a command's options.
Exit status: 0 done, 1 failed, 2 bad usage, 130 interrupted.`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  listen: listenCommand,
  send: sendCommand,
  migrate: migrateCommand,
  checkpoint: checkpointCommand,
  restore: restoreCommand,
  job: jobCommand,
  policies: policiesCommand,
  bench: benchCommand,
};

/** Errors of the user's making (a bad option) end with status 2; an interruption with 130; others 1. */
function statusOf(error: Error & { code?: string }): number {
  if (error.code === "EOPTION" || error.code?.startsWith("ERR_PARSE_ARGS")) return 2;
  if (error.code === "EABORTED") return 130;
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--version" || command === "-V") {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (!command || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(HELP + "\n");
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`pagewire: unknown command "${command}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    const e = error as Error & { code?: string };
    const status = statusOf(e);
    process.stderr.write(`\npagewire ${command}: ${e.message}\n`);
    if (status === 2) process.stderr.write(`(pagewire ${command} --help lists the options)\n`);
    // A stack trace only for what is neither ours nor the user's: a bug to report.
    else if (!(error instanceof PagewireError) && !e.code) process.stderr.write(`${e.stack}\n`);
    return status;
  }
}

process.exitCode = await main(process.argv.slice(2));

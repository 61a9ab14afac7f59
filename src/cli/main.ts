#!/usr/bin/env node
// The pagewire command line.
import { listenCommand, LISTEN_HELP } from "./listen.js";
import { sendCommand, SEND_HELP } from "./send.js";
import { migrateCommand, MIGRATE_HELP } from "./migrate.js";
import { PagewireError } from "../errors.js";
import { POLICIES } from "../policy/index.js";

async function policiesCommand(): Promise<number> {
  for (const [name, entry] of Object.entries(POLICIES)) {
    process.stdout.write(`  ${name.padEnd(11)} ${entry.describe}\n${entry.parameters.length ? `  ${"".padEnd(11)} parameters: ${entry.parameters.join(", ")}\n` : ""}`);
  }
  return 0;
}

const HELP = `pagewire: live migration of memory

${MIGRATE_HELP}

${LISTEN_HELP}

${SEND_HELP}

pagewire policies             list the migration policies and their parameters

Benchmarks: npm run bench -- core|e2e|workloads|policies [--json]`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  listen: listenCommand,
  send: sendCommand,
  migrate: migrateCommand,
  policies: policiesCommand,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
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
    const usage = e.code === "EOPTION" || e.code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`\npagewire ${command}: ${e.message}\n`);
    if (!(error instanceof PagewireError) && !usage) process.stderr.write(`${e.stack}\n`);
    return usage ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));

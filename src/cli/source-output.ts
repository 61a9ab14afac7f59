// What a source command prints when it ends: the tables, or the one JSON document.
import type { SourceResult } from "./source-run.js";
import type { SourceSettings } from "./settings.js";
import { sourceTable, workloadTable } from "./render.js";
import { document, errorFields, printDocument } from "./document.js";

/** Prints a source's result: the table, or the JSON document. */
export function printSourceResult(command: string, s: SourceSettings, result: SourceResult, destination?: object): void {
  if (s.json) {
    printDocument(document(command, "completed", { source: result.stats, destination, workload: result.workload, sha256: result.sha256 }));
    return;
  }
  process.stdout.write(`\nmigration completed\n${sourceTable(result.stats, result.guestBytes)}\n`);
  if (result.workload) process.stdout.write(`\n${workloadTable(result.workload, result.stats)}\n`);
  if (result.sha256) process.stdout.write(`\n  sha256  ${result.sha256}\n`);
}

/** Runs a source command; on failure with --json, the error is a document too. */
export async function withJsonErrors(command: string, json: boolean, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (error) {
    if (json) printDocument(document(command, "failed", errorFields(error)));
    throw error;
  }
}

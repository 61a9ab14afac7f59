// The one JSON document every command prints with --json, in the same shape everywhere: the
// library's own objects (MigrationStats on the source, Received's stats on the destination)
// under fixed keys, and on failure the error's stable code and number.
import { PagewireError } from "../errors.js";
import { VERSION } from "./version.js";

export interface CommandDocument {
  pagewire: string;
  command: string;
  status: "completed" | "failed" | "listening";
  [key: string]: unknown;
}

export function document(command: string, status: CommandDocument["status"], fields: Record<string, unknown> = {}): CommandDocument {
  return { pagewire: VERSION, command, status, ...fields };
}

/** An error as scripts read it: code and number (see the README's table), and the message. */
export function errorFields(error: unknown): { error: { code: string; number?: number; message: string } } {
  const e = error as Error & { code?: string };
  return { error: { code: e.code ?? "EINTERNAL", number: error instanceof PagewireError ? error.number : undefined, message: e.message } };
}

export function printDocument(doc: CommandDocument, compact = false): void {
  process.stdout.write((compact ? JSON.stringify(doc) : JSON.stringify(doc, null, 2)) + "\n");
}

// Runs a source from command-line options: builds the guest, starts its writers, migrates with
// a live progress line, and prints the result. Shared by `send` and `migrate`.
import { Source } from "../migration/source.js";
import type { MigrationStats } from "../migration/stats.js";
import { policyByName } from "../policy/index.js";
import { parseRate } from "../transport/token-bucket.js";
import { createGuest, startWriters } from "./guest.js";
import { parseSize, formatBytes } from "./units.js";
import { ProgressLine, progressText, sourceTable } from "./render.js";

export const sourceOptionSpec = {
  size: { type: "string", default: "1g" },
  "page-size": { type: "string", default: "4096" },
  "dirty-rate": { type: "string", default: "0" },
  channels: { type: "string", default: "1" },
  policy: { type: "string", default: "precopy" },
  "downtime-limit": { type: "string" },
  "max-rounds": { type: "string" },
  compress: { type: "boolean", default: false },
  delta: { type: "boolean", default: false },
  "delta-cache": { type: "string", default: "64m" },
  bandwidth: { type: "string" },
  secret: { type: "string", default: "" },
  seed: { type: "string", default: "1" },
  json: { type: "boolean", default: false },
} as const;

export async function runSource(host: string, port: number, o: Record<string, string | boolean | undefined>): Promise<{ stats: MigrationStats; guestBytes: number }> {
  const line = new ProgressLine();
  const quiet = o.json === true;
  const size = parseSize(String(o.size));
  const pageSize = parseSize(String(o["page-size"]));
  const seed = Number(o.seed);
  const prepareStart = performance.now();
  const regions = createGuest(
    { size, pageSize, deltaCacheBytes: o.delta ? parseSize(String(o["delta-cache"])) : 0, seed },
    (f) => line.show(`preparing a ${formatBytes(size)} guest of mixed pages: ${(f * 100).toFixed(0)}%`),
  );
  if (!quiet) line.log(`guest: ${formatBytes(size)} in ${regions.length} region(s), prepared in ${((performance.now() - prepareStart) / 1000).toFixed(1)} s`);
  const writers = startWriters(regions, Number(o["dirty-rate"]), seed);
  if (writers.length && !quiet) line.log(`writer threads dirty ${Number(o["dirty-rate"]).toLocaleString("en-US")} pages/s while the migration runs`);
  const policy = policyByName(String(o.policy), { "downtime-limit": o["downtime-limit"] as string | undefined, "max-rounds": o["max-rounds"] as string | undefined });
  const cancel = new AbortController();
  const abort = () => cancel.abort();
  process.once("SIGINT", abort);
  const source = new Source(regions, {
    signal: cancel.signal,
    host,
    port,
    secret: String(o.secret),
    channels: Number(o.channels),
    policy,
    compress: o.compress === true,
    delta: o.delta === true,
    bandwidth: o.bandwidth ? parseRate(String(o.bandwidth)) : undefined,
    hooks: {
      pause: () => Promise.all(writers.map((w) => w.pause())).then(() => undefined),
      resume: () => writers.forEach((w) => w.resume()),
      deviceState: () => new TextEncoder().encode(JSON.stringify({ writer: "dirty-writer", seed, written: writers.map((w) => w.written) })),
    },
  });
  source.on("progress", (p) => !quiet && line.show(progressText(p)));
  source.on("round", (r) => !quiet && line.log(`round ${r.round}${r.final ? " (paused)" : ""}: ${r.pages.toLocaleString("en-US")} pages, ${formatBytes(r.bytes)} in ${r.ms.toFixed(0)} ms`));
  try {
    const stats = await source.migrate();
    line.done();
    return { stats, guestBytes: size };
  } finally {
    process.off("SIGINT", abort);
    await Promise.all(writers.map((w) => w.stop()));
  }
}

export function printSource(result: { stats: MigrationStats; guestBytes: number }): void {
  process.stdout.write(`\nmigration completed\n${sourceTable(result.stats, result.guestBytes)}\n`);
}

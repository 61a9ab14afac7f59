// `pagewire send`: the source, migrating a synthetic guest to a listening destination.
import { parseArgs } from "node:util";
import { runSource, printSource, sourceOptionSpec } from "./source-run.js";
import { PagewireError } from "../errors.js";

export const GUEST_HELP = `  --size SIZE           guest memory (default 1g; over 2g it spans several regions)
  --page-size N         page size (default 4096)
  --dirty-rate N        pages per second that writer threads dirty during the migration (default 0)
  --workload NAME       run an HPC kernel on the guest instead: stencil, cg, fft, sort, ep, churn;
                        the destination continues it from the transferred state
  --free-mode MODE      churn: freed memory left dirty, zeroed, or hinted free (dirty|zero|hint)
  --warmup-seconds S    measure the guest's rate for S seconds before migrating (default 1)
  --channels N          TCP channels (default 1)
  --policy NAME         stop-copy | precopy | xen | early-stop | mplm | postcopy | hybrid (default precopy)
  --downtime-limit MS   precopy, hybrid: stop iterating when the rest fits in this pause (default 300)
  --max-rounds N        precopy, xen, early-stop: stop after this many rounds
  --param KEY[=VALUE]   any other policy parameter, repeatable: auto-converge, min-shrink=0.1,
                        slices=16, precopy-rounds=2, min-dirty-pages=50, max-factor=3
                        (see "pagewire policies")
  --compress            LZ4-compress pages that shrink
  --delta               send re-sent pages as XBZRLE deltas (--delta-cache, default 64m per region)
  --bandwidth RATE      cap the link, e.g. 1gbit or 500MB
  --secret S            shared secret (must match the destination's)
  --json                print the statistics as JSON`;

export const SEND_HELP = `pagewire send --to HOST:PORT [options]     migrate a synthetic guest (the source)
${GUEST_HELP}`;

export async function sendCommand(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({ args: argv, options: { ...sourceOptionSpec, to: { type: "string" } } });
  const m = /^(.*):(\d+)$/.exec(o.to ?? "");
  if (!m) throw new PagewireError("EOPTION", `--to HOST:PORT is required (got "${o.to ?? ""}")`);
  const result = await runSource(m[1], Number(m[2]), o);
  if (o.json) process.stdout.write(JSON.stringify(result.stats, null, 2) + "\n");
  else printSource(result);
  return 0;
}

// `pagewire send`: the source, migrating a synthetic guest (or a workload) to a listening destination.
import { parseArgs } from "node:util";
import { runSource } from "./source-run.js";
import { sourceOptionSpec, sourceSettings, parseAddress, readTls, tlsOptionSpec } from "./settings.js";
import { printSourceResult, withJsonErrors } from "./source-output.js";
import { sendWithQmp } from "./send-qmp.js";
import { PagewireError } from "../errors.js";

export const GUEST_HELP = `  --size SIZE           guest memory (default 1g; over 2g it spans several regions)
  --page-size SIZE      page size (default 4096)
  --dirty-rate N        pages per second that writer threads dirty during the migration (default 0)
  --workload NAME       run an HPC kernel on the guest instead: stencil, cg, fft, sort, ep, churn;
                        the destination continues it from the transferred state
  --free-mode MODE      churn: freed memory left dirty, zeroed, or hinted free (dirty|zero|hint)
  --warmup-seconds S    measure the guest's rate for S seconds before migrating (default 1)
  --channels N          TCP channels, 1 to 16 (default 1)
  --channel-threads     channels past the first each on a thread of its own that encodes and
                        sends (as QEMU's multifd); the first then carries control frames only
  --full-digest         hash all memory for the digest at the pause (default: only what changed
                        since each chunk's hash, as the dirty log says)
  --policy NAME         stop-copy | precopy | xen | early-stop | mplm | postcopy | hybrid (default precopy)
  --downtime-limit MS   precopy, hybrid: stop iterating when the pause would fit in this many ms
                        (its fixed costs included; default 300)
  --max-rounds N        precopy, xen, early-stop: stop after this many rounds
  --param KEY[=VALUE]   any other policy parameter, repeatable: auto-converge, halve-pause,
                        min-shrink=0.1, slices=16, precopy-rounds=2, min-dirty-pages=50, max-factor=3
                        (see "pagewire policies")
  --compress            LZ4-compress pages that shrink
  --delta               send re-sent pages as XBZRLE deltas (--delta-cache, default 64m per region)
  --bandwidth RATE      cap the link: 1gbit, 100mbit, 500MB (per second; decimal units)
  --secret S            shared secret; better --secret-file FILE (its first line) or the
                        PAGEWIRE_SECRET environment variable, which other users cannot read in ps
  --timeout S           cancel the migration if it has not completed within S seconds
  --reconnect N         when a connection breaks before the completion, reconnect up to N times
                        and continue from what the destination holds (default 0; post-copy too,
                        once the guest runs on the destination)
  --sha256              print a SHA-256 of the guest's memory at the pause, to compare with
                        the destination's (pagewire listen --sha256)
  --progress MODE       line (the default: lines on stderr, one kept live on a terminal), json
                        (JSON lines on stderr) or none (the default with --json)
  --json                print the result as one JSON document
  -h, --help            this help

Sizes are binary (k, m, g = KiB, MiB, GiB); rates are decimal (1gbit = 10^9 bit/s, 500MB = 5·10^8 B/s).
Exit status: 0 completed, 1 failed (the guest runs on here), 2 bad usage, 130 interrupted.`;

export const SEND_HELP = `pagewire send --to HOST:PORT [options]     migrate a synthetic guest (the source)
  --to HOST:PORT        the destination (pagewire listen); IPv6 as [::1]:7420
  --qmp unix:PATH       a QMP control socket (also tcp:HOST:PORT): set parameters, then migrate
                        uri=tcp:HOST:PORT (without --to), query-migrate, migrate_cancel, quit
  --from FILE...        migrate a checkpoint (a full one, then its layers in order) instead of a
                        synthetic guest; a workload in it continues at the destination
  --tls-ca FILE         every channel over TLS: the destination's certificate must chain to this
                        PEM (without it: the system's CAs)
  --tls-cert FILE       with --tls-key FILE: this source's certificate, for a destination that
                        asks for one (mutual TLS: pagewire listen --tls-ca)
${GUEST_HELP}`;

export async function sendCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...sourceOptionSpec, ...tlsOptionSpec, to: { type: "string" }, qmp: { type: "string" }, from: { type: "string", multiple: true } }, allowPositionals: true });
  if (values.help) {
    process.stdout.write(SEND_HELP + "\n");
    return 0;
  }
  const to = values.qmp && values.to === undefined ? undefined : parseAddress("to", values.to);
  // --from takes its layers after it too: --from base.ckpt layer1.ckpt
  const from = values.from ? [...values.from, ...positionals] : undefined;
  if (!from && positionals.length) throw new PagewireError("EOPTION", `unexpected argument "${positionals[0]}": options start with --`);
  const settings = { ...sourceSettings(values), tls: readTls(values, "source"), from };
  if (values.qmp) return sendWithQmp(values.qmp, settings, to);
  const { host, port } = to!;
  return withJsonErrors("send", settings.json, async () => {
    printSourceResult("send", settings, await runSource(host, port, settings));
    return 0;
  });
}

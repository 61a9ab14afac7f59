// `pagewire listen`: the destination. Receives migrations, verifies them, resumes the guest.
import { parseArgs } from "node:util";
import { Listener } from "../migration/listener.js";
import { Region } from "../memory/region.js";
import { Workload } from "../workload/workload.js";
import { PagewireError } from "../errors.js";
import { regionPages } from "./guest.js";
import { parseSize, formatBytes } from "./units.js";
import { destinationTable, ProgressLine } from "./render.js";
import { parseNumber, parsePort, parseProgress, readSecret, readTls, tlsOptionSpec, type ProgressMode } from "./settings.js";
import { sha256 } from "./source-run.js";
import { document, errorFields, printDocument } from "./document.js";
import { QmpServer } from "./qmp.js";
import { DestinationControl } from "./qmp-targets.js";

export const LISTEN_HELP = `pagewire listen [options]     receive migrations (the destination)
  --port N          TCP port (default 7420; 0 picks a free one)
  --host ADDR       address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  --secret S        shared secret the source must prove it knows; better --secret-file FILE or
                    the PAGEWIRE_SECRET environment variable, which other users cannot read in ps
  --size SIZE       hold a guest of this size now (pre-faulted) and accept only matching offers;
                    without it, memory is allocated for each offer
  --page-size SIZE  page size with --size (default 4096)
  --once            exit after one migration (status 0 if it completed)
  --sha256          print a SHA-256 of the received memory, to compare with the source's
                    (pagewire send --sha256), independently of the protocol's own digest
  --run-seconds S   a migrated workload continues here for S seconds (default 2), its rate
                    measured, then stops and its memory takes the next migration
  --idle-timeout S  drop a migration whose source sends nothing for S seconds, or whose broken
                    connection a reconnecting source did not replace within S (default 60)
  --max-memory SIZE most guest memory the migrations received at once may take (default 3/4 of
                    this host's); beyond it an offer is refused as busy
  --max-sessions N  most migrations received at once (default 8)
  --insecure        allow a non-loopback --host without a secret (anyone reaching it may migrate in)
  --tls-cert FILE   with --tls-key FILE: every channel over TLS, with this certificate (PEM)
  --tls-ca FILE     with TLS, every source must present a certificate that chains to this PEM
                    (mutual TLS; pagewire send --tls-cert, --tls-key)
  --progress MODE   line (the default; live on a terminal), json (JSON lines on stderr) or none
  --json            print one JSON document per migration (a line each)
  --qmp unix:PATH   a QMP control socket (also tcp:HOST:PORT): query-migrate, MIGRATION events
                    (capability events), quit
  -h, --help        this help`;

interface Listening {
  o: ReturnType<typeof options>;
  progress: ProgressMode;
  line: ProgressLine;
  report: (message: object) => void;
  text: boolean;
}

function options(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "7420" },
      host: { type: "string", default: "127.0.0.1" },
      secret: { type: "string" },
      "secret-file": { type: "string" },
      size: { type: "string" },
      "page-size": { type: "string", default: "4096" },
      once: { type: "boolean", default: false },
      sha256: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      progress: { type: "string" },
      ipc: { type: "boolean", default: false },
      "run-seconds": { type: "string", default: "2" },
      qmp: { type: "string" },
      "idle-timeout": { type: "string", default: "60" },
      "max-memory": { type: "string" },
      "max-sessions": { type: "string", default: "8" },
      insecure: { type: "boolean", default: false },
      ...tlsOptionSpec,
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}

export async function listenCommand(argv: string[]): Promise<number> {
  const o = options(argv);
  if (o.help) {
    process.stdout.write(LISTEN_HELP + "\n");
    return 0;
  }
  // Every option is checked before memory is allocated or the port is taken.
  const port = parsePort("port", o.port);
  const runSeconds = parseNumber("run-seconds", o["run-seconds"], { min: 0 });
  const idleTimeoutMs = parseNumber("idle-timeout", o["idle-timeout"], { min: 0.001 }) * 1000;
  const maxMemoryBytes = o["max-memory"] === undefined ? undefined : parseSize(o["max-memory"]);
  const maxSessions = parseNumber("max-sessions", o["max-sessions"], { min: 1, integer: true });
  const secret = readSecret(o);
  const tls = readTls(o, "destination");
  const pageSize = parseSize(o["page-size"]);
  const sizes = o.size ? regionPages(parseSize(o.size), pageSize) : undefined;
  const progress = o.ipc ? "none" : parseProgress(o.progress, o.json);
  // Started by pagewire migrate, which owns the terminal: a Ctrl-C there is its to handle (it
  // must not kill a post-copy guest here behind the source's back); it ends this process itself.
  if (o.ipc) process.on("SIGINT", () => undefined);
  const text = !o.json && !o.ipc;
  const ctx: Listening = {
    o,
    progress,
    line: new ProgressLine(),
    text,
    report: (message: object) => {
      if (o.ipc) process.send?.(message);
      else if (o.json) printDocument(message as Parameters<typeof printDocument>[0], true);
    },
  };
  const regions = sizes?.map((pageCount) => Region.create({ pageSize, pageCount }));
  regions?.forEach((r) => r.prefault());
  let continued: Promise<void> = Promise.resolve();
  const listener = new Listener({
    secret,
    regions,
    zeroed: true,
    idleTimeoutMs,
    maxMemoryBytes,
    maxSessions,
    insecure: o.insecure,
    tls,
    hooks: {
      // A workload's state is checked field by field before done: a bad one leaves the source running.
      checkDeviceState: (state, received) => {
        if (Workload.isState(state)) Workload.check(received[0], state);
      },
      resume: (state, received) => {
        if (!Workload.isState(state)) {
          if (text) ctx.line.log(`guest resumed here with ${formatBytes(state.length)} of device state`);
          return;
        }
        continued = continueWorkload(ctx, received, state, runSeconds);
      },
    },
  });
  try {
    await listener.listen(port, o.host);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === "EADDRINUSE" ? "the port is in use: choose another with --port" : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" ? "that is not an address of this host: check --host" : e.message;
    throw new PagewireError("ELISTEN", `cannot listen on ${o.host}:${port}: ${why}`);
  }
  let quit!: () => void;
  const quitting = new Promise<{ quit: true }>((resolve) => (quit = () => resolve({ quit: true })));
  let qmp: QmpServer | undefined;
  if (o.qmp) {
    const control: DestinationControl = new DestinationControl(listener, (name, data) => qmp!.event(name, data));
    control.quit = quit;
    qmp = new QmpServer(control);
    await qmp.listen(o.qmp);
    process.stderr.write(`QMP on ${qmp.address}\n`);
  }
  const bound = listener.port;
  ctx.report(o.ipc ? { type: "listening", port: bound } : document("listen", "listening", { host: o.host, port: bound }));
  if (text) ctx.line.log(`listening on ${o.host}:${bound}${o.size ? ` with a ${formatBytes(parseSize(o.size))} guest` : ""}${tls ? " over TLS" : ""}${secret ? "" : " (no secret: anyone who can reach this port may migrate into it)"}`);
  // For tests that synchronise on the destination's progress.
  if (o.ipc) listener.on("round-end", (e) => ctx.report({ type: "round-end", ...e }));
  listener.on("refused", (error: Error) => {
    if (o.ipc) ctx.report({ type: "refused", message: error.message });
    if (text) ctx.line.log(`refused a connection: ${error.message}`);
  });
  const ticker = progress === "none" ? undefined : setInterval(() => showProgress(ctx, listener), 200);
  ticker?.unref();
  try {
    for (;;) {
      const outcome = await Promise.race([
        listener.next().then(
          (received) => ({ received }),
          (error: Error) => ({ error }),
        ),
        quitting,
      ]);
      if ("quit" in outcome) return 0;
      ctx.line.done();
      if ("error" in outcome) {
        if (o.ipc) ctx.report({ type: "failed", message: outcome.error.message });
        else if (o.json) ctx.report(document("listen", "failed", errorFields(outcome.error)));
        if (text) process.stderr.write(`migration failed: ${outcome.error.message}\n`);
        if (o.once) return 1;
        continue;
      }
      const { received } = outcome;
      const digest = o.sha256 ? sha256(received.regions) : undefined;
      if (o.ipc) {
        ctx.report({ type: "completed", stats: received.stats, migrationId: received.migrationId, sha256: digest, deviceState: Buffer.from(received.deviceState).toString("base64") });
      } else if (o.json) {
        ctx.report(document("listen", "completed", { migrationId: received.migrationId, destination: received.stats, sha256: digest }));
      }
      if (text) process.stdout.write(`migration completed\n${destinationTable(received)}\n${digest ? `  sha256        ${digest}\n` : ""}`);
      // Nothing runs on plain guest memory here: the next migration may reuse it. A workload's
      // memory is the listener's again once the workload has stopped (until then offers for a
      // fixed memory are refused as busy).
      if (!Workload.isState(received.deviceState)) received.release();
      else {
        continued.then(
          () => received.release(),
          (error: Error) => {
            process.stderr.write(`the migrated workload failed here: ${error.message}\n`);
            received.release();
          },
        );
      }
      if (o.once) {
        await continued;
        return 0;
      }
    }
  } finally {
    if (ticker) clearInterval(ticker);
    await qmp?.close();
    await listener.close();
  }
}

/** The destination's progress: a line per migration being received, or JSON lines. */
function showProgress(ctx: Listening, listener: Listener): void {
  for (const p of listener.active()) {
    const seconds = (performance.now() - p.startedAt) / 1000;
    const rate = p.received / 1e6 / Math.max(0.001, seconds);
    if (ctx.progress === "json") process.stderr.write(JSON.stringify({ type: "progress", ...p, rate }) + "\n");
    else ctx.line.show(`receiving from ${p.peer}: ${formatBytes(p.received)}, ${rate.toFixed(0)} MB/s, ${p.pages.toLocaleString("en-US")} pages, round ${p.rounds + 1}`);
  }
}

/** A workload continues here from its migrated state; with --once, measured for a while, then stopped. */
function continueWorkload(ctx: Listening, regions: Region[], state: Uint8Array, runSeconds: number): Promise<void> {
  const { workload, header } = Workload.resumeFrom(regions[0], state);
  if (ctx.text) ctx.line.log(`workload ${header.kernel} resumed here at iteration ${header.iterations}`);
  return (async () => {
    await workload.ready;
    while (workload.firstStepAt === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    const start = { steps: workload.steps, at: performance.now() };
    await new Promise((resolve) => setTimeout(resolve, runSeconds * 1000));
    const rate = ((workload.steps - start.steps) * 1000) / (performance.now() - start.at);
    const message = { type: "workload", kernel: header.kernel, firstStepAt: workload.firstStepAt, after: rate, iterations: workload.iterations };
    await workload.stop();
    if (ctx.o.ipc) ctx.report(message);
    if (ctx.text) ctx.line.log(`workload ${header.kernel}: ${rate.toFixed(1)} steps/s here`);
  })();
}



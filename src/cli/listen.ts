// `pagewire listen`: the destination. Receives migrations, verifies them, resumes the guest.
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { Listener } from "../migration/listener.js";
import { Region } from "../memory/region.js";
import { regionPages } from "./guest.js";
import { parseSize, formatBytes } from "./units.js";
import { destinationTable } from "./render.js";
import { Workload } from "../workload/workload.js";

function isWorkloadState(state: Uint8Array): boolean {
  try {
    Workload.parse(state);
    return true;
  } catch {
    return false;
  }
}

export const LISTEN_HELP = `pagewire listen [options]     receive migrations (the destination)
  --port N          TCP port (default 7420; 0 picks a free one)
  --host ADDR       address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --secret S        shared secret the source must prove it knows
  --size SIZE       hold a guest of this size now (pre-faulted) and accept only matching offers;
                    without it, memory is allocated for each offer
  --page-size N     page size with --size (default 4096)
  --once            exit after one migration (status 0 if it completed)
  --sha256          print a SHA-256 of the received memory, to check it against the source
                    independently of the protocol's own digest
  --run-seconds S   a migrated workload continues here; with --once, measure it for S seconds
                    (default 2), then stop
  --json            print results as JSON lines`;

function sha256(regions: Region[]): string {
  const hash = createHash("sha256");
  for (const r of regions) hash.update(r.pages(0, r.pageCount));
  return hash.digest("hex");
}

export async function listenCommand(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "7420" },
      host: { type: "string", default: "127.0.0.1" },
      secret: { type: "string", default: "" },
      size: { type: "string" },
      "page-size": { type: "string", default: "4096" },
      once: { type: "boolean", default: false },
      sha256: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      ipc: { type: "boolean", default: false },
      "run-seconds": { type: "string", default: "2" },
    },
  });
  let continued: Promise<void> = Promise.resolve();
  const pageSize = parseSize(o["page-size"]);
  const regions = o.size ? regionPages(parseSize(o.size), pageSize).map((pageCount) => Region.create({ pageSize, pageCount })) : undefined;
  regions?.forEach((r) => r.prefault());
  const report = (message: object) => {
    if (o.ipc) process.send?.(message);
    else if (o.json) process.stdout.write(JSON.stringify(message) + "\n");
  };
  const listener = new Listener({
    secret: o.secret,
    regions,
    zeroed: true,
    hooks: {
      resume: (state, regions) => {
        if (!isWorkloadState(state)) {
          if (!o.json && !o.ipc) process.stdout.write(`guest resumed here with ${formatBytes(state.length)} of device state\n`);
          return;
        }
        // A workload: it keeps computing here, from the state it had when the source paused it.
        const { workload, header } = Workload.resumeFrom(regions[0], state);
        if (!o.json && !o.ipc) process.stdout.write(`workload ${header.kernel} resumed here at iteration ${header.iterations}\n`);
        continued = (async () => {
          if (!o.once) return;
          await workload.ready;
          while (workload.firstStepAt === 0) await new Promise((resolve) => setTimeout(resolve, 1));
          const start = { steps: workload.steps, at: performance.now() };
          await new Promise((resolve) => setTimeout(resolve, Number(o["run-seconds"]) * 1000));
          const rate = ((workload.steps - start.steps) * 1000) / (performance.now() - start.at);
          const message = { type: "workload", kernel: header.kernel, firstStepAt: workload.firstStepAt, after: rate, iterations: workload.iterations };
          await workload.stop();
          report(message);
          if (!o.json && !o.ipc) process.stdout.write(`workload ${header.kernel}: ${rate.toFixed(1)} steps/s here\n`);
        })();
      },
    },
  });
  const port = await listener.listen(Number(o.port), o.host);
  report({ type: "listening", port });
  if (!o.json && !o.ipc) process.stdout.write(`listening on ${o.host}:${port}${regions ? ` with a ${o.size} guest` : ""}\n`);
  // For tests that synchronise on the destination's progress.
  if (o.ipc) listener.on("round-end", (e) => report({ type: "round-end", ...e }));
  listener.on("refused", (error: Error) => {
    report({ type: "refused", message: error.message });
    if (!o.json && !o.ipc) process.stderr.write(`refused a connection: ${error.message}\n`);
  });
  for (;;) {
    try {
      const received = await listener.next();
      const digest = o.sha256 ? sha256(received.regions) : undefined;
      report({ type: "completed", stats: received.stats, migrationId: received.migrationId, sha256: digest, deviceState: Buffer.from(received.deviceState).toString("base64") });
      if (!o.json && !o.ipc) process.stdout.write(`migration completed\n${destinationTable(received)}\n${digest ? `  sha256  ${digest}\n` : ""}`);
      // Nothing runs on plain guest memory here: the next migration may reuse it.
      if (!isWorkloadState(received.deviceState)) received.release();
      if (o.once) {
        await continued;
        await listener.close();
        return 0;
      }
    } catch (error) {
      report({ type: "failed", message: (error as Error).message });
      if (!o.json && !o.ipc) process.stderr.write(`migration failed: ${(error as Error).message}\n`);
      if (o.once) {
        await listener.close();
        return 1;
      }
    }
  }
}

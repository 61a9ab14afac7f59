// `pagewire restore`: a checkpoint chain back into memory, its digest checked; a workload in it
// continues for a while, measured.
import { parseArgs } from "node:util";
import { restore } from "../checkpoint/restore.js";
import { Workload } from "../workload/workload.js";
import { PagewireError } from "../errors.js";
import { parseNumber } from "./settings.js";
import { sha256 } from "./source-run.js";
import { document, printDocument } from "./document.js";
import { withJsonErrors } from "./source-output.js";
import { table } from "./render.js";
import { formatBytes, formatMs } from "./units.js";

export const RESTORE_HELP = `pagewire restore FILE [LAYER...] [options]     restore a checkpoint, checked, into memory
  FILE [LAYER...]       a full checkpoint, then the layers over it, in order
  --sha256              print a SHA-256 of the restored memory
  --run-seconds S       a workload in the checkpoint continues for S seconds, measured (default 1;
                        0: do not run it)
  --json                print the result as one JSON document
  -h, --help            this help
Exit status: 0 restored, 1 refused (the message says which file and why), 2 bad usage.`;

export async function restoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { sha256: { type: "boolean", default: false }, "run-seconds": { type: "string", default: "1" }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(RESTORE_HELP + "\n");
    return 0;
  }
  if (positionals.length === 0) throw new PagewireError("EOPTION", "pagewire restore FILE [LAYER...]: name the checkpoint");
  const runSeconds = parseNumber("run-seconds", values["run-seconds"], { min: 0 });
  return withJsonErrors("restore", values.json, async () => {
    const start = performance.now();
    const restored = await restore(positionals);
    const restoreMs = performance.now() - start;
    const bytes = restored.regions.reduce((n, r) => n + r.pageCount * r.pageSize, 0);
    const digest = values.sha256 ? sha256(restored.regions) : undefined;
    let workload: { kernel: string; from: number; to: number; rate: number } | undefined;
    if (runSeconds > 0 && Workload.isState(restored.deviceState)) {
      const { workload: w, header } = Workload.resumeFrom(restored.regions[0], restored.deviceState);
      await w.ready;
      await new Promise((resolve) => setTimeout(resolve, runSeconds * 1000));
      await w.stop();
      workload = { kernel: header.kernel, from: header.iterations, to: w.iterations, rate: w.steps / runSeconds };
    }
    const result = { files: positionals, "restore-time": restoreMs, bytes, mbps: bytes / 1e6 / (restoreMs / 1000), "device-state-bytes": restored.deviceState.length, workload, sha256: digest };
    if (values.json) printDocument(document("restore", "completed", result));
    else {
      const rows: Array<[string, string]> = [
        ["restored", `${positionals.join(" + ")}: ${formatBytes(bytes)} in ${formatMs(restoreMs)} (${result.mbps.toFixed(0)} MB/s), digest checked`],
        ["device state", formatBytes(restored.deviceState.length)],
      ];
      if (workload) rows.push(["workload", `${workload.kernel} continued from iteration ${workload.from} to ${workload.to}, ${workload.rate.toFixed(1)} steps/s`]);
      if (digest) rows.push(["sha256", digest]);
      process.stdout.write(`${table(rows)}\n`);
    }
    return 0;
  });
}

// `pagewire checkpoint`: a live checkpoint of a guest into a file (docs/CHECKPOINT.md), or, with
// --base, a layer over a checkpoint: the guest is restored from it, runs a while, and the layer
// holds what it dirtied.
import { parseArgs } from "node:util";
import { Checkpoint, type CheckpointStats } from "../checkpoint/checkpoint.js";
import { PagewireError } from "../errors.js";
import { sourceOptionSpec, sourceSettings, parseNumber } from "./settings.js";
import { startCheckpointGuest, startSyntheticGuest, startWorkloadGuest } from "./running-guest.js";
import { ProgressReport, sha256 } from "./source-run.js";
import { withJsonErrors } from "./source-output.js";
import { document, printDocument } from "./document.js";
import { table } from "./render.js";
import { formatBytes, formatCount, formatMs } from "./units.js";

export const CHECKPOINT_HELP = `pagewire checkpoint --to FILE [options]     checkpoint a guest, live, into a file
  --to FILE             the checkpoint (written as FILE.partial, renamed once complete)
  --base FILE...        write a layer over this checkpoint (a full one, then its layers in order):
                        the guest is restored from it, runs --run-seconds, and the layer holds
                        the pages it dirtied
  --run-seconds S       with --base: how long the restored guest runs first (default 1)
  --size, --page-size, --dirty-rate, --workload, --free-mode, --warmup-seconds, --seed
                        the guest, as for pagewire send (without --base)
  --policy, --downtime-limit, --max-rounds, --param
                        when to stop the live rounds, as for pagewire send (not post-copy)
  --channels N          writers in parallel (default 2)
  --sha256              print a SHA-256 of the guest's memory at the pause
  --progress MODE, --json, -h, --help   as for pagewire send
Exit status: 0 written, 1 failed (no file is left, the guest ran on), 2 bad usage.`;

export async function checkpointCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...sourceOptionSpec, channels: { type: "string", default: "2" }, to: { type: "string" }, base: { type: "string", multiple: true }, "run-seconds": { type: "string", default: "1" } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(CHECKPOINT_HELP + "\n");
    return 0;
  }
  if (typeof values.to !== "string") throw new PagewireError("EOPTION", "--to FILE: where the checkpoint goes");
  const base = values.base ? [...values.base, ...positionals] : undefined;
  if (!base && positionals.length) throw new PagewireError("EOPTION", `unexpected argument "${positionals[0]}": options start with --`);
  const s = sourceSettings(values);
  if (s.policyName === "postcopy" || s.policyName === "hybrid") throw new PagewireError("EOPTION", `--policy ${s.policyName}: a checkpoint cannot use post-copy; choose precopy, stop-copy, xen, early-stop or mplm`);
  const runMs = parseNumber("run-seconds", String(values["run-seconds"]), { min: 0 }) * 1000;
  const to = values.to;
  return withJsonErrors("checkpoint", s.json, async () => {
    const out = new ProgressReport(s.progress);
    const guest = base ? await startCheckpointGuest(base, s.dirtyRate, s.seed) : s.workload ? await startWorkloadGuest(s) : startSyntheticGuest(s, () => undefined);
    try {
      out.log(`guest: ${formatBytes(guest.regions.reduce((n, r) => n + r.pageCount * r.pageSize, 0))}; ${guest.describe}`);
      await guest.rate(base ? runMs : s.warmupMs, (r) => out.show(`${guest.describe}: ${r.toFixed(1)} ${guest.unit}/s`));
      let atPause: string | undefined;
      const checkpoint = new Checkpoint(guest.regions, {
        path: to,
        policy: s.policy,
        channels: s.channels,
        base: guest.checkpoint,
        stayPaused: true,
        hooks: {
          ...guest.hooks,
          pause: async () => {
            await guest.hooks.pause?.();
            if (s.sha256) atPause = sha256(guest.regions);
          },
        },
      });
      checkpoint.on("round", (r) => out.log(`round ${r.round}${r.phase === "live" ? "" : ` (${r.phase})`}: ${formatCount(r.pages)} pages, ${formatBytes(r.bytes)} in ${r.ms.toFixed(0)} ms`, { type: "round", ...r }));
      const { stats } = await checkpoint.write();
      out.done();
      if (s.json) printDocument(document("checkpoint", "completed", { file: to, checkpoint: stats, sha256: atPause }));
      else process.stdout.write(`\ncheckpoint written: ${to}\n${checkpointTable(stats)}\n${atPause ? `  sha256        ${atPause}\n` : ""}`);
      return 0;
    } finally {
      await guest.stop();
    }
  });
}

function checkpointTable(s: CheckpointStats): string {
  return table([
    ["kind", s.layer ? "layer (pages dirtied since its base)" : "full"],
    ["policy", `${s.policy.name}: ${s.policy["stop-reason"]}`],
    ["total time", formatMs(s["total-time"])],
    ["downtime", formatMs(s.downtime)],
    ["rounds", String(s.rounds)],
    ["written", `${formatCount(s.pages)} pages, ${formatBytes(s["bytes-written"])} (${s.mbps.toFixed(0)} MB/s)`],
    ["file", `${formatBytes(s["file-bytes"])}, ${formatBytes(s["disk-bytes"])} on disk`],
    ["device state", formatBytes(s["device-state-bytes"])],
  ]);
}

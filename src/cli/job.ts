// `pagewire job`: a job of several guests (ranks) on rank hosts, migrated or checkpointed with one
// coordinated pause (src/job/coordinator.ts). The plan file names each rank's host (and where it
// goes, and its checkpoint file), so one coordinator drives ranks spread over several machines.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { RankHost } from "../job/rank-host.js";
import { JobCoordinator, type JobPlan } from "../job/coordinator.js";
import { PagewireError } from "../errors.js";
import { parseNumber, parsePort } from "./settings.js";
import { parseSize } from "./units.js";
import { document, printDocument } from "./document.js";
import { withJsonErrors } from "./source-output.js";

export const JOB_HELP = `pagewire job COMMAND --plan FILE [options]     a job of several guests, coordinated
  host [--port N] [--host ADDR]   run a rank host here (one per rank and machine; it prints its port)
  start --size SIZE               start fresh ranks on the plan's hosts (each rank SIZE of memory)
  migrate                         move every rank to its "to" host with one coordinated pause;
                                  all or nothing: if one fails, every rank runs on where it was
  checkpoint                      every rank into its "checkpoint" file, one pause; the job runs on
  restart                         the ranks from their checkpoint files, on the plan's hosts
  status                          every rank's iteration and the job's total at it
  --plan FILE     JSON: {"ranks": [{"host": "HOST:PORT", "to": "HOST:PORT", "checkpoint": "FILE"}, ...]}
  --margin N      iterations ahead at which every rank parks (default: what the job does in
                  100 ms, measured, plus 3)
  --ready-timeout S   longest wait for every rank's policy to agree before pausing anyway (default 30)
  --json          print one JSON document
Exit status: 0 done (migrate, checkpoint: committed), 1 failed or aborted, 2 bad usage.`;

function readPlan(path: string | undefined): JobPlan {
  if (!path) throw new PagewireError("EOPTION", "--plan FILE: the job's plan (see pagewire job --help)");
  let plan: JobPlan;
  try {
    plan = JSON.parse(readFileSync(path, "utf8")) as JobPlan;
  } catch (error) {
    throw new PagewireError("EOPTION", `--plan "${path}": cannot read it as JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(plan.ranks) || plan.ranks.length === 0 || plan.ranks.some((r) => typeof r.host !== "string")) {
    throw new PagewireError("EOPTION", `--plan "${path}": write {"ranks": [{"host": "HOST:PORT", ...}, ...]}`);
  }
  return plan;
}

export async function jobCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      plan: { type: "string" }, size: { type: "string" }, port: { type: "string", default: "0" }, host: { type: "string", default: "127.0.0.1" },
      margin: { type: "string" }, "ready-timeout": { type: "string", default: "30" }, json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || !command || command === "--help" || command === "-h") {
    process.stdout.write(JOB_HELP + "\n");
    return command ? 0 : 2;
  }
  if (command === "host") {
    const host = new RankHost();
    const port = await host.listen(parsePort("port", values.port), values.host);
    if (process.send) process.send({ type: "listening", port });
    else process.stdout.write(`rank host listening on ${values.host}:${port}\n`);
    await new Promise(() => undefined); // until killed, or told to quit
  }
  const plan = readPlan(values.plan);
  const options = { margin: values.margin === undefined ? undefined : parseNumber("margin", values.margin, { min: 2, integer: true }), readyTimeoutMs: parseNumber("ready-timeout", values["ready-timeout"], { min: 0 }) * 1000 };
  const coordinator = new JobCoordinator(plan);
  if (!values.json) coordinator.on("progress", (m) => process.stderr.write(`${m}\n`));
  return withJsonErrors(`job ${command}`, values.json, async () => {
    let result: Record<string, unknown>;
    switch (command) {
      case "start":
        if (!values.size) throw new PagewireError("EOPTION", "job start --size SIZE: each rank's memory");
        await coordinator.start(parseSize(values.size));
        result = { ranks: plan.ranks.length };
        break;
      case "status":
        result = { ranks: await coordinator.status() };
        break;
      case "restart":
        await coordinator.restart();
        result = { ranks: plan.ranks.length };
        break;
      case "migrate":
      case "checkpoint": {
        const outcome = command === "migrate" ? await coordinator.migrate(options) : await coordinator.checkpoint(options);
        if (values.json) printDocument(document(`job ${command}`, outcome.outcome === "committed" ? "completed" : "failed", { ...outcome }));
        else process.stdout.write(`${command} ${outcome.outcome}${outcome.pausedAt ? ` (paused at iteration ${outcome.pausedAt}: ${outcome.pauseRule})` : ""}${outcome.reason ? `: ${outcome.reason}` : ""}\n`);
        return outcome.outcome === "committed" ? 0 : 1;
      }
      default:
        throw new PagewireError("EOPTION", `unknown job command "${command}": host, start, migrate, checkpoint, restart, status`);
    }
    if (values.json) printDocument(document(`job ${command}`, "completed", result));
    else process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  });
}

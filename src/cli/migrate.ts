// `pagewire migrate`: a real migration between two processes on this host: it starts a
// destination (`pagewire listen --once`) as a child process and migrates a guest into it.
import { parseArgs } from "node:util";
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runSource } from "./source-run.js";
import { GUEST_HELP } from "./send.js";
import { printSourceResult, withJsonErrors } from "./source-output.js";
import { sourceOptionSpec, sourceSettings } from "./settings.js";
import { PagewireError } from "../errors.js";

export const MIGRATE_HELP = `pagewire migrate [options]     migrate a guest between two processes on this host
${GUEST_HELP}`;

type ChildMessage =
  | { type: "listening"; port: number }
  | { type: "completed"; stats: object; sha256?: string }
  | { type: "workload"; firstStepAt: number; after: number }
  | { type: "failed"; message: string }
  | { type: "refused"; message: string };

function waitFor<T extends ChildMessage["type"]>(child: ChildProcess, type: T): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ChildMessage) => {
      if (m.type === type) {
        cleanup();
        resolve(m as Extract<ChildMessage, { type: T }>);
      } else if (m.type === "failed") {
        cleanup();
        reject(new PagewireError("EDESTINATION", `the destination failed: ${m.message}`));
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new PagewireError("EDESTINATION", `the destination process exited (status ${code}) before it reported ${type}`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: sourceOptionSpec });
  if (values.help) {
    process.stdout.write(MIGRATE_HELP + "\n");
    return 0;
  }
  // Every option is checked before the destination starts or memory is allocated.
  const settings = sourceSettings(values);
  return withJsonErrors("migrate", settings.json, () => migrate(settings));
}

async function migrate(settings: ReturnType<typeof sourceSettings>): Promise<number> {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  // The destination holds (and pre-faults) the guest's memory before the source connects, as a
  // QEMU destination started with -mem-prealloc does; it does so while the source prepares. The
  // secret reaches it through its environment, which other users cannot read (ps shows argv).
  const args = ["listen", "--port", "0", "--once", "--ipc", "--size", String(settings.size), "--page-size", String(settings.pageSize)];
  if (settings.sha256) args.push("--sha256");
  const child = fork(main, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, PAGEWIRE_SECRET: settings.secret } });
  // However this process ends, the destination must not outlive it.
  const killChild = () => child.exitCode === null && child.kill();
  process.once("exit", killChild);
  try {
    const { port } = await waitFor(child, "listening");
    // Both are awaited below, after the source is done; until then a rejection (the child failed)
    // must not count as unhandled: the source sees the same failure and reports it first.
    const received = waitFor(child, "completed");
    received.catch(() => undefined);
    const continued = settings.workload ? waitFor(child, "workload") : undefined;
    continued?.catch(() => undefined);
    const result = await runSource("127.0.0.1", port, settings);
    const destination = await received;
    if (continued && result.workload) {
      const there = await continued;
      result.workload.after = there.after;
      result.workload.firstStepAt = there.firstStepAt;
    }
    if (destination.sha256 && result.sha256 && destination.sha256 !== result.sha256) {
      throw new PagewireError("EDESTINATION", `the destination's SHA-256 ${destination.sha256} differs from the source's ${result.sha256}`);
    }
    printSourceResult("migrate", settings, result, destination.stats);
    return 0;
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

// `npm run bench -- job`: a job of N ranks, each in its own process, migrated with one
// coordinated pause to N new processes, for N = 1, 2, 4: does migrating the ranks together scale
// (Zhang, Lu & Panda 2017)? Reported per N: the job's total time and the longest rank downtime,
// against one rank alone measured in the same run.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { JobCoordinator } from "../src/job/coordinator.js";
import { type Row, progress } from "./report.js";

export interface JobBenchOptions {
  /** Memory of each rank. */
  bytes: number;
  ranks: number[];
  /** Iterations the job runs before the migration. */
  warmIterations: number;
}

export const jobDefaults: JobBenchOptions = { bytes: 64 << 20, ranks: [1, 2, 4], warmIterations: 20 };
export const jobQuick: JobBenchOptions = { bytes: 8 << 20, ranks: [1, 2], warmIterations: 10 };

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

async function host(children: ChildProcess[]): Promise<string> {
  const child = fork(CLI, ["job", "host", "--port", "0"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  const port = await new Promise<number>((resolve) => child.once("message", (m: { port: number }) => resolve(m.port)));
  return `127.0.0.1:${port}`;
}

export async function runJob(o: JobBenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  let alone = 0;
  for (const n of o.ranks) {
    progress(`job of ${n} rank(s) of ${(o.bytes / 2 ** 20).toFixed(0)} MiB: start, run, migrate`);
    const children: ChildProcess[] = [];
    try {
      const sources = await Promise.all(Array.from({ length: n }, () => host(children)));
      const targets = await Promise.all(Array.from({ length: n }, () => host(children)));
      const job = new JobCoordinator({ ranks: sources.map((h, i) => ({ host: h, to: targets[i] })) });
      await job.start(o.bytes);
      while (Number((await job.status())[0].iteration) < o.warmIterations) await new Promise((r) => setTimeout(r, 20));
      const start = performance.now();
      const outcome = await job.migrate({ readyTimeoutMs: 30_000 });
      const ms = performance.now() - start;
      if (outcome.outcome !== "committed") throw new Error(`the job's migration aborted: ${outcome.reason}`);
      const downtimes = outcome.ranks.map((r) => Number(r.downtime));
      if (n === o.ranks[0]) alone = ms;
      rows.push({
        suite: "job", id: "job.migrate.total-time", params: { ranks: n, bytes: o.bytes },
        name: `job of ${n} rank(s) migrated together: total time`, value: ms, unit: "ms",
        baseline: n === o.ranks[0] ? undefined : { name: `${o.ranks[0]} rank alone, same run`, value: alone },
        note: `paused at iteration ${outcome.pausedAt} (${outcome.pauseRule}); downtimes ${downtimes.map((d) => d.toFixed(0)).join(", ")} ms; ${outcome.ranks.map((r) => `${(Number(r.transferred) / 1e6).toFixed(0)} MB`).join(", ")} sent`,
      });
      rows.push({ suite: "job", id: "job.migrate.max-downtime", params: { ranks: n, bytes: o.bytes }, name: `job of ${n} rank(s): longest rank downtime`, value: Math.max(...downtimes), unit: "ms" });
    } finally {
      children.forEach((c) => c.kill());
    }
  }
  return rows;
}

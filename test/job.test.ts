// A job of three ranks, each in its own process (pagewire job host), running a domain-decomposed
// stencil with a halo exchange and an allreduce every iteration: migrated to three new processes
// with one coordinated pause, or not at all when a destination dies before the commit, or
// checkpointed into three files and restarted from them. Each time the job's result at a later
// iteration equals that of a job that never moved, bit for bit.
import { describe, it, expect, afterAll } from "vitest";
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobCoordinator, type JobPlan } from "../src/job/coordinator.js";

const CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const RANKS = 3;
const SIZE = 4 << 20;
const FINISH = 400;
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), "pagewire-job-"));
afterAll(() => {
  children.forEach((c) => c.kill("SIGKILL"));
  rmSync(dir, { recursive: true, force: true });
});

async function host(): Promise<{ address: string; child: ChildProcess }> {
  const child = fork(CLI, ["job", "host", "--port", "0"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    child.once("exit", (code) => reject(new Error(`the rank host exited (${code})`)));
  });
  return { address: `127.0.0.1:${port}`, child };
}

const hosts = (n: number) => Promise.all(Array.from({ length: n }, host));

/** The job's totals at FINISH, all ranks, when it never moves. */
let unmoved: number[] | undefined;
async function reference(): Promise<number[]> {
  if (unmoved) return unmoved;
  const at = await hosts(RANKS);
  const job = new JobCoordinator({ ranks: at.map((h) => ({ host: h.address })) });
  await job.start(SIZE);
  unmoved = (await job.finishAt(FINISH)).map((s) => Number(s.total));
  at.forEach((h) => h.child.kill());
  return unmoved;
}

async function started(): Promise<{ plan: JobPlan; sources: Awaited<ReturnType<typeof hosts>>; targets: Awaited<ReturnType<typeof hosts>> }> {
  const sources = await hosts(RANKS);
  const targets = await hosts(RANKS);
  const plan: JobPlan = { ranks: sources.map((s, i) => ({ host: s.address, to: targets[i].address, checkpoint: join(dir, `rank${i}.ckpt`) })) };
  await new JobCoordinator(plan).start(SIZE);
  return { plan, sources, targets };
}

describe("a job of three ranks", () => {
  it("migrates with one coordinated pause while it runs, and goes on bit for bit at the destinations", async () => {
    const expected = await reference();
    const { plan, targets } = await started();
    const job = new JobCoordinator(plan);
    while (Number((await job.status())[0].iteration) < 30) await new Promise((r) => setTimeout(r, 20));
    const outcome = await job.migrate({ readyTimeoutMs: 10_000 });
    expect(outcome).toMatchObject({ outcome: "committed", pauseRule: "every rank's own policy agreed" });
    expect(outcome.pausedAt).toBeLessThan(FINISH);
    // Each rank paused once, briefly, for the same iteration: its downtime is its own final round.
    for (const r of outcome.ranks) expect(Number(r.downtime)).toBeLessThan(2000);
    const moved = new JobCoordinator({ ranks: targets.map((t) => ({ host: t.address })) });
    const totals = (await moved.finishAt(FINISH)).map((s) => Number(s.total));
    expect(totals).toEqual(expected);
  });

  it("all or nothing: a destination that dies before the commit leaves every rank running at its source, bit for bit", async () => {
    const expected = await reference();
    const { plan, targets } = await started();
    const job = new JobCoordinator(plan);
    while (Number((await job.status())[0].iteration) < 30) await new Promise((r) => setTimeout(r, 20));
    job.on("progress", (m) => m.includes("pre-copying") && setTimeout(() => targets[1].child.kill("SIGKILL"), 20));
    const migrating = job.migrate({ readyTimeoutMs: 10_000 });
    const outcome = await migrating;
    expect(outcome.outcome).toBe("aborted");
    expect(outcome.reason).toBeTruthy();
    const totals = (await job.finishAt(FINISH)).map((s) => Number(s.total));
    expect(totals).toEqual(expected);
  });

  it("checkpoints into three files with one pause, runs on, and restarts from them on new hosts, bit for bit", async () => {
    const expected = await reference();
    const { plan } = await started();
    const job = new JobCoordinator(plan);
    while (Number((await job.status())[0].iteration) < 30) await new Promise((r) => setTimeout(r, 20));
    const outcome = await job.checkpoint({ readyTimeoutMs: 10_000 });
    expect(outcome.outcome).toBe("committed");
    plan.ranks.forEach((r) => expect(existsSync(r.checkpoint!)).toBe(true));
    // The job ran on after its checkpoint; now a restart elsewhere from the files.
    const fresh = await hosts(RANKS);
    const restarted = new JobCoordinator({ ranks: fresh.map((h, i) => ({ host: h.address, checkpoint: plan.ranks[i].checkpoint })) });
    // Each rank as restored, before it ran on: at the checkpoint's iteration, not where the job ran on to.
    const restored = await restarted.restart();
    for (const s of restored) expect(Number(s.iteration)).toBeLessThanOrEqual(outcome.pausedAt! + 1);
    const totals = (await restarted.finishAt(FINISH)).map((s) => Number(s.total));
    expect(totals).toEqual(expected);
  });

  it("from the command line: a plan file, job start, job migrate --json, job status", async () => {
    const { execFile } = await import("node:child_process");
    const { writeFileSync } = await import("node:fs");
    const run = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], (error, stdout, stderr) => resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stdout, stderr }));
    });
    const sources = await hosts(2);
    const targets = await hosts(2);
    const planFile = join(dir, "plan.json");
    writeFileSync(planFile, JSON.stringify({ ranks: sources.map((s, i) => ({ host: s.address, to: targets[i].address })) }));
    expect((await run(["job", "start", "--plan", planFile, "--size", "4m"])).code).toBe(0);
    const migrated = await run(["job", "migrate", "--plan", planFile, "--json"]);
    expect(migrated.code).toBe(0);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ command: "job migrate", status: "completed", outcome: "committed" });
    writeFileSync(planFile, JSON.stringify({ ranks: targets.map((t) => ({ host: t.address })) }));
    const status = JSON.parse((await run(["job", "status", "--plan", planFile, "--json"])).stdout);
    expect(status.ranks.map((r: { rank: number }) => r.rank)).toEqual([0, 1]);
    const bad = await run(["job", "migrate", "--plan", join(dir, "missing.json")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--plan ".*missing\.json": cannot read it as JSON/);
  });
});

// The job's coordinator (SymVirt's, after Takano et al. 2013; Zhang, Lu & Panda 2017): migrates
// every rank of a job at once, or checkpoints them all, with one coordinated pause. Every rank
// pre-copies concurrently; the pause comes once every rank's own policy would stop (or, after a
// wait, regardless: a rank whose link cannot keep up must not hold the others forever), at an
// iteration every rank parks at, so no message is in flight; then the final rounds and every
// digest. All or nothing: the job commits (the ranks run at their destinations, the message layer
// attached to the new addresses) only if every migration completed; otherwise every rank resumes
// where it was.
import { EventEmitter } from "node:events";
import { rm } from "node:fs/promises";
import { RankControl } from "./control.js";

/** Where each rank of a job is (host: its rank host's control address) and where it goes. */
export interface JobPlan {
  ranks: Array<{ host: string; to?: string; checkpoint?: string }>;
}

/** The stop-at must reach every rank within this, ms; and the job's pace is sampled over RATE_SAMPLE_MS. */
const STOP_AT_SLACK_MS = 100;
const RATE_SAMPLE_MS = 50;

export interface CoordinationOptions {
  /**
   * Iterations ahead of the furthest rank at which all park: room for the stop-at to reach them.
   * Default: what the job does in 100 ms, measured, plus 3.
   */
  margin?: number;
  /** Longest wait for every rank's policy to agree before the pause comes anyway, ms. Default 30,000. */
  readyTimeoutMs?: number;
}

export interface JobOutcome {
  outcome: "committed" | "aborted";
  /** The iteration every rank paused at. */
  pausedAt?: number;
  /** Why the pause came: every rank ready, or the wait ran out. */
  pauseRule?: string;
  /** Per rank: its migration's or checkpoint's figures, or why it failed. */
  ranks: Array<Record<string, unknown>>;
  reason?: string;
}

export class JobCoordinator extends EventEmitter<{ progress: [message: string] }> {
  constructor(readonly plan: JobPlan) {
    super();
  }

  private async controls(which: "host" | "to"): Promise<RankControl[]> {
    return Promise.all(this.plan.ranks.map((r, i) => {
      const address = which === "host" ? r.host : r.to;
      if (!address) throw new Error(`rank ${i} of the plan has no ${which}`);
      return RankControl.open(address);
    }));
  }

  /** Opens every rank's message layer and connects them all to each other; then they run. */
  private static async attach(controls: RankControl[], addresses: string[]): Promise<void> {
    await Promise.all(controls.map((c) => c.request("attach", { peers: addresses })));
  }

  /** Starts a job of fresh ranks of `size` bytes each on the plan's hosts. */
  async start(size: number): Promise<void> {
    const hosts = await this.controls("host");
    try {
      const ranks = hosts.length;
      const started = await Promise.all(hosts.map((c, rank) => c.request("start", { rank, ranks, size })));
      await JobCoordinator.attach(hosts, started.map((s) => String(s.mpl)));
    } finally {
      hosts.forEach((c) => c.close());
    }
  }

  /** Every rank's status (iteration, the job-wide total at it). */
  async status(): Promise<Array<Record<string, unknown>>> {
    const hosts = await this.controls("host");
    try {
      return await Promise.all(hosts.map((c) => c.request("status")));
    } finally {
      hosts.forEach((c) => c.close());
    }
  }

  /** Runs every rank to `iteration` and stops it there; resolves with their statuses. */
  async finishAt(iteration: number): Promise<Array<Record<string, unknown>>> {
    const hosts = await this.controls("host");
    try {
      return await Promise.all(hosts.map((c) => c.request("finish-at", { iteration })));
    } finally {
      hosts.forEach((c) => c.close());
    }
  }

  /**
   * Restarts the job from the plan's checkpoint files, each rank on its host; resolves with each
   * rank's status as restored, before it ran on (its iteration is the checkpoint's).
   */
  async restart(): Promise<Array<Record<string, unknown>>> {
    const hosts = await this.controls("host");
    try {
      const restored = await Promise.all(hosts.map((c, i) => c.request("restore", { paths: [this.plan.ranks[i].checkpoint] })));
      await JobCoordinator.attach(hosts, restored.map((s) => String(s.mpl)));
      return restored;
    } finally {
      hosts.forEach((c) => c.close());
    }
  }

  /**
   * The coordinated pause of operations already started on every host (`settled`, one per rank):
   * waits until every rank is ready (or the wait runs out, or one fails), then parks all at one
   * iteration. Resolves with each operation's outcome.
   */
  private async coordinate(hosts: RankControl[], settled: Array<Promise<Record<string, unknown>>>, o: CoordinationOptions) {
    let ready = 0;
    let failed = false;
    const everyoneReady = new Promise<string>((resolve) => {
      const onReady = () => ++ready === hosts.length && resolve("every rank's own policy agreed");
      hosts.forEach((c) => c.on("ready", onReady));
      setTimeout(() => resolve(`the wait of ${(o.readyTimeoutMs ?? 30_000) / 1000} s for every rank's policy ran out (${ready} of ${hosts.length} ready)`), o.readyTimeoutMs ?? 30_000).unref();
    });
    const firstFailure = Promise.race(settled.map((p) => p.then(() => new Promise<never>(() => undefined), () => ((failed = true), "a rank failed before the pause"))));
    const rule = await Promise.race([everyoneReady, firstFailure]);
    this.emit("progress", `pausing: ${rule}`);
    // Far enough ahead that every rank gets the stop-at before it gets there: the iterations the
    // job makes in STOP_AT_SLACK_MS, measured now (a rank waits that long at most, paused).
    const furthest = async () => Math.max(...(await Promise.all(hosts.map((c) => c.request("status")))).map((s) => Number(s.iteration)));
    const before = { at: performance.now(), iteration: await furthest() };
    await new Promise((resolve) => setTimeout(resolve, RATE_SAMPLE_MS));
    const rate = ((await furthest()) - before.iteration) / (performance.now() - before.at);
    const margin = o.margin ?? Math.ceil(rate * STOP_AT_SLACK_MS) + 3;
    let pausedAt = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      pausedAt = Math.max(pausedAt, await furthest()) + margin;
      const replies = await Promise.all(hosts.map((c) => c.request("stop-at", { iteration: pausedAt })));
      if (replies.every((r) => r.accepted)) break;
    }
    this.emit("progress", `every rank parks at iteration ${pausedAt}`);
    const outcomes = await Promise.allSettled(settled);
    return { outcomes, pausedAt, rule: failed ? "a rank failed before the pause" : rule };
  }

  /** Migrates every rank to its `to` host with one coordinated pause; commits only if all completed. */
  async migrate(o: CoordinationOptions = {}): Promise<JobOutcome> {
    const [hosts, targets] = [await this.controls("host"), await this.controls("to")];
    try {
      const receiving = await Promise.allSettled(targets.map((c) => c.request("receive")));
      const unready = receiving.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      if (unready) {
        // Nothing moved yet: the destinations that could receive forget it, the ranks never stopped.
        await Promise.allSettled(targets.map((c) => c.request("abort")));
        return { outcome: "aborted", ranks: [], reason: `a destination could not receive: ${(unready.reason as Error).message}` };
      }
      const ports = receiving.map((r) => (r as PromiseFulfilledResult<Record<string, unknown>>).value);
      const migrations = hosts.map((c, i) => c.request("migrate", { host: this.plan.ranks[i].to!.split(/:(?=\d+$)/)[0], port: ports[i].port }));
      migrations.forEach((m) => m.catch(() => undefined)); // settled in coordinate()
      this.emit("progress", `${hosts.length} ranks pre-copying`);
      const { outcomes, pausedAt, rule } = await this.coordinate(hosts, migrations, o);
      const ranks = outcomes.map((r) => (r.status === "fulfilled" ? r.value : { error: (r.reason as Error).message }));
      const failure = outcomes.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      if (!failure) {
        const committed = await Promise.all(targets.map((c) => c.request("commit")));
        await Promise.all(hosts.map((c) => c.request("commit")));
        await JobCoordinator.attach(targets, committed.map((c) => String(c.mpl)));
        return { outcome: "committed", pausedAt, pauseRule: rule, ranks };
      }
      // All or nothing: every destination drops what it got, every rank resumes at its source.
      this.emit("progress", `aborting: ${(failure.reason as Error).message}`);
      await Promise.allSettled(targets.map((c) => c.request("abort")));
      const resumed = await Promise.all(hosts.map((c) => c.request("abort")));
      await JobCoordinator.attach(hosts, resumed.map((c) => String(c.mpl)));
      return { outcome: "aborted", pausedAt, pauseRule: rule, ranks, reason: (failure.reason as Error).message };
    } finally {
      [...hosts, ...targets].forEach((c) => c.close());
    }
  }

  /** Checkpoints every rank into its plan file with one coordinated pause; if one fails, no file of the set is kept. */
  async checkpoint(o: CoordinationOptions = {}): Promise<JobOutcome> {
    const hosts = await this.controls("host");
    try {
      const paths = this.plan.ranks.map((r, i) => {
        if (!r.checkpoint) throw new Error(`rank ${i} of the plan has no checkpoint file`);
        return r.checkpoint;
      });
      const writes = hosts.map((c, i) => c.request("checkpoint", { path: paths[i] }));
      writes.forEach((w) => w.catch(() => undefined));
      const { outcomes, pausedAt, rule } = await this.coordinate(hosts, writes, o);
      const ranks = outcomes.map((r) => (r.status === "fulfilled" ? r.value : { error: (r.reason as Error).message }));
      const failure = outcomes.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      if (!failure) return { outcome: "committed", pausedAt, pauseRule: rule, ranks };
      await Promise.all(paths.map((p) => rm(p, { force: true })));
      return { outcome: "aborted", pausedAt, pauseRule: rule, ranks, reason: (failure.reason as Error).message };
    } finally {
      hosts.forEach((c) => c.close());
    }
  }
}

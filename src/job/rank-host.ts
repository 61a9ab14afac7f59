// A rank host: the process one rank of a job runs in (`pagewire job host`). The coordinator drives
// it over its control channel: start a rank, attach its message layer, migrate it to another host
// (pre-copy, pausing only when the job's coordinator opens the gate, at an iteration every rank
// stops at), receive one and hold it until the job commits, checkpoint it, restore it.
import { createServer, type Server, type Socket } from "node:net";
import { Region } from "../memory/region.js";
import { Source } from "../migration/source.js";
import { Listener, type Received } from "../migration/listener.js";
import { precopy } from "../policy/precopy.js";
import { Checkpoint } from "../checkpoint/checkpoint.js";
import { restore } from "../checkpoint/restore.js";
import { MessageLayer } from "../workload/mpl.js";
import { StencilRank } from "../workload/job-stencil.js";
import { GatedPolicy } from "./gated-policy.js";
import { onLines, type ControlRequest } from "./control.js";

type Reply = Record<string, unknown>;

export class RankHost {
  private server: Server | undefined;
  private region: Region | undefined;
  private rank: StencilRank | undefined;
  private mpl: MessageLayer | undefined;
  /** The rank runs until its iteration reaches this, then parks. */
  private parkAt = Infinity;
  private running: Promise<void> | undefined;
  private gate: GatedPolicy | undefined;
  private listener: Listener | undefined;
  private received: Received | undefined;
  private control: Socket | undefined;

  /** Listens for the coordinator; resolves with the port. */
  listen(port = 0, host = "127.0.0.1"): Promise<number> {
    this.server = createServer((socket) => {
      this.control = socket;
      onLines(socket, (m) => void this.handle(socket, m as ControlRequest));
    });
    return new Promise((resolve) => this.server!.listen(port, host, () => resolve((this.server!.address() as { port: number }).port)));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private event(name: string, fields: Reply = {}): void {
    this.control?.write(JSON.stringify({ event: name, ...fields }) + "\n");
  }

  private async handle(socket: Socket, r: ControlRequest): Promise<void> {
    let reply: Reply;
    try {
      reply = { ok: true, ...(await this.op(r)) };
    } catch (error) {
      reply = { ok: false, error: (error as Error).message };
    }
    socket.write(JSON.stringify({ id: r.id, ...reply }) + "\n");
  }

  private async op(r: ControlRequest): Promise<Reply> {
    switch (r.op) {
      case "start": {
        const region = Region.create({ pageCount: Math.ceil(Number(r.size) / 4096) });
        region.prefault();
        StencilRank.init(region, Number(r.rank), Number(r.ranks));
        return this.adopt(region);
      }
      case "attach":
        await this.mpl!.attach(r.peers as string[]);
        this.run();
        return {};
      case "status":
        return { ...this.rank?.status(), running: this.running !== undefined };
      case "finish-at":
        return this.stopAt(Number(r.iteration)).then(async () => ({ ...this.rank!.status() }));
      case "receive":
        return { port: await this.receive() };
      case "migrate":
        return this.migrate(String(r.host), Number(r.port));
      case "checkpoint":
        return this.checkpoint(String(r.path));
      case "stop-at": {
        const at = Number(r.iteration);
        const now = this.rank!.status().iteration;
        if (now >= at) return { accepted: false, iteration: now };
        this.parkAt = at;
        this.gate?.release();
        return { accepted: true };
      }
      case "commit":
        return this.commit();
      case "abort":
        return this.abort();
      case "restore":
        return this.adopt((await restore(r.paths as string[])).regions[0]);
      case "quit":
        setImmediate(() => process.exit(0));
        return {};
    }
    throw new Error(`unknown operation ${r.op}`);
  }

  /** Takes a rank's memory (started, received or restored) and opens its message layer; resolves with its address. */
  private async adopt(region: Region): Promise<Reply> {
    this.region = region;
    this.rank = new StencilRank(region);
    const status = this.rank.status();
    this.mpl = new MessageLayer(status.rank, status.ranks);
    this.rank.useLayer(this.mpl);
    this.parkAt = Infinity;
    return { mpl: await this.mpl.listen(), ...status };
  }

  /** Steps the rank until it reaches parkAt. */
  private run(): void {
    const rank = this.rank!;
    this.running = (async () => {
      while (rank.status().iteration < this.parkAt) {
        await rank.step();
        // A rank alone never waits on a message: let the control channel and a migration have the loop.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })().finally(() => (this.running = undefined));
    this.running.catch((error: Error) => this.event("rank-failed", { message: error.message }));
  }

  /** Parks the rank at `iteration` (resolves once it is there and stopped). */
  private async stopAt(iteration: number): Promise<void> {
    this.parkAt = iteration;
    await this.running;
  }

  private async receive(): Promise<number> {
    this.listener = new Listener({ hooks: { resume: () => undefined } });
    const port = await this.listener.listen(0);
    void this.listener.next().then(
      (received) => (this.received = received),
      () => undefined, // the source hears the failure; the coordinator aborts
    );
    return port;
  }

  /**
   * Migrates the rank live: pre-copy as its policy says, then waits for the coordinator's
   * stop-at; pauses once the rank parked there, with its message layer detached (nothing in
   * flight). Resolves once the destination confirmed the digest; the rank stays here, paused,
   * until the job commits or aborts.
   */
  private async migrate(host: string, port: number): Promise<Reply> {
    this.gate = new GatedPolicy(precopy(), (reason) => this.event("ready", { reason }));
    const source = new Source([this.region!], {
      host, port, policy: this.gate,
      hooks: {
        pause: async () => {
          await this.running;
          await this.mpl!.detach();
        },
        deviceState: () => new TextEncoder().encode(JSON.stringify(this.rank!.status())),
      },
    });
    const stats = await source.migrate();
    return { downtime: stats.downtime, "total-time": stats["total-time"], transferred: stats.transferred, rounds: stats.rounds.length };
  }

  /** A checkpoint of the rank: the same coordinated pause; the rank runs on afterwards (its connections stay). */
  private async checkpoint(path: string): Promise<Reply> {
    this.gate = new GatedPolicy(precopy(), (reason) => this.event("ready", { reason }));
    const { stats } = await new Checkpoint([this.region!], {
      path, policy: this.gate,
      hooks: {
        pause: () => this.running,
        resume: () => {
          this.parkAt = Infinity;
          this.run();
        },
      },
    }).write();
    return { downtime: stats.downtime, "total-time": stats["total-time"], "disk-bytes": stats["disk-bytes"] };
  }

  /** The job commits: a received rank becomes this host's (its layer opened for attach); a migrated one is gone from here. */
  private async commit(): Promise<Reply> {
    if (this.received) {
      const region = this.received.regions[0];
      this.received = undefined;
      await this.listener?.close();
      return this.adopt(region);
    }
    this.region = this.rank = this.mpl = undefined;
    return {};
  }

  /** The job aborts: a received rank is dropped; a paused one here reopens its layer to attach to its old peers. */
  private async abort(): Promise<Reply> {
    if (this.received || this.listener) {
      this.received?.release();
      this.received = undefined;
      await this.listener?.close();
      this.listener = undefined;
      return {};
    }
    // A rank whose migration failed before it paused still runs here, attached to peers that detached: park it, drop its layer.
    this.parkAt = Math.min(this.parkAt, this.rank!.status().iteration);
    await this.running;
    await this.mpl?.detach().catch(() => undefined); // its peers are gone already
    return this.adopt(this.region!);
  }
}

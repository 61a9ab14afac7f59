// The destination's front door: a TCP listener that admits migrations (one session each) after
// their handshake, checks each offer against the memory it holds or allocates memory for it,
// and reports every migration's outcome.
import { EventEmitter } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { totalmem } from "node:os";
import { Core } from "../core/core.js";
import { DigestPool } from "../core/digest.js";
import { Region } from "../memory/region.js";
import { Connection, formatAddress } from "../transport/connection.js";
import { acceptChannel, type Admission } from "../transport/handshake.js";
import { createTlsServer } from "../transport/tls.js";
import { MAX_REGIONS, OfferFlags } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import type { Offer } from "../wire/messages.js";
import { PagewireError } from "../errors.js";
import { Session } from "./session.js";
import { RegionPool } from "./region-pool.js";
import type { ListenerOptions, ListenerEvents, Received, SessionProgress } from "./listener-types.js";

export type { DestinationHooks, ListenerOptions, ListenerEvents, Received, SessionProgress } from "./listener-types.js";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

const isLoopback = (host: string) => host === "localhost" || host === "::1" || /^127\./.test(host);

function describe(pageSize: number, regions: number[]): string {
  const gib = (regions.reduce((s, p) => s + p, 0) * pageSize) / 2 ** 30;
  return `${regions.length} region(s) of ${regions.join(", ")} pages of ${pageSize} bytes (${gib.toFixed(3)} GiB)`;
}

/** Why a TLS handshake failed, naming the peer: `peer` is its address, known while it was connected. */
function tlsRefusal(error: Error, socket: TLSSocket, peer: string): WireError {
  const why = socket.authorizationError ? `its certificate is not trusted (${String(socket.authorizationError)}; --tls-ca names the CA sources' certificates must chain to)` : error.message;
  return new WireError("auth", `TLS handshake with ${peer} failed: ${why}`);
}

export class Listener extends EventEmitter<ListenerEvents> {
  private readonly server: Server;
  private readonly sessions = new Map<string, Session>();
  private busy = false;
  /** Guest memory reserved by the migrations being received, and channel-0 admissions still allocating. */
  private reservedBytes = 0;
  private admitting = 0;
  private knownZero: boolean;
  private readonly digests = new DigestPool();
  private readonly pool = new RegionPool();

  constructor(readonly options: ListenerOptions = {}) {
    super();
    this.knownZero = options.zeroed ?? false;
    if (options.tls) {
      const tlsServer = createTlsServer(options.tls, options.timeoutMs ?? 30_000, (socket) => this.onConnection(socket));
      // A failed handshake reports the TLS socket, which forgets its address once the TCP one under it closes.
      const peers = new WeakMap<Socket, string>();
      tlsServer.on("connection", (tcp: Socket) => peers.set(tcp, formatAddress(tcp.remoteAddress ?? "?", tcp.remotePort)));
      tlsServer.on("tlsClientError", (error: Error, socket: TLSSocket) => {
        const tcp = (socket as TLSSocket & { _parent?: Socket })._parent;
        this.emit("refused", tlsRefusal(error, socket, (tcp && peers.get(tcp)) ?? "a peer"));
      });
      this.server = tlsServer;
    } else {
      this.server = createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
    }
  }

  /** The port listened on (after listen()). */
  get port(): number {
    return (this.server.address() as { port: number } | null)?.port ?? 0;
  }

  /** Starts listening, its digest threads ready; resolves with the port (pass 0 for any free port). */
  async listen(port = 0, host = "127.0.0.1"): Promise<number> {
    if (!this.options.secret && !this.options.insecure && !isLoopback(host)) {
      return Promise.reject(
        new PagewireError("EOPTION", `listening on ${host} without a secret would let anyone who reaches it migrate into this process: give a secret (--secret-file), listen on loopback, or allow it (insecure, --insecure)`),
      );
    }
    await this.digests.warm();
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sessions.values()) s.fail(new WireError("cancelled", "the destination is shutting down"));
    this.digests.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The migrations being received now. */
  active(): SessionProgress[] {
    return [...this.sessions.values()].map((s) => s.progress());
  }

  /** The next migration to complete, or the next to fail. */
  next(): Promise<Received> {
    return new Promise((resolve, reject) => {
      const ok = (r: Received) => {
        this.off("failed", ko);
        resolve(r);
      };
      const ko = (e: Error) => {
        this.off("completed", ok);
        reject(e);
      };
      this.once("completed", ok);
      this.once("failed", ko);
    });
  }

  private onConnection(socket: Socket): void {
    // A TLS socket decrypts into buffers of its own: it cannot read in place.
    const conn = this.options.tls ? new Connection(socket, { expectPreamble: true }) : Connection.accept(socket, { expectPreamble: true });
    acceptChannel(conn, this.options.secret ?? "", (a) => this.admit(conn, a), this.options.timeoutMs).then((a) => {
      // Sent after the accept: a reconnected source reads its handshake's answer first.
      if (a.hello.channelIndex === 0 && ((a.offer?.flags ?? 0) & OfferFlags.resuming) !== 0) this.sessions.get(hex(a.hello.migrationId))?.announceResume();
    }, (error: Error) => {
      if (!error.message.includes(conn.peer)) error.message += ` (from ${conn.peer})`;
      this.emit("refused", error);
    });
  }

  private async admit(conn: Connection, { hello, offer, key }: Admission): Promise<void> {
    const id = hex(hello.migrationId);
    if (hello.channelIndex > 0) {
      const session = this.sessions.get(id);
      if (!session) throw new WireError("unknownMigration", `no migration ${id} is in progress here: open channel 0 first`);
      session.attach(conn, hello.channelIndex, hello.channelCount);
      return;
    }
    if (!offer) throw new WireError("badFrame", "channel 0 came without an offer");
    const resuming = ((offer.flags ?? 0) & OfferFlags.resuming) !== 0;
    const held = this.sessions.get(id);
    if (held) {
      if (!resuming) throw new WireError("badFrame", `migration ${id} is already in progress`);
      held.resume(key, offer);
      held.attach(conn, 0, hello.channelCount);
      return;
    }
    if (resuming) throw new WireError("unknownMigration", `migration ${id} is not held here (it failed, completed, or its source took too long to reconnect): start it again`);
    const fixed = this.options.regions;
    if (fixed && this.busy) throw new WireError("busy", "this destination is receiving another migration into its memory; try again when it is done");
    const maxSessions = this.options.maxSessions ?? 8;
    if (this.sessions.size + this.admitting >= maxSessions) throw new WireError("busy", `this destination is receiving ${maxSessions} migrations, its most at once; try again when one is done`);
    // Fixed memory is allocated already; an offer's memory is reserved before it is allocated.
    const bytes = fixed ? 0 : offer.regions.reduce((sum, pages) => sum + pages * offer.pageSize, 0);
    const maxMemory = this.options.maxMemoryBytes ?? Math.floor(totalmem() * 0.75);
    if (this.reservedBytes + bytes > maxMemory) {
      throw new WireError("busy", `${describe(offer.pageSize, offer.regions)} would take this destination past its limit of ${(maxMemory / 2 ** 30).toFixed(2)} GiB for migrations at once (${(this.reservedBytes / 2 ** 30).toFixed(2)} GiB in use); try again later`);
    }
    if (fixed) this.busy = true;
    this.reservedBytes += bytes;
    this.admitting++;
    let regions: Region[];
    try {
      regions = fixed ? this.checkOffer(offer, fixed) : await this.allocate(offer, hello.channelCount);
    } catch (error) {
      if (fixed) this.busy = false;
      this.reservedBytes -= bytes;
      throw error;
    } finally {
      this.admitting--;
    }
    const session = new Session(id, key, regions, offer, hello.channelCount, this.options.hooks, this.digests, (channel, round) => this.emit("round-end", { migrationId: id, channel, round }), this.options.idleTimeoutMs);
    this.sessions.set(id, session);
    session.attach(conn, 0, hello.channelCount);
    this.emit("session", id);
    session.result
      .then(
        (result) => {
          // A fixed memory takes no other migration until the guest that runs on it is done with it.
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            if (fixed) this.busy = false;
            else this.pool.give(regions);
          };
          this.sessions.delete(id);
          this.reservedBytes -= bytes;
          this.emit("completed", { ...result, release });
        },
        (error: Error) => {
          // Memory no guest ran on is the listener's again: the next offer of its shape reuses it.
          // A fixed memory is free again even if a guest ran on it: a failed post-copy guest is lost.
          if (!fixed && !session.guestRan) this.pool.give(regions);
          if (fixed) this.busy = false;
          this.sessions.delete(id);
          this.reservedBytes -= bytes;
          this.emit("failed", error);
        },
      );
  }

  private checkOffer(offer: Offer, regions: Region[]): Region[] {
    const mine = regions.map((r) => r.pageCount);
    const pageSize = regions[0].pageSize;
    if (offer.pageSize !== pageSize || offer.regions.length !== mine.length || offer.regions.some((p, i) => p !== mine[i])) {
      throw new WireError("regionMismatch", `the source offers ${describe(offer.pageSize, offer.regions)}, but this destination holds ${describe(pageSize, mine)}`);
    }
    const small = regions.find((r) => r.layout.batchPages < offer.batchPages);
    if (small) throw new WireError("regionMismatch", `the source sends batches of ${offer.batchPages} pages; this destination's buffers hold ${small.layout.batchPages}`);
    // The protocol assumes a destination that starts zeroed: make sure of it for memory handed in.
    if (!this.knownZero) for (const r of regions) new Core(r).zeroGuest();
    this.knownZero = false;
    return regions;
  }

  private async allocate(offer: Offer, channels: number): Promise<Region[]> {
    if (offer.regions.length > MAX_REGIONS) throw new WireError("badFrame", `too many regions: ${offer.regions.length}`);
    const reused = this.pool.take(offer);
    if (reused) return reused;
    let regions: Region[];
    try {
      regions = offer.regions.map((pageCount) => Region.create({ pageSize: offer.pageSize, pageCount, batchPages: offer.batchPages, ioBuffers: channels }));
    } catch (error) {
      throw new WireError("regionMismatch", `cannot hold ${describe(offer.pageSize, offer.regions)}: ${(error as Error).message}`);
    }
    // In the pool's threads: pre-faulting gigabytes must not stall the sessions already running.
    if (this.options.prefault ?? true) await this.digests.prefault(regions);
    return regions;
  }
}

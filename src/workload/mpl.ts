// A small message-passing layer for the ranks of a job (the job's MPI, part of the workload, not
// of the product): every rank listens on a port and holds one TCP connection to every other rank;
// a message is a (tag, bytes) frame, received by peer and tag in the order sent. It offers the two
// hooks the papers need: detach(), at a point where no message is in flight (SymVirt's quiesce
// before the stop), and attach() to the peers' addresses again after a resume, wherever they are.
import { connect, createServer, type Server, type Socket } from "node:net";

const HEADER_BYTES = 8; // u32 length, u32 tag

interface Peer {
  socket: Socket;
  /** Why the connection ended, once it has: what that peer sent before is still delivered. */
  failure?: Error;
  /** Messages that arrived before anyone asked, by tag. */
  arrived: Map<number, Uint8Array[]>;
  /** Who waits for a tag. */
  waiting: Map<number, { resolve: (payload: Uint8Array) => void; reject: (error: Error) => void }>;
  pending: Buffer;
}

export class MessageLayer {
  private server: Server | undefined;
  private readonly peers = new Map<number, Peer>();
  private accepted: ((rank: number, socket: Socket) => void) | undefined;

  constructor(
    readonly rank: number,
    readonly ranks: number,
  ) {}

  /** Starts listening for the higher ranks' connections; resolves with HOST:PORT. */
  listen(host = "127.0.0.1"): Promise<string> {
    this.server = createServer((socket) => {
      socket.once("data", (hello: Buffer) => {
        const from = hello.readUInt32LE(0);
        const rest = hello.subarray(4);
        this.accepted?.(from, socket);
        if (rest.length) socket.emit("data", rest);
      });
    });
    return new Promise((resolve) => this.server!.listen(0, host, () => resolve(`${host}:${(this.server!.address() as { port: number }).port}`)));
  }

  /** Connects to every rank: to the lower ones at their addresses, waiting for the higher ones to connect here. */
  attach(addresses: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => this.peers.size === this.ranks - 1 && resolve();
      this.accepted = (from, socket) => {
        this.adopt(from, socket);
        done();
      };
      for (let r = 0; r < this.rank; r++) {
        const [host, port] = addresses[r].split(/:(?=\d+$)/);
        const socket = connect(Number(port), host, () => {
          socket.write(Buffer.from(Uint32Array.of(this.rank).buffer));
          this.adopt(r, socket);
          done();
        });
        socket.once("error", reject);
      }
      done();
    });
  }

  private adopt(rank: number, socket: Socket): void {
    socket.setNoDelay(true);
    const peer: Peer = { socket, arrived: new Map(), waiting: new Map(), pending: Buffer.alloc(0) };
    this.peers.set(rank, peer);
    socket.on("data", (chunk: Buffer) => this.onData(peer, chunk));
    const end = (why: string) => {
      if (peer.failure) return;
      peer.failure = new Error(`rank ${this.rank}: ${why}`);
      for (const w of peer.waiting.values()) w.reject(peer.failure);
      peer.waiting.clear();
    };
    socket.on("error", (error) => end(`the connection to rank ${rank} failed: ${error.message}`));
    socket.on("close", () => end(`rank ${rank} closed its connection`));
  }

  private onData(peer: Peer, chunk: Buffer): void {
    peer.pending = peer.pending.length ? Buffer.concat([peer.pending, chunk]) : chunk;
    while (peer.pending.length >= HEADER_BYTES) {
      const length = peer.pending.readUInt32LE(0);
      if (peer.pending.length < HEADER_BYTES + length) return;
      const tag = peer.pending.readUInt32LE(4);
      const payload = new Uint8Array(peer.pending.subarray(HEADER_BYTES, HEADER_BYTES + length));
      peer.pending = peer.pending.subarray(HEADER_BYTES + length);
      const waiter = peer.waiting.get(tag);
      if (waiter) {
        peer.waiting.delete(tag);
        waiter.resolve(payload);
      } else {
        const queue = peer.arrived.get(tag) ?? [];
        queue.push(payload);
        peer.arrived.set(tag, queue);
      }
    }
  }

  send(to: number, tag: number, payload: Uint8Array): void {
    const peer = this.peers.get(to);
    if (!peer) throw new Error(`rank ${this.rank} is not attached to rank ${to}`);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(tag, 4);
    peer.socket.write(Buffer.concat([header, payload]));
  }

  recv(from: number, tag: number): Promise<Uint8Array> {
    const peer = this.peers.get(from);
    if (!peer) return Promise.reject(new Error(`rank ${this.rank} is not attached to rank ${from}`));
    const queue = peer.arrived.get(tag);
    if (queue?.length) {
      const payload = queue.shift()!;
      if (queue.length === 0) peer.arrived.delete(tag);
      return Promise.resolve(payload);
    }
    if (peer.failure) return Promise.reject(peer.failure);
    return new Promise((resolve, reject) => peer.waiting.set(tag, { resolve, reject }));
  }

  /**
   * Closes every connection and the listener. Call it where no message is in flight (every rank
   * at the same iteration boundary); a message that arrived unread then is an error.
   */
  async detach(): Promise<void> {
    const unread = [...this.peers.entries()].filter(([, p]) => p.arrived.size > 0 || p.pending.length > 0).map(([r]) => r);
    const peers = [...this.peers.values()];
    this.peers.clear();
    // Ended, not destroyed: what was sent last (a neighbour may still need it to reach the same
    // boundary) goes out before the connection closes.
    await Promise.all(peers.map((p) => new Promise<void>((resolve) => {
      if (p.socket.closed) return resolve();
      const timer = setTimeout(() => {
        p.socket.destroy();
        resolve();
      }, 5000);
      p.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      p.socket.end();
    })));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
    if (unread.length) throw new Error(`rank ${this.rank} detached with messages from rank ${unread.join(", ")} unread: a message was in flight`);
  }
}

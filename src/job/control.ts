// The control channel between a job's coordinator and its rank hosts: JSON lines over TCP, a
// request with an id answered by a response with the same id, and events pushed in between.
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";

export interface ControlRequest {
  id: number;
  op: string;
  [arg: string]: unknown;
}

/** Splits a stream into JSON lines. */
export function onLines(socket: Socket, handle: (message: Record<string, unknown>) => void): void {
  let buffered = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (line.trim()) handle(JSON.parse(line) as Record<string, unknown>);
    }
  });
}

/** The coordinator's handle on one rank host. */
export class RankControl extends EventEmitter {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly address: string,
    private readonly socket: Socket,
  ) {
    super();
    onLines(socket, (m) => {
      if (typeof m.event === "string") return void this.emit(m.event, m);
      const w = this.waiting.get(m.id as number);
      this.waiting.delete(m.id as number);
      if (m.ok) w?.resolve(m);
      else w?.reject(new Error(`${address}: ${String(m.error)}`));
    });
    const gone = () => {
      this.closed = true;
      for (const w of this.waiting.values()) w.reject(new Error(`the rank host at ${address} closed its control connection`));
      this.waiting.clear();
      this.emit("gone");
    };
    socket.on("close", gone);
    socket.on("error", () => undefined); // the close that follows says it
  }

  static open(address: string): Promise<RankControl> {
    const [host, port] = address.split(/:(?=\d+$)/);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), host, () => resolve(new RankControl(address, socket)));
      socket.once("error", (error) => reject(new Error(`cannot reach the rank host at ${address} (${error.message}): is pagewire job host running there?`)));
    });
  }

  /** The host closed the connection (it exited, or was killed). */
  private closed = false;

  request(op: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error(`the rank host at ${this.address} is gone (its control connection closed)`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.socket.write(JSON.stringify({ id, op, ...args }) + "\n");
    });
  }

  close(): void {
    this.socket.end();
  }
}

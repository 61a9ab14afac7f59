// A QMP client written from QEMU's specification (docs/interop/qmp-spec.rst): it reads the
// greeting, negotiates capabilities, sends commands with ids and matches the answers, and keeps
// the asynchronous events. The tests drive pagewire with it, and QEMU itself when installed (so
// that what passes against pagewire is what works against QEMU); the benchmarks drive QEMU with it.
import { connect, type Socket } from "node:net";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export class QmpClient {
  greeting!: { QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] } };
  readonly events: QmpEvent[] = [];
  private readonly pending = new Map<number, (answer: Record<string, unknown>) => void>();
  private nextId = 1;
  private buffer = "";
  private onGreeting!: () => void;
  private eventWaiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {}

  static async connect(path: string): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket);
    const greeted = new Promise<void>((resolve, reject) => {
      client.onGreeting = resolve;
      socket.once("error", reject); // refused, or gone before the greeting
    });
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => client.read(text));
    // The server closes the connection when it quits: answers still pending fail, nothing else.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      for (const answer of client.pending.values()) answer({ error: { class: "GenericError", desc: "the connection closed" } });
      client.pending.clear();
    });
    await greeted;
    return client;
  }

  /** Servers send one JSON object per line (QEMU ends each with CRLF). */
  private read(text: string): void {
    this.buffer += text;
    for (let i = this.buffer.indexOf("\n"); i >= 0; i = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, i).trim();
      this.buffer = this.buffer.slice(i + 1);
      if (!line) continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if ("QMP" in message) {
        this.greeting = message as QmpClient["greeting"];
        this.onGreeting();
      } else if ("event" in message) {
        this.events.push(message as unknown as QmpEvent);
        this.eventWaiters.splice(0).forEach((w) => w());
      } else {
        this.pending.get(message.id as number)?.(message);
        this.pending.delete(message.id as number);
      }
    }
  }

  /** Sends a command; resolves with its `return`, rejects with its `error` (class and desc). */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (answer) => {
        if ("return" in answer) resolve(answer.return);
        else reject(Object.assign(new Error(String((answer.error as { desc: string }).desc)), { errorClass: (answer.error as { class: string }).class }));
      });
      this.socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + "\r\n");
    });
  }

  /** Resolves once an event `name` matching `data` has arrived. */
  async event(name: string, matches: (data: Record<string, unknown>) => boolean = () => true): Promise<QmpEvent> {
    for (;;) {
      const found = this.events.find((e) => e.event === name && matches(e.data ?? {}));
      if (found) return found;
      await new Promise<void>((resolve) => this.eventWaiters.push(resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

// A QMP-compatible control socket (QEMU's machine protocol, docs/interop/qmp-spec in QEMU):
// JSON objects over a Unix or TCP stream; a greeting, then `qmp_capabilities` before any other
// command; `{"execute": NAME, "arguments": {...}, "id": ...}` answered by `{"return": ...}` or
// `{"error": {"class", "desc"}}` with the same id; asynchronous `{"event", "data", "timestamp"}`.
// The migration commands keep QEMU's names, arguments and answers, so tools that script a QEMU
// migration can script a pagewire one.
import { createServer, type Server, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { PagewireError } from "../errors.js";
import { VERSION } from "./version.js";

/** What a command may do to the migration it controls; undefined where the side does not support it. */
export interface QmpTarget {
  /** query-migrate's answer (MigrationInfo). */
  info(): Record<string, unknown>;
  /** migrate-set-parameters: applies what it knows, refuses the rest by throwing. */
  setParameters(parameters: Record<string, unknown>): void;
  parameters(): Record<string, unknown>;
  setCapabilities(capabilities: Array<{ capability: string; state: boolean }>): void;
  capabilities(): Array<{ capability: string; state: boolean }>;
  migrate?(uri: string): void;
  /** migrate_cancel; throws when it cannot (post-copy active). */
  cancel?(): void;
  /** quit: called once the answer is sent, as QEMU exits after answering. */
  quit?(): void;
}

type Message = { execute?: unknown; arguments?: unknown; id?: unknown };

class QmpError extends Error {
  constructor(
    readonly errorClass: "GenericError" | "CommandNotFound",
    desc: string,
  ) {
    super(desc);
  }
}

/** Splits a stream of bytes into top-level JSON objects (QMP has no other framing). */
export class JsonObjects {
  private buffer = "";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;

  /** Feeds text; returns the complete objects' texts it ended. */
  push(text: string): string[] {
    const out: string[] = [];
    const base = this.buffer.length;
    this.buffer += text;
    for (let i = base; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === "\\") this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === "{") {
        if (this.depth++ === 0) this.start = i;
      } else if (c === "}" && this.depth > 0 && --this.depth === 0) {
        out.push(this.buffer.slice(this.start, i + 1));
        this.start = -1;
      }
    }
    // Keep only what a later object still needs.
    const keep = this.depth > 0 ? this.start : this.buffer.length;
    this.buffer = this.buffer.slice(keep);
    this.start = this.depth > 0 ? 0 : -1;
    if (this.buffer.length > 1 << 20) throw new Error("QMP message over 1 MiB");
    return out;
  }
}

function timestamp(): { seconds: number; microseconds: number } {
  const now = Date.now() * 1000;
  return { seconds: Math.floor(now / 1e6), microseconds: now % 1e6 };
}

export class QmpServer {
  private readonly server: Server;
  private readonly clients = new Set<Socket>();
  private readonly negotiated = new WeakSet<Socket>();
  private path: string | undefined;

  constructor(private readonly target: QmpTarget) {
    this.server = createServer((socket) => this.serve(socket));
  }

  /** Listens on `unix:PATH` or `tcp:HOST:PORT` (QEMU's -qmp syntax, without options). */
  async listen(spec: string): Promise<void> {
    const unix = /^unix:(.+)$/.exec(spec);
    const tcp = /^tcp:(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(spec);
    if (!unix && !tcp) throw new PagewireError("EOPTION", `--qmp "${spec}": write unix:PATH or tcp:HOST:PORT`);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", (error: NodeJS.ErrnoException) => reject(new PagewireError("ELISTEN", `cannot open the QMP socket ${spec}: ${error.code ?? error.message}`)));
      if (unix) {
        this.path = unix[1];
        rmSync(this.path, { force: true });
        this.server.listen(this.path, resolve);
      } else {
        this.server.listen(Number(tcp![3]), tcp![1] ?? (tcp![2] || "127.0.0.1"), resolve);
      }
    });
  }

  get address(): string {
    const a = this.server.address();
    return typeof a === "string" ? `unix:${a}` : a ? `tcp:${a.address}:${a.port}` : "";
  }

  /** Sends an event to every client past negotiation. */
  event(name: string, data: Record<string, unknown>): void {
    const text = JSON.stringify({ event: name, data, timestamp: timestamp() }) + "\r\n";
    for (const c of this.clients) if (this.negotiated.has(c)) c.write(text);
  }

  close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    if (this.path) rmSync(this.path, { force: true });
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.clients.add(socket);
    socket.on("close", () => this.clients.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setEncoding("utf8");
    const send = (message: object) => socket.write(JSON.stringify(message) + "\r\n");
    send({ QMP: { version: { qemu: { major: 0, minor: 0, micro: 0 }, package: `pagewire ${VERSION}` }, capabilities: [] } });
    const parser = new JsonObjects();
    socket.on("data", (text: string) => {
      let objects: string[];
      try {
        objects = parser.push(text);
      } catch (error) {
        send({ error: { class: "GenericError", desc: (error as Error).message } });
        socket.destroy();
        return;
      }
      for (const json of objects) send(this.answer(socket, json));
    });
  }

  private answer(socket: Socket, json: string): object {
    let message: Message;
    try {
      message = JSON.parse(json) as Message;
    } catch {
      return { error: { class: "GenericError", desc: "JSON parse error" } };
    }
    const id = message.id === undefined ? {} : { id: message.id };
    try {
      if (typeof message.execute !== "string") throw new QmpError("GenericError", "QMP input lacks member 'execute'");
      const args = (message.arguments ?? {}) as Record<string, unknown>;
      if (typeof args !== "object" || args === null || Array.isArray(args)) throw new QmpError("GenericError", "QMP input member 'arguments' must be an object");
      return { return: this.execute(socket, message.execute, args), ...id };
    } catch (error) {
      if (error instanceof QmpError) return { error: { class: error.errorClass, desc: error.message }, ...id };
      return { error: { class: "GenericError", desc: (error as Error).message }, ...id };
    }
  }

  private execute(socket: Socket, command: string, args: Record<string, unknown>): unknown {
    if (command === "qmp_capabilities") {
      if (this.negotiated.has(socket)) throw new QmpError("CommandNotFound", "Capabilities negotiation is already complete, command ignored");
      this.negotiated.add(socket);
      return {};
    }
    if (!this.negotiated.has(socket)) throw new QmpError("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
    const t = this.target;
    switch (command) {
      case "query-version":
        return { qemu: { major: 0, minor: 0, micro: 0 }, package: `pagewire ${VERSION}` };
      case "query-commands":
        return ["qmp_capabilities", "query-version", "query-commands", "query-migrate", "query-migrate-parameters", "migrate-set-parameters", "query-migrate-capabilities", "migrate-set-capabilities", ...(t.migrate ? ["migrate"] : []), ...(t.cancel ? ["migrate_cancel"] : []), ...(t.quit ? ["quit"] : [])].map((name) => ({ name }));
      case "query-migrate":
        return t.info();
      case "query-migrate-parameters":
        return t.parameters();
      case "migrate-set-parameters":
        t.setParameters(args);
        return {};
      case "query-migrate-capabilities":
        return t.capabilities();
      case "migrate-set-capabilities": {
        const caps = args.capabilities;
        if (!Array.isArray(caps)) throw new QmpError("GenericError", "Parameter 'capabilities' is missing");
        t.setCapabilities(caps as Array<{ capability: string; state: boolean }>);
        return {};
      }
      case "migrate":
        if (!t.migrate) break;
        if (typeof args.uri !== "string") throw new QmpError("GenericError", "Parameter 'uri' is missing");
        t.migrate(args.uri);
        return {};
      case "migrate_cancel":
        if (!t.cancel) break;
        t.cancel();
        return {};
      case "quit":
        if (!t.quit) break;
        setImmediate(() => t.quit!());
        return {};
    }
    throw new QmpError("CommandNotFound", `The command ${command} has not been found`);
  }
}

// Child process for the raw-TCP baselines: receives `bytes` bytes on one connection and reports
// how long it took from the first byte. Receivers:
// - discard: a listening socket that drops what it reads;
// - copy: a listening socket that copies each read into pre-faulted shared memory, as a
//   destination must place bytes in guest memory (V8 copies into shared memory word by word, or
//   byte by byte when source and target are not aligned alike);
// - direct: a connecting socket (only those take Node's `onread`) whose reads land straight in
//   pre-faulted shared memory, at the place each byte belongs: no copy at all;
// - tls: as copy, over TLS with the certificate and key files named after it.
import { readFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";

const expected = Number(process.argv[2]);
const receiver = process.argv[3];
const target = receiver === "discard" ? undefined : new Uint8Array(new WebAssembly.Memory({ initial: expected / 65536, maximum: expected / 65536, shared: true }).buffer);
if (target) for (let i = 0; i < target.length; i += 4096) target[i] = 0;

let received = 0;
let first = 0;

/** Counts `n` bytes in; returns true once all have come. */
function arrived(n: number, socket: Socket): boolean {
  if (received === 0) first = performance.now();
  received += n;
  if (received < expected) return false;
  process.send?.({ type: "done", ms: performance.now() - first, received });
  socket.end();
  return true;
}

if (receiver === "direct") {
  const READ_BYTES = 1 << 20;
  const socket: Socket = connect({
    host: "127.0.0.1",
    port: Number(process.argv[4]),
    onread: {
      buffer: () => target!.subarray(received, Math.min(expected, received + READ_BYTES)),
      callback: (n: number) => !arrived(n, socket),
    },
  });
} else {
  const onConnection = (socket: Socket) => {
    socket.on("data", (chunk: Buffer) => {
      target?.set(chunk, received);
      if (arrived(chunk.length, socket)) server.close();
    });
  };
  const server =
    receiver === "tls" ? createTlsServer({ cert: readFileSync(process.argv[4]), key: readFileSync(process.argv[5]) }, onConnection) : createServer(onConnection);
  server.listen(0, "127.0.0.1", () => process.send?.({ type: "listening", port: (server.address() as { port: number }).port }));
}

// Child process for the raw-TCP baselines: accepts one connection, reads `bytes` bytes and either
// discards them or (with "copy") copies them into pre-faulted shared memory, as a destination
// must place them in guest memory; then reports how long it took from the first byte.
import { createServer } from "node:net";

const expected = Number(process.argv[2]);
const copy = process.argv[3] === "copy";
const target = copy ? new Uint8Array(new WebAssembly.Memory({ initial: expected / 65536, maximum: expected / 65536, shared: true }).buffer) : undefined;
if (target) for (let i = 0; i < target.length; i += 4096) target[i] = 0;
const server = createServer((socket) => {
  let received = 0;
  let first = 0;
  socket.on("data", (chunk) => {
    if (received === 0) first = performance.now();
    target?.set(chunk, received);
    received += chunk.length;
    if (received >= expected) {
      process.send?.({ type: "done", ms: performance.now() - first, received });
      socket.end();
      server.close();
    }
  });
});
server.listen(0, "127.0.0.1", () => process.send?.({ type: "listening", port: (server.address() as { port: number }).port }));

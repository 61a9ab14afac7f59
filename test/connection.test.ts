// The receiving end of a connection: the destination's sockets read in place (each read lands
// where the frame reader wants the bytes); the same frames must come out whether the stream
// arrives in place or in Node's chunks, however the sender splits it.
import { describe, it, expect, afterEach } from "vitest";
import { createServer, connect, type Server, type Socket } from "node:net";
import { Connection } from "../src/transport/connection.js";
import { frame } from "../src/wire/frame.js";
import { encodePreamble } from "../src/wire/messages.js";
import { FrameType, MAX_CONTROL_PAYLOAD } from "../src/wire/constants.js";
import { WireError } from "../src/wire/errors.js";

let server: Server | undefined;
afterEach(() => server?.close());

/** A connected pair: the accepted end wrapped as `how` says, and the client socket. */
async function pair(how: "accept" | "chunks"): Promise<{ conn: Connection; client: Socket }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer({ pauseOnConnect: true }, resolve);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const client = connect((server!.address() as { port: number }).port, "127.0.0.1");
  const socket = await accepted;
  if (how === "accept") return { conn: Connection.accept(socket, { expectPreamble: true }), client };
  socket.resume();
  return { conn: new Connection(socket, { expectPreamble: true }), client };
}

function randomPayload(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761;
  for (let i = 0; i < length; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
}

/** Writes `bytes` in pieces of random sizes (1 byte to 9 KiB), letting each go out on its own. */
async function dribble(client: Socket, bytes: Uint8Array): Promise<void> {
  let at = 0;
  let x = 7;
  while (at < bytes.length) {
    x = (x * 1103515245 + 12345) >>> 0;
    const n = Math.min(bytes.length - at, 1 + (x % 9216));
    await new Promise<void>((resolve) => client.write(bytes.subarray(at, at + n), () => resolve()));
    at += n;
    if (x % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("receiving frames", () => {
  for (const how of ["accept", "chunks"] as const) {
    it(`${how === "accept" ? "in place" : "from Node's chunks"}: every frame whole and in order, however the stream is split`, async () => {
      const { conn, client } = await pair(how);
      expect(conn.readsInPlace).toBe(how === "accept");
      const lengths = [0, 1, 7, 8, 9, 100, 4096, 4097, 20_000, MAX_CONTROL_PAYLOAD, 3, 0, 65_000];
      const payloads = lengths.map((n, i) => randomPayload(n, i + 1));
      const stream = [encodePreamble(), ...payloads.map((p) => frame(FrameType.ack, p))];
      const bytes = new Uint8Array(stream.reduce((sum, s) => sum + s.length, 0));
      stream.reduce((at, s) => (bytes.set(s, at), at + s.length), 0);
      const sending = dribble(client, bytes);
      for (const p of payloads) {
        const { type, payload } = await conn.nextFrame(5000);
        expect(type).toBe(FrameType.ack);
        expect(Buffer.from(payload).equals(Buffer.from(p))).toBe(true);
      }
      await sending;
      expect(conn.received).toBe(bytes.length - encodePreamble().length);
      client.destroy();
    });
  }

  it("in place: a frame over its limit ends the connection with a clear error", async () => {
    const { conn, client } = await pair("accept");
    const failed = new Promise<WireError>((resolve) => conn.onFailure(resolve));
    const header = frame(FrameType.ack, new Uint8Array(0));
    new DataView(header.buffer).setUint32(0, MAX_CONTROL_PAYLOAD + 1, true);
    client.write(encodePreamble());
    client.write(header);
    const error = await failed;
    expect(error.reason).toBe("frameTooLarge");
    client.destroy();
  });
});

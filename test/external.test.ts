// An embedder's own guest memory (here a plain ArrayBuffer, written while the migration runs)
// reaches the destination exactly, through an ExternalMemory copy flushed before each sync.
import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { ExternalMemory, copyReceived, receivedMemory } from "../src/memory/external.js";
import { Source } from "../src/migration/source.js";
import { Listener } from "../src/migration/listener.js";
import { precopy } from "../src/policy/precopy.js";
import { sha256 } from "./peers.js";
import { randomBytes } from "./helpers.js";
import { createHash } from "node:crypto";

describe("guest memory the embedder owns", () => {
  it("moves an ArrayBuffer written during the migration, page runs copied in batches", async () => {
    const pages = 2048;
    const own = new ArrayBuffer(pages * 4096);
    const bytes = new Uint8Array(own);
    bytes.set(randomBytes(pages * 1024, 3)); // a quarter non-zero, written before the wrapper exists and never marked
    const region = Region.create({ pageCount: pages });
    const external = new ExternalMemory(own, region);
    // The embedder's guest: writes a few pages every millisecond, marking them after each write.
    let n = 0;
    const guest = setInterval(() => {
      for (let k = 0; k < 40; k++) {
        const page = (n * 7919 + k * 104729) % pages;
        bytes[page * 4096 + (n % 4096)] = (n + k) & 0xff;
        external.markDirty(page);
      }
      n++;
    }, 1);
    const listener = new Listener();
    const port = await listener.listen(0);
    const received = listener.next();
    let atPause = "";
    let flushed = 0;
    await new Source([region], {
      host: "127.0.0.1",
      port,
      policy: precopy({ downtimeLimitMs: 0, maxRounds: 4 }),
      hooks: {
        beforeSync: () => (flushed += external.flush()), // what external.hooks does, counted
        pause: () => clearInterval(guest),
        deviceState: () => {
          atPause = createHash("sha256").update(bytes).digest("hex");
          return new Uint8Array(0);
        },
      },
    }).migrate();
    const { regions } = await received;
    await listener.close();
    expect(n).toBeGreaterThan(0);
    expect(flushed).toBeGreaterThan(0);
    expect(sha256(regions)).toBe(atPause);
  });

  it("hands a received guest to a new program: a memory to instantiate against, or the program's own", async () => {
    // (module (import "env" "memory" (memory 1)) (func (export "peek") (param i32) (result i32) local.get 0 i32.load))
    const peek = new WebAssembly.Module(new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f,
      0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x01,
      0x03, 0x02, 0x01, 0x00, 0x07, 0x08, 0x01, 0x04, 0x70, 0x65, 0x65, 0x6b, 0x00, 0x00,
      0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x28, 0x02, 0x00, 0x0b,
    ]));
    const sourceRegion = Region.create({ pageCount: 48 }); // 192 KiB: three 64 KiB pages of WebAssembly memory
    sourceRegion.pages(0, 48).set(randomBytes(48 * 4096, 9));
    const listener = new Listener({});
    const port = await listener.listen(0);
    try {
      const received = listener.next();
      await new Source([sourceRegion], { host: "127.0.0.1", port, policy: precopy() }).migrate();
      const { regions } = await received;
      const memory = receivedMemory(regions);
      expect(memory.buffer.byteLength).toBe(3 * 65536);
      const instance = new WebAssembly.Instance(peek, { env: { memory } });
      const read = instance.exports.peek as (at: number) => number;
      const words = new Int32Array(sourceRegion.pages(0, 48).slice().buffer);
      for (const at of [0, 4096, 65536 + 12, 3 * 65536 - 4]) expect(read(at)).toBe(words[at / 4]);
      // A program that made its own (smaller) memory gets it grown and filled.
      const own = new WebAssembly.Memory({ initial: 1 });
      copyReceived(regions, own);
      expect(createHash("sha256").update(new Uint8Array(own.buffer, 0, 48 * 4096)).digest("hex")).toBe(sha256([sourceRegion]));
      expect(() => copyReceived(regions, new ArrayBuffer(4096))).toThrow(/less than the 196608 received/);
    } finally {
      await listener.close();
    }
  });
});

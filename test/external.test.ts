// An embedder's own guest memory (here a plain ArrayBuffer, written while the migration runs)
// reaches the destination exactly, through an ExternalMemory copy flushed before each sync.
import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { ExternalMemory } from "../src/memory/external.js";
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
});

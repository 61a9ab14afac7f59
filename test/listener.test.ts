// A destination is a long-lived service: migration after migration into one listener, its
// sockets and its memory must stay flat (the large version is `npm run bench -- listener`).
import { describe, it, expect } from "vitest";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { guest, sha256 } from "./peers.js";
import { connectChannel } from "../src/transport/handshake.js";
import { newMigrationId } from "../src/wire/auth.js";
import { WireError } from "../src/wire/errors.js";

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

describe("a listener serving many migrations", () => {
  it("closes every connection and reuses released memory, 100 migrations in a row", async () => {
    const listener = new Listener({ secret: "s" });
    const port = await listener.listen(0);
    try {
      const before = tcpHandles();
      const memories = new Set<WebAssembly.Memory>();
      for (let i = 0; i < 100; i++) {
        const region = guest(64, i); // 256 KiB, different every time
        const received = listener.next();
        const stats = await new Source([region], { host: "127.0.0.1", port, secret: "s", channels: 1 + (i % 2), policy: stopCopy() }).migrate();
        const r = await received;
        expect(stats.status).toBe("completed");
        expect(sha256(r.regions)).toBe(sha256([region])); // reused memory was zeroed first
        memories.add(r.regions[0].memory);
        r.release();
      }
      // Both sides closed their sockets: once the last closes have run, none is left.
      while (tcpHandles() > before) await new Promise((resolve) => setImmediate(resolve));
      expect(tcpHandles()).toBe(before);
      expect(memories.size).toBe(1);
    } finally {
      await listener.close();
    }
  });
});

describe("a listener's limits", () => {
  const offer = (pages: number) => ({ pageSize: 4096, encodings: 0, batchPages: 256, regions: [pages] });

  it("refuses, as busy, an offer that would take it past its memory limit, and takes one within it", async () => {
    const listener = new Listener({ secret: "s", maxMemoryBytes: 8 << 20 });
    const port = await listener.listen(0);
    try {
      const big = new Source([guest(4096, 1)], { host: "127.0.0.1", port, secret: "s" }); // 16 MiB
      await expect(big.migrate()).rejects.toMatchObject({ reason: "busy", message: expect.stringMatching(/past its limit of 0.01 GiB/) });
      const received = listener.next();
      await new Source([guest(1024, 2)], { host: "127.0.0.1", port, secret: "s" }).migrate(); // 4 MiB
      expect((await received).stats.pages).toBeGreaterThan(0);
    } finally {
      await listener.close();
    }
  });

  it("refuses, as busy, more migrations at once than its session limit", async () => {
    const listener = new Listener({ secret: "s", maxSessions: 1 });
    const port = await listener.listen(0);
    try {
      // A first migration that stays open (its source has only shaken hands).
      const held = await connectChannel({ host: "127.0.0.1", port, secret: "s", migrationId: newMigrationId(), channelCount: 1, channelIndex: 0, offer: offer(16) });
      await expect(new Source([guest(16, 3)], { host: "127.0.0.1", port, secret: "s" }).migrate()).rejects.toMatchObject({ reason: "busy", message: expect.stringMatching(/1 migrations, its most/) });
      held.conn.fail(new WireError("cancelled", "done"), true);
    } finally {
      await listener.close();
    }
  });

  it("will not listen beyond loopback without a secret unless told it may", async () => {
    await expect(new Listener().listen(0, "0.0.0.0")).rejects.toMatchObject({ code: "EOPTION", message: expect.stringMatching(/without a secret/) });
    const open = new Listener({ insecure: true });
    await open.listen(0, "0.0.0.0");
    await open.close();
    const loopback = new Listener();
    await loopback.listen(0, "127.0.0.1");
    await loopback.close();
  });
});

// A destination is a long-lived service: migration after migration into one listener, its
// sockets and its memory must stay flat (the large version is `npm run bench -- listener`).
import { describe, it, expect } from "vitest";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { guest, sha256 } from "./peers.js";

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

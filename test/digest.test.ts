// The digest pool serves several migrations at once (a listener's sessions): answers must go to
// the job that asked, whichever finishes first.
import { describe, it, expect, afterAll } from "vitest";
import { DigestPool } from "../src/core/digest.js";
import { Core } from "../src/core/core.js";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { guest, sha256 } from "./peers.js";

const pool = new DigestPool();
afterAll(() => pool.close());

describe("digest pool", () => {
  it("gives each of many concurrent jobs its own answer", async () => {
    // Sizes differ so that jobs finish out of order.
    const regions = [guest(8192, 1), guest(256, 2), guest(4096, 3), guest(64, 4)];
    const digests = regions.map((r) => new Core(r).digest());
    const sums = regions.map((r) => new Core(r).sumRange(0, r.pageCount));
    for (let round = 0; round < 5; round++) {
      // Stale chunk hashes would hide a job that read them before its own were written.
      for (const r of regions) r.bytes.fill(0xff, r.layout.digestChunks, r.layout.digestChunks + r.layout.digestChunkCount * 8);
      const got = await Promise.all([...regions.map((r) => pool.digest([r])), ...regions.map((r) => pool.pageSums([r]))]);
      expect(got.flat()).toEqual([...digests, ...sums]);
    }
  });

  it("rejects the jobs still out when it is closed", async () => {
    const other = new DigestPool(1);
    const pending = other.digest([guest(8192, 5)]);
    other.close();
    await expect(pending).rejects.toThrow(/closed/);
  });
});

describe("a listener's sessions", () => {
  it("verify two migrations that complete at the same moment, each against its own memory", async () => {
    const listener = new Listener({ secret: "s" });
    const port = await listener.listen(0);
    try {
      const guests = [guest(8192, 11), guest(8192, 12)];
      const completed: string[] = [];
      listener.on("completed", (r) => completed.push(sha256(r.regions)));
      const sources = guests.map((g) => new Source([g], { host: "127.0.0.1", port, secret: "s", policy: stopCopy() }));
      const stats = await Promise.all(sources.map((s) => s.migrate()));
      expect(stats.map((s) => s.status)).toEqual(["completed", "completed"]);
      expect(completed.sort()).toEqual(guests.map((g) => sha256([g])).sort());
    } finally {
      await listener.close();
    }
  });
});

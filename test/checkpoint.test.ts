// Checkpoint and restart: a live checkpoint into a file (pages at fixed offsets, zero pages as
// holes), layers of the pages dirtied since a base, and restores that check the digest and refuse
// a file cut short, a corrupt page, a wrong base or layers out of order. The large runs are
// `npm run bench -- checkpoint`.
import { describe, it, expect, afterAll } from "vitest";
import { mkdtempSync, rmSync, truncateSync, statSync, openSync, writeSync, closeSync, existsSync, writeFileSync, readSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Checkpoint } from "../src/checkpoint/checkpoint.js";
import { restore, readCheckpoint } from "../src/checkpoint/restore.js";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { precopy } from "../src/policy/precopy.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { Workload } from "../src/workload/workload.js";
import { guest, sha256 } from "./peers.js";

const dir = mkdtempSync(join(tmpdir(), "pagewire-checkpoint-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

describe("a checkpoint", () => {
  it("of a static guest restores bit for bit; zero pages take no disk", async () => {
    const region = guest(4096, 41); // 16 MiB, half zero pages
    const { header, stats } = await new Checkpoint([region], { path: file("static.ckpt"), policy: stopCopy() }).write();
    expect(stats).toMatchObject({ status: "completed", layer: false, rounds: 1 });
    expect(stats["disk-bytes"]).toBeLessThan(stats["file-bytes"] * 0.7);
    expect(existsSync(file("static.ckpt.partial"))).toBe(false);
    expect(Buffer.from((await readCheckpoint(file("static.ckpt"))).id)).toEqual(Buffer.from(header.id));
    const restored = await restore([file("static.ckpt")]);
    expect(sha256(restored.regions)).toBe(sha256([region]));
  });

  it("live, with a writer dirtying pages through several rounds: the file holds the memory at the pause, and the guest runs on", async () => {
    const region = guest(8192, 42);
    const writer = new DirtyWriter(region, 20_000, 4);
    try {
      await writer.until(200);
      let atPause = "";
      const { stats } = await new Checkpoint([region], {
        path: file("live.ckpt"), policy: precopy({ downtimeLimitMs: 20, maxRounds: 5 }),
        hooks: { pause: async () => { await writer.pause(); atPause = sha256([region]); }, resume: () => writer.resume(), deviceState: () => Uint8Array.of(9, 8, 7) },
      }).write();
      expect(stats.rounds).toBeGreaterThan(1);
      const running = writer.written;
      await writer.until(running + 10);
      const restored = await restore([file("live.ckpt")]);
      expect(sha256(restored.regions)).toBe(atPause);
      expect(restored.deviceState).toEqual(Uint8Array.of(9, 8, 7));
    } finally {
      await writer.stop();
    }
  });

  it("of a running workload, then layers of what it dirtied since: the chain restores a workload that continues bit for bit", async () => {
    const stopAt = 300;
    const alone = Region.create({ pageCount: 4096 });
    const unmoved = Workload.start(alone, "cg", { stopAt, seed: 3 });
    await unmoved.done;

    const region = Region.create({ pageCount: 4096 });
    const workload = Workload.start(region, "cg", { stopAt, seed: 3 });
    await workload.until(5);
    const hooks = { pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState() };
    const base = await new Checkpoint([region], { path: file("base.ckpt"), hooks }).write();
    await workload.until(workload.iterations + 3);
    const layer1 = await new Checkpoint([region], { path: file("layer1.ckpt"), hooks, base: base.header }).write();
    await workload.until(workload.iterations + 3);
    const layer2 = await new Checkpoint([region], { path: file("layer2.ckpt"), hooks, base: layer1.header, stayPaused: true }).write();
    await workload.stop();
    expect(layer1.stats.layer).toBe(true);
    // A layer holds what CG rewrote in a few iterations (its vectors), not the matrix.
    expect(layer2.stats["disk-bytes"]).toBeLessThan(base.stats["disk-bytes"] / 2);

    const restored = await restore([file("base.ckpt"), file("layer1.ckpt"), file("layer2.ckpt")]);
    const { workload: continued, header } = Workload.resumeFrom(restored.regions[0], restored.deviceState, { stopAt });
    expect(header.iterations).toBeGreaterThanOrEqual(11);
    await continued.done;
    expect(new Core(restored.regions[0]).digest()).toBe(new Core(alone).digest());
  });
});

describe("a restore refuses, naming the file and what is wrong", () => {
  it("a file cut short, a corrupt page, something that is not a checkpoint, one never completed", async () => {
    const region = guest(1024, 43);
    await new Checkpoint([region], { path: file("good.ckpt"), policy: stopCopy() }).write();
    const copy = (name: string) => {
      writeFileSync(file(name), "");
      const from = openSync(file("good.ckpt"), "r");
      const to = openSync(file(name), "w");
      const buffer = Buffer.alloc(1 << 20);
      for (let at = 0, n = 0; (n = readSync(from, buffer, 0, buffer.length, at)) > 0; at += n) writeSync(to, buffer, 0, n, at);
      closeSync(from);
      closeSync(to);
      return file(name);
    };
    const cut = copy("cut.ckpt");
    truncateSync(cut, statSync(cut).size - 4096);
    await expect(restore([cut])).rejects.toMatchObject({ code: "ECHECKPOINT", message: expect.stringMatching(/cut\.ckpt is \d+ bytes, but its header says \d+: it was cut short/) });

    const corrupt = copy("corrupt.ckpt");
    const header = await readCheckpoint(corrupt);
    const page = region.pages(0, region.pageCount).findIndex((b) => b !== 0);
    const fd = openSync(corrupt, "r+");
    writeSync(fd, Uint8Array.of(0x5a), 0, 1, header.regions[0].dataOffset + page);
    closeSync(fd);
    await expect(restore([corrupt])).rejects.toThrow(/does not match .*corrupt\.ckpt's digest in region 0.*a page is corrupt/);

    writeFileSync(file("junk.ckpt"), "hello, not a checkpoint at all".repeat(10));
    await expect(restore([file("junk.ckpt")])).rejects.toThrow(/junk\.ckpt is not a pagewire checkpoint/);

    const unfinished = copy("unfinished.ckpt");
    const fd2 = openSync(unfinished, "r+");
    writeSync(fd2, Uint8Array.of(0, 0, 0, 0), 0, 4, 12); // the flags: not complete
    closeSync(fd2);
    await expect(restore([unfinished])).rejects.toThrow(/seal does not match|never completed/);
  });

  it("a layer without its base, layers out of order, a layer over another base", async () => {
    const region = guest(1024, 44);
    const writer = new DirtyWriter(region, 5000, 1);
    try {
      const hooks = { pause: () => writer.pause(), resume: () => writer.resume() };
      const a = await new Checkpoint([region], { path: file("a.ckpt"), hooks, policy: stopCopy() }).write();
      await writer.until(writer.written + 50);
      const a1 = await new Checkpoint([region], { path: file("a1.ckpt"), hooks, base: a.header, policy: stopCopy() }).write();
      await writer.until(writer.written + 50);
      await new Checkpoint([region], { path: file("a2.ckpt"), hooks, base: a1.header, policy: stopCopy() }).write();
      await new Checkpoint([region], { path: file("b.ckpt"), hooks, policy: stopCopy() }).write();
      await expect(restore([file("a1.ckpt")])).rejects.toThrow(/a1\.ckpt is a layer over checkpoint [0-9a-f]+: restore its base first/);
      await expect(restore([file("a.ckpt"), file("a2.ckpt"), file("a1.ckpt")])).rejects.toThrow(/a2\.ckpt is a layer over checkpoint [0-9a-f]+, not over .*a\.ckpt .*out of order/);
      await expect(restore([file("b.ckpt"), file("a1.ckpt")])).rejects.toThrow(/a1\.ckpt is a layer over checkpoint [0-9a-f]+, not over .*b\.ckpt.*the wrong base/);
      expect(sha256((await restore([file("a.ckpt"), file("a1.ckpt"), file("a2.ckpt")])).regions)).toBeTruthy();
    } finally {
      await writer.stop();
    }
  });

  it("a checkpoint that fails leaves no file and the guest running", async () => {
    const region = guest(256, 45);
    let resumed = 0;
    const failing = new Checkpoint([region], {
      path: file("failed.ckpt"), policy: stopCopy(),
      hooks: { pause: () => undefined, resume: () => void resumed++, deviceState: () => Promise.reject(new Error("the device would not say")) },
    });
    await expect(failing.write()).rejects.toThrow(/the device would not say/);
    expect(resumed).toBe(1);
    expect(existsSync(file("failed.ckpt")) || existsSync(file("failed.ckpt.partial"))).toBe(false);
  });
});

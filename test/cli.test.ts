// The command line as a user meets it: every bad value refused with what was typed, before
// anything starts; the conventions of exit status, help and version; JSON documents; secrets
// kept out of argv; hashes both ends print alike; timeouts; IPv6.
import { describe, it, expect, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cuttingProxy, startDestination, type DestinationProcess } from "./peers.js";

const CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const SMALL = ["--size", "16m", "--warmup-seconds", "0"];

function pagewire(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000, env: { ...process.env, ...env } }, (_error, stdout, stderr) =>
      resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

const destinations: DestinationProcess[] = [];
afterAll(() => destinations.forEach((d) => d.kill()));

describe("bad usage", () => {
  const cases: Array<[string[], RegExp]> = [
    [["migrate", "--size", "64m", "--dirty-rate", "1000", "--channels", "0"], /--channels "0": write an integer from 1 to 16/],
    [["migrate", "--dirty-rate", "1000", "--bandwidth", "foo"], /the rate "foo"/],
    [["migrate", "--dirty-rate", "1000", "--policy", "bogus"], /unknown policy "bogus"/],
    [["migrate", "--workload", "ep", "--policy", "bogus"], /unknown policy "bogus"/],
    [["migrate", "--dirty-rate", "abc"], /--dirty-rate "abc": write a number of at least 0/],
    [["migrate", "--bandwidth", "0"], /--bandwidth "0": must be more than 0/],
    [["migrate", "--size=-1g"], /the size "-1g"/],
    [["migrate", "--workload", "nope"], /unknown workload "nope"/],
    [["migrate", "--param", "slices=x", "--policy", "mplm"], /--param slices "x"/],
    [["send", "--to", "nowhere"], /--to "nowhere": write HOST:PORT/],
    [["listen", "--port", "70000"], /--port "70000": write an integer from 0 to 65535/],
    [["send", "--to", "127.0.0.1:9", "--bogus"], /Unknown option '--bogus'/],
    [["send", "--to", "127.0.0.1:9", "--tls-cert", "test/fixtures/tls/client-cert.pem"], /--tls-cert and --tls-key: give both/],
    [["send", "--to", "127.0.0.1:9", "--tls-ca", "no/such.pem"], /--tls-ca "no\/such.pem": cannot read it \(ENOENT\)/],
    [["send", "--to", "127.0.0.1:9", "--reconnect=-1"], /--reconnect "-1": write an integer from 0 to 100/],
    [["checkpoint", "--size", "16m"], /--to FILE: where the checkpoint goes/],
    [["checkpoint", "--to", "x.ckpt", "--policy", "postcopy"], /a checkpoint cannot use post-copy/],
    [["restore"], /name the checkpoint/],
    [["listen", "--tls-ca", "test/fixtures/tls/ca-cert.pem"], /the destination also needs its own: give --tls-cert and --tls-key/],
  ];
  for (const [args, message] of cases) {
    it(`pagewire ${args.join(" ")}: status 2, the value typed, no stack, nothing started`, async () => {
      const started = performance.now();
      const r = await pagewire(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(performance.now() - started).toBeLessThan(5000); // refused before a guest was built
    });
  }
});

describe("conventions", () => {
  it("prints the version, the help of each command, and refuses unknown commands", async () => {
    const version = await pagewire(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    for (const command of ["send", "listen", "migrate"]) {
      const help = await pagewire([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`pagewire ${command}`));
    }
    expect((await pagewire(["frobnicate"])).code).toBe(2);
  });

  it("says a port is in use without a stack trace (status 1)", async () => {
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    try {
      const port = (busy.address() as { port: number }).port;
      const r = await pagewire(["listen", "--port", String(port)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot listen on 127.0.0.1:\d+: the port is in use/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      busy.close();
    }
  });

  it("gives up at --timeout on a destination that never answers, status 1", async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const r = await pagewire(["send", "--to", `127.0.0.1:${(silent.address() as { port: number }).port}`, ...SMALL, "--timeout", "0.5"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/within --timeout 0.5 s|within 0.5 s/);
    } finally {
      silent.close();
    }
  });
});

describe("scripting", () => {
  it("send --json prints one document; the secret comes from a file or the environment; both ends' SHA-256 agree", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-"));
    writeFileSync(join(dir, "secret"), "file-secret\n");
    const destination = await startDestination("--secret-file", join(dir, "secret"));
    destinations.push(destination);
    const completed = destination.next("completed");
    const r = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, ...SMALL, "--json", "--sha256"], { PAGEWIRE_SECRET: "file-secret" });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ command: "send", status: "completed", source: { status: "completed", "total-pages": 4096 } });
    expect(doc.sha256).toBe((await completed).sha256);
    const wrong = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, ...SMALL, "--json"], { PAGEWIRE_SECRET: "other" });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ command: "send", status: "failed", error: { code: "EAUTH", number: 3 } });
  });

  it("send --channels 3 --channel-threads --full-digest: two channels on threads, all memory hashed at the pause", async () => {
    const destination = await startDestination();
    destinations.push(destination);
    const completed = destination.next("completed");
    const r = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, ...SMALL, "--channels", "3", "--channel-threads", "--full-digest", "--json", "--sha256"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.source).toMatchObject({ status: "completed", channels: 3, "pause-hashed-bytes": 16 << 20 });
    expect(doc.sha256).toBe((await completed).sha256);
  });

  it("send and listen over mutual TLS: --tls-cert, --tls-key, --tls-ca on both", async () => {
    const tls = (name: string) => `test/fixtures/tls/${name}.pem`;
    const destination = await startDestination("--tls-cert", tls("server-cert"), "--tls-key", tls("server-key"), "--tls-ca", tls("ca-cert"));
    destinations.push(destination);
    const completed = destination.next("completed");
    const r = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, ...SMALL, "--json", "--sha256", "--tls-ca", tls("ca-cert"), "--tls-cert", tls("client-cert"), "--tls-key", tls("client-key")]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).sha256).toBe((await completed).sha256);
    const refused = destination.next("refused");
    const stranger = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, ...SMALL, "--tls-ca", tls("ca-cert")]);
    expect(stranger.code).toBe(1);
    expect((await refused).message).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
  });

  it("send --reconnect: a connection cut twice is resumed, and --progress json says so each time", async () => {
    const destination = await startDestination();
    destinations.push(destination);
    const proxy = await cuttingProxy(destination.port, [4 << 20, 10 << 20]);
    try {
      const completed = destination.next("completed");
      const r = await pagewire(["send", "--to", `127.0.0.1:${proxy.port}`, ...SMALL, "--dirty-rate", "5000", "--bandwidth", "100MB", "--reconnect", "3", "--json", "--sha256", "--progress", "json"]);
      expect(r.code).toBe(0);
      const events = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
      expect(events.filter((e) => e.type === "reconnected")).toHaveLength(2);
      expect(JSON.parse(r.stdout).sha256).toBe((await completed).sha256);
    } finally {
      proxy.server.close();
    }
  });

  it("checkpoint a live workload, a layer over it, restore the chain, and send it to a destination where it continues", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-cli-checkpoint-"));
    const base = join(dir, "base.ckpt");
    const layer = join(dir, "layer.ckpt");
    const full = await pagewire(["checkpoint", "--to", base, "--size", "16m", "--workload", "cg", "--warmup-seconds", "0.2", "--json", "--sha256"]);
    expect(full.code).toBe(0);
    expect(JSON.parse(full.stdout)).toMatchObject({ command: "checkpoint", status: "completed", checkpoint: { layer: false } });
    const over = await pagewire(["checkpoint", "--to", layer, "--base", base, "--run-seconds", "0.2", "--json"]);
    expect(JSON.parse(over.stdout)).toMatchObject({ status: "completed", checkpoint: { layer: true } });
    const restored = await pagewire(["restore", base, layer, "--json", "--run-seconds", "0.2"]);
    expect(restored.code).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ command: "restore", workload: { kernel: "cg" } });
    const alone = await pagewire(["restore", layer, "--json"]);
    expect(alone.code).toBe(1);
    expect(JSON.parse(alone.stdout)).toMatchObject({ status: "failed", error: { code: "ECHECKPOINT", number: 29, message: expect.stringMatching(/restore its base first/) } });
    const destination = await startDestination("--run-seconds", "0.2");
    destinations.push(destination);
    const continued = destination.next("workload");
    const sent = await pagewire(["send", "--to", `127.0.0.1:${destination.port}`, "--from", base, layer, "--json"]);
    expect(sent.code).toBe(0);
    expect((await continued).kernel).toBe("cg");
    rmSync(dir, { recursive: true, force: true });
  });

  it("migrate --json has the same shape, with the destination's side; --progress json streams JSON lines", async () => {
    const r = await pagewire(["migrate", ...SMALL, "--dirty-rate", "2000", "--json", "--progress", "json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ command: "migrate", status: "completed", source: { status: "completed" }, destination: { pages: expect.any(Number) } });
    const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.some((l) => l.type === "round" && l.phase === "paused")).toBe(true);
  });

  it("moves a guest over IPv6 loopback", async () => {
    const destination = await startDestination("--host", "::1");
    destinations.push(destination);
    const r = await pagewire(["send", "--to", `[::1]:${destination.port}`, ...SMALL]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/migration completed/);
  });
});

describe("pagewire bench", () => {
  it("runs from the command, on a user's image, and --json is one valid document with the machine and each figure's id, samples and verdict", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pagewire-image-"));
    const image = new Uint8Array(256 * 4096);
    for (let i = 0; i < image.length; i += 7) image[i] = i % 251; // compressible, no zero pages
    writeFileSync(join(dir, "memory.img"), image);
    const r = await pagewire(["bench", "image", "--image", join(dir, "memory.img"), "--runs", "2", "--json"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.machine).toMatchObject({ cores: expect.any(Number), node: process.version, pagewire: expect.any(String) });
    const compress = doc.rows.find((row: { id: string }) => row.id === "image.lz4-compress");
    expect(compress).toMatchObject({ params: { pages: 256 }, unit: "MB/s", samples: [expect.any(Number), expect.any(Number)], stats: { n: 2 } });
    expect(doc.rows.find((row: { id: string }) => row.id === "image.stop-copy").samples).toHaveLength(2);
  });
});

describe("Ctrl-C", () => {
  /** Starts pagewire with --progress json; calls `onLine` with each JSON line on stderr. */
  function interactive(args: string[], onLine: (line: { type: string; phase?: string }, child: ReturnType<typeof execFile>) => void) {
    return new Promise<{ code: number | null; stderr: string }>((resolve) => {
      let stderr = "";
      const child = execFile(process.execPath, [CLI, ...args, "--progress", "json"], { timeout: 60_000 }, () => resolve({ code: child.exitCode, stderr }));
      let pending = "";
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr += chunk;
        pending += chunk;
        for (let i = pending.indexOf("\n"); i >= 0; i = pending.indexOf("\n")) {
          const line = pending.slice(0, i);
          pending = pending.slice(i + 1);
          if (line.startsWith("{")) onLine(JSON.parse(line), child);
        }
      });
    });
  }

  it("cancels a pre-copy migration: status 130, the guest runs on", async () => {
    let sent = false;
    const r = await interactive(["migrate", "--size", "64m", "--warmup-seconds", "0", "--bandwidth", "100mbit"], (line, child) => {
      if (line.type === "progress" && !sent) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/cancelled/);
  });

  it("only warns at the first Ctrl-C after a post-copy switch-over, and the migration completes", async () => {
    let sent = false;
    const r = await interactive(["migrate", "--size", "64m", "--warmup-seconds", "0", "--bandwidth", "100mbit", "--policy", "postcopy"], (line, child) => {
      if (line.type === "switchover" && !sent) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    expect(sent).toBe(true);
    expect(r.stderr).toMatch(/post-copy is active.*Press Ctrl-C again/s);
    expect(r.code).toBe(0);
  });
});

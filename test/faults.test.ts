// Bad input and faults: each must end in a clear error, with the source still running (its
// writer still writing) and able to migrate successfully right after.
import { describe, it, expect, afterAll, beforeAll } from "vitest";
import { connect, createServer } from "node:net";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { DirtyWriter } from "../src/workload/dirty-writer.js";
import { WireError } from "../src/wire/errors.js";
import { FrameType, FRAME_HEADER_BYTES, PROTOCOL_VERSION } from "../src/wire/constants.js";
import { frame } from "../src/wire/frame.js";
import { encodePreamble, decodeFailure, encodeRoundEnd, encodeDeviceStatePiece, encodeComplete } from "../src/wire/messages.js";
import { newMigrationId } from "../src/wire/auth.js";
import { connectChannel, acceptChannel } from "../src/transport/handshake.js";
import { Connection as ConnectionClass, type Connection } from "../src/transport/connection.js";
import { Region } from "../src/memory/region.js";
import { Listener } from "../src/migration/listener.js";
import { Core } from "../src/core/core.js";
import { startDestination, guest, sha256, cuttingProxy, type DestinationProcess } from "./peers.js";
import { randomBytes } from "./helpers.js";

const SECRET = "s3cret";
let destination: DestinationProcess;

beforeAll(async () => {
  destination = await startDestination("--secret", SECRET);
});
afterAll(() => destination?.kill());

/** Sends raw bytes to the destination and returns the failure frame it answers with. */
async function refusalFor(bytes: Uint8Array): Promise<{ reason: string; message: string }> {
  const socket = connect(destination.port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (d) => chunks.push(d));
  socket.write(bytes);
  await new Promise((resolve) => socket.once("close", resolve));
  const reply = Buffer.concat(chunks);
  expect(reply[4]).toBe(FrameType.refuse);
  return decodeFailure(reply.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + reply.readUInt32LE(0)), "refusal");
}

/** A source migrating `region` with a writer thread; checks a retry succeeds after a failure. */
async function migrateWithWriter(region: Region, port: number, options: Partial<ConstructorParameters<typeof Source>[1]> = {}) {
  const writer = new DirtyWriter(region, 20_000, 5);
  await writer.until(100);
  const source = new Source([region], {
    host: "127.0.0.1",
    port,
    secret: SECRET,
    ...options,
    hooks: { pause: () => writer.pause(), resume: () => writer.resume() },
  });
  return { source, writer };
}

/** After a failure: the writer still runs, and migrating again to the healthy destination works. */
async function stillRunningAndRetryWorks(region: Region, writer: DirtyWriter): Promise<void> {
  await writer.until(writer.written + 1); // it writes on (a paused writer would hang the test here)
  let atPause = "";
  const retry = new Source([region], {
    host: "127.0.0.1",
    port: destination.port,
    secret: SECRET,
    hooks: {
      pause: () => writer.pause(),
      resume: () => writer.resume(),
      deviceState: () => {
        atPause = sha256([region]);
        return new Uint8Array(0);
      },
    },
  });
  const completed = destination.next("completed");
  await retry.migrate();
  expect((await completed).sha256).toBe(atPause);
  await writer.stop();
}

async function rejection(promise: Promise<unknown>): Promise<WireError> {
  const error = await promise.then(
    () => undefined,
    (e) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as WireError;
}

describe("refused handshakes", () => {
  it("refuses a peer that does not speak pagewire", async () => {
    const refusal = await refusalFor(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(refusal.reason).toBe("badMagic");
    expect(refusal.message).toMatch(/does not speak pagewire/);
  });

  it("refuses another protocol version, naming both", async () => {
    const refusal = await refusalFor(encodePreamble(PROTOCOL_VERSION + 1));
    expect(refusal.reason).toBe("version");
    expect(refusal.message).toMatch(new RegExp(`speaks pagewire protocol ${PROTOCOL_VERSION + 1}.*speaks ${PROTOCOL_VERSION}`));
  });

  it("refuses a wrong secret; the source keeps running and succeeds with the right one", async () => {
    const region = guest(1024, 11);
    const { source, writer } = await migrateWithWriter(region, destination.port, { secret: "wrong" });
    const error = await rejection(source.migrate());
    expect(error.reason).toBe("auth");
    expect(error.message).toMatch(/secret/);
    await stillRunningAndRetryWorks(region, writer);
  });

  it("refuses a guest whose size differs from the destination's", async () => {
    const sized = await startDestination("--secret", SECRET, "--size", "4m");
    try {
      const region = guest(2048, 12); // 8 MiB
      const error = await rejection(new Source([region], { host: "127.0.0.1", port: sized.port, secret: SECRET }).migrate());
      expect(error.reason).toBe("regionMismatch");
      expect(error.message).toMatch(/2048 pages .* 1024 pages/);
      const fits = guest(1024, 12);
      const completed = sized.next("completed");
      await new Source([fits], { host: "127.0.0.1", port: sized.port, secret: SECRET }).migrate();
      expect((await completed).sha256).toBe(sha256([fits]));
    } finally {
      sized.kill();
    }
  });
});

/** A hand-driven source: a real handshake on channel 0 (and more), then whatever frames a test writes. */
async function handDriven(channels = 1, pages = 16): Promise<Connection[] & { migrationId: string; key: Uint8Array }> {
  const migrationId = newMigrationId();
  const base = { host: "127.0.0.1", port: destination.port, secret: SECRET, migrationId, channelCount: channels };
  const first = await connectChannel({ ...base, channelIndex: 0, offer: { pageSize: 4096, encodings: 0, batchPages: 256, regions: [pages] } });
  const rest = await Promise.all(Array.from({ length: channels - 1 }, (_, i) => connectChannel({ ...base, channelIndex: i + 1 })));
  return Object.assign([first.conn, ...rest.map((r) => r.conn)], { migrationId: Buffer.from(migrationId).toString("hex"), key: first.key });
}

/** A pages frame of raw records for region 0. */
function pagesFrame(round: number, pages: Array<[number, Uint8Array]>): Uint8Array {
  const payload = new Uint8Array(8 + pages.reduce((s, [, d]) => s + 8 + d.length, 0));
  const view = new DataView(payload.buffer);
  view.setUint32(4, round, true);
  let at = 8;
  for (const [page, data] of pages) {
    view.setUint32(at, page, true);
    view.setUint32(at + 4, (2 << 24) | data.length, true);
    payload.set(data, at + 8);
    at += 8 + data.length;
  }
  return frame(FrameType.pages, payload);
}

async function destinationError(conn: Connection): Promise<{ reason: string; message: string }> {
  let reply = await conn.nextFrame();
  while (reply.type === FrameType.ack) reply = await conn.nextFrame(); // rounds it finished first
  expect(reply.type).toBe(FrameType.error);
  return decodeFailure(reply.payload, "error");
}

describe("bad frames after the handshake", () => {
  it("refuses an oversized frame before reading it", async () => {
    const [conn] = await handDriven();
    const failed = destination.next("failed");
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, 0x7fffffff, true);
    header[4] = FrameType.pages;
    await conn.write(header);
    const error = await destinationError(conn);
    expect(error.reason).toBe("frameTooLarge");
    expect((await failed).message).toMatch(/exceeds the limit/);
  });

  it("refuses garbage", async () => {
    const [conn] = await handDriven();
    const failed = destination.next("failed");
    await conn.write(randomBytes(64, 99).map((b, i) => (i === 4 ? 0xee : b)));
    expect((await destinationError(conn)).reason).toBe("badFrame");
    expect((await failed).message).toMatch(/unknown frame type 0xee/);
  });

  it("refuses a page outside the region and a round-end that miscounts", async () => {
    const [conn] = await handDriven();
    const failed = destination.next("failed");
    await conn.write(pagesFrame(1, [[16, new Uint8Array(4096)]]));
    expect((await destinationError(conn)).message).toMatch(/outside the region/);
    await failed;
    const [again] = await handDriven();
    const failedAgain = destination.next("failed");
    await again.write(pagesFrame(1, [[3, new Uint8Array(4096).fill(1)]]));
    await again.send(FrameType.roundEnd, encodeRoundEnd({ round: 1, pages: 2, final: false }));
    expect((await destinationError(again)).message).toMatch(/announced 2 pages .* carried 1/);
    await failedAgain;
  });

  it("reports a stream cut inside a frame as truncated", async () => {
    const [conn] = await handDriven();
    const failed = destination.next("failed");
    const whole = pagesFrame(1, [[1, new Uint8Array(4096).fill(7)]]);
    await conn.write(whole.subarray(0, 1000));
    conn.socket.end();
    expect((await failed).message).toMatch(/closed in the middle of a frame/);
  });
});

describe("ordering across channels", () => {
  it("never lets an older copy arriving late on another channel overwrite a newer one", async () => {
    const channels = await handDriven(2, 16);
    const [ch0, ch1] = channels;
    const older = new Uint8Array(4096).fill(0xaa);
    const newer = new Uint8Array(4096).fill(0xbb);
    // Channel 0 races ahead: round 1 is empty there, round 2 carries the newer copy of page 3.
    await ch0.send(FrameType.roundEnd, encodeRoundEnd({ round: 1, pages: 0, final: false }));
    await ch0.write(pagesFrame(2, [[3, newer]]));
    await ch0.send(FrameType.roundEnd, encodeRoundEnd({ round: 2, pages: 1, final: true }));
    // Channel 0 is held at round 1's barrier, the newer copy queued behind it.
    await destination.next("round-end", (m) => m.migrationId === channels.migrationId && m.channel === 0 && m.round === 1);
    // Channel 1 is late with round 1's older copy of the same page.
    await ch1.write(pagesFrame(1, [[3, older]]));
    await ch1.send(FrameType.roundEnd, encodeRoundEnd({ round: 1, pages: 1, final: false }));
    await ch1.send(FrameType.roundEnd, encodeRoundEnd({ round: 2, pages: 0, final: true }));
    const expected = Region.create({ pageCount: 16 });
    expected.pages(3).set(newer);
    const completed = destination.next("completed");
    await ch0.send(FrameType.deviceState, encodeDeviceStatePiece({ offset: 0, total: 0, bytes: new Uint8Array(0) }));
    await ch0.send(FrameType.complete, encodeComplete({ digests: [new Core(expected).digest()] }, channels.key));
    const acks: number[] = [];
    for (;;) {
      const reply = await ch0.nextFrame();
      if (reply.type === FrameType.ack) acks.push(new DataView(reply.payload.buffer, reply.payload.byteOffset).getUint32(0, true));
      else {
        expect(reply.type).toBe(FrameType.done);
        break;
      }
    }
    expect(acks).toEqual([1, 2]);
    expect((await completed).sha256).toBe(sha256([expected]));
  });
});

describe("the completion and its confirmation are authenticated", () => {
  it("refuses a completion whose MAC is not under the migration's key (digests forged on the path)", async () => {
    const channels = await handDriven();
    const [ch0] = channels;
    const failed = destination.next("failed");
    await ch0.send(FrameType.roundEnd, encodeRoundEnd({ round: 1, pages: 0, final: true }));
    await ch0.send(FrameType.deviceState, encodeDeviceStatePiece({ offset: 0, total: 0, bytes: new Uint8Array(0) }));
    await ch0.send(FrameType.complete, encodeComplete({ digests: [new Core(Region.create({ pageCount: 16 })).digest()] }, new Uint8Array(32)));
    const error = await destinationError(ch0);
    expect(error.reason).toBe("auth");
    expect((await failed).message).toMatch(/completion is not authenticated/);
  });

  /** A destination that authenticates, then answers done its own way (a relay that forges it). */
  async function forgingDestination(forge: (conn: Connection, key: Uint8Array) => Promise<void>): Promise<{ port: number; close: () => void }> {
    const server = createServer({ pauseOnConnect: true }, (socket) => {
      const conn = ConnectionClass.accept(socket, { expectPreamble: true });
      let key: Uint8Array = new Uint8Array(0);
      acceptChannel(conn, SECRET, (a) => void (key = a.key)).then(() => forge(conn, key), () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, close: () => server.close() };
  }

  it("refuses a done that comes before its completion", async () => {
    const fake = await forgingDestination(async (conn) => {
      await conn.send(FrameType.done, new Uint8Array(36));
    });
    try {
      const error = await rejection(new Source([Region.create({ pageCount: 16 })], { host: "127.0.0.1", port: fake.port, secret: SECRET, policy: stopCopy() }).migrate());
      expect(error.message).toMatch(/done before the source sent its completion/);
    } finally {
      fake.close();
    }
  });

  it("refuses a done whose MAC does not answer the completion", async () => {
    const fake = await forgingDestination(async (conn) => {
      for (;;) if ((await conn.nextFrame()).type === FrameType.complete) break;
      await conn.send(FrameType.done, new Uint8Array(36)); // 0 ms, and a MAC of zeros
    });
    try {
      const error = await rejection(new Source([Region.create({ pageCount: 16 })], { host: "127.0.0.1", port: fake.port, secret: SECRET, policy: stopCopy() }).migrate());
      expect(error.reason).toBe("auth");
      expect(error.message).toMatch(/confirmation \(done\) is not authenticated/);
    } finally {
      fake.close();
    }
  });
});

describe("timeouts end every wait", () => {
  /** A destination that authenticates, then does what `act` says (stall, stop reading...). */
  async function stallingDestination(act: (conn: Connection) => void | Promise<void>): Promise<{ port: number; close: () => void }> {
    const server = createServer({ pauseOnConnect: true }, (socket) => {
      const conn = ConnectionClass.accept(socket, { expectPreamble: true });
      acceptChannel(conn, SECRET, () => undefined).then(() => act(conn), () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, close: () => server.close() };
  }

  async function migrateInto(port: number, region: Region) {
    let resumed = 0;
    const source = new Source([region], {
      host: "127.0.0.1", port, secret: SECRET, policy: stopCopy(), timeoutMs: 500,
      hooks: { pause: () => undefined, resume: () => void resumed++ },
    });
    const error = await rejection(source.migrate());
    return { error, resumed };
  }

  it("a source gives up on a destination that never confirms the digest, and resumes its guest", async () => {
    const fake = await stallingDestination(async (conn) => {
      for (;;) if ((await conn.nextFrame(0)).type === FrameType.complete) return; // then silence
    });
    try {
      const { error, resumed } = await migrateInto(fake.port, Region.create({ pageCount: 16 }));
      expect(error.message).toMatch(/did not confirm the digest, nor send anything, within 0.5 s/);
      expect(resumed).toBe(1);
    } finally {
      fake.close();
    }
  });

  it("a source gives up on a destination that stops reading mid-round, and resumes its guest", async () => {
    const fake = await stallingDestination((conn) => {
      // Takes one frame, then never reads again, as a destination stuck at a barrier would.
      conn.maxPayload = () => 64 << 20;
      conn.setSink({ begin: (_t, length, prefix) => new Uint8Array(length - prefix.length), end: () => false });
    });
    try {
      const { error, resumed } = await migrateInto(fake.port, guest(16384, 21)); // 64 MiB: more than socket buffers hold
      expect(error.message).toMatch(/stopped reading: nothing it was sent went out for 0.5 s/);
      expect(resumed).toBe(1);
    } finally {
      fake.close();
    }
  });

  it("keepalives carry a migration through quiet phases longer than either side's timeout: a slow device-state hook, a slow verification", async () => {
    const listener = new Listener({ secret: SECRET, idleTimeoutMs: 300 });
    const port = await listener.listen(0);
    try {
      const region = guest(256, 23);
      const received = listener.next();
      const source = new Source([region], {
        host: "127.0.0.1", port, secret: SECRET, policy: stopCopy(), keepaliveMs: 50,
        hooks: { deviceState: () => new Promise<Uint8Array>((resolve) => setTimeout(() => resolve(new Uint8Array([1, 2, 3])), 1000)) },
      });
      expect((await source.migrate()).status).toBe("completed");
      expect((await received).deviceState).toEqual(new Uint8Array([1, 2, 3]));
    } finally {
      await listener.close();
    }
    // A destination that takes 1.5 s to answer the completion but sends keepalives meanwhile, to a source that waits 0.5 s.
    const slow = await stallingDestination(async (conn) => {
      for (;;) if ((await conn.nextFrame(0)).type === FrameType.complete) break;
      conn.keepAlive(100);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      conn.fail(new WireError("digest", "a verification that took its time and found a difference"), true);
    });
    try {
      const { error } = await migrateInto(slow.port, Region.create({ pageCount: 16 }));
      expect(error.message).toMatch(/took its time/);
    } finally {
      slow.close();
    }
  });

  it("a listener drops a source that goes silent after its handshake, and its fixed memory is free again", async () => {
    const memory = [Region.create({ pageCount: 16 })];
    const listener = new Listener({ secret: SECRET, regions: memory, zeroed: true, idleTimeoutMs: 300 });
    const port = await listener.listen(0);
    try {
      const failed = listener.next();
      const migrationId = newMigrationId();
      await connectChannel({ host: "127.0.0.1", port, secret: SECRET, migrationId, channelCount: 1, channelIndex: 0, offer: { pageSize: 4096, encodings: 0, batchPages: 256, regions: [16] } });
      await expect(failed).rejects.toThrow(/sent nothing for 0.3 s: it stalled or left/);
      const completed = listener.next();
      await new Source([guest(16, 22)], { host: "127.0.0.1", port, secret: SECRET }).migrate();
      expect(sha256((await completed).regions)).toBe(sha256([guest(16, 22)]));
    } finally {
      await listener.close();
    }
  });
});

describe("faults during a migration", () => {
  it("survives a connection cut mid-round: clear error, source intact, retry succeeds", async () => {
    const proxy = await cuttingProxy(destination.port, 2 << 20);
    try {
      const region = guest(4096, 13);
      const { source, writer } = await migrateWithWriter(region, proxy.port, { bandwidth: 50e6 });
      const failed = destination.next("failed");
      const error = await rejection(source.migrate());
      expect(error.message).toMatch(/connection|closed/);
      await failed;
      await stillRunningAndRetryWorks(region, writer);
    } finally {
      proxy.server.close();
    }
  });

  it("survives the destination process being killed mid-round", async () => {
    const doomed = await startDestination("--secret", SECRET);
    const region = guest(4096, 14);
    // About 8 MiB to send at 20 MB/s: the kill lands well inside the transfer.
    const { source, writer } = await migrateWithWriter(region, doomed.port, { bandwidth: 20e6, policy: stopCopy() });
    let killed = false;
    source.on("progress", (p) => {
      if (killed || p.transferred < 1 << 20) return;
      killed = true;
      doomed.kill();
    });
    const error = await rejection(source.migrate());
    expect(killed).toBe(true);
    expect(error.reason === "connection" || error.reason === "truncated").toBe(true);
    await stillRunningAndRetryWorks(region, writer);
  });

  it("cancels cleanly on abort, telling the destination", async () => {
    const region = guest(4096, 15);
    const cancel = new AbortController();
    const { source, writer } = await migrateWithWriter(region, destination.port, { bandwidth: 20e6, signal: cancel.signal });
    const failed = destination.next("failed");
    source.on("progress", (p) => p.transferred > 1 << 20 && cancel.abort());
    const error = await rejection(source.migrate());
    expect(error.message).toMatch(/cancelled/);
    expect((await failed).message).toMatch(/cancelled/);
    await stillRunningAndRetryWorks(region, writer);
  });
});

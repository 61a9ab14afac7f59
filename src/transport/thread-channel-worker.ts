// Worker: one channel of a migration at a time on a thread of its own (see thread-channel.ts). For
// each migration it opens and authenticates its connection, then writes the batches the main
// thread encoded, straight from the regions' shared memory, and says when each is written; a
// failure of its connection is reported once. Between migrations it waits, idle, for the next.
import { parentPort } from "node:worker_threads";
import { Region } from "../memory/region.js";
import type { Connection } from "./connection.js";
import { connectChannel } from "./handshake.js";
import { FrameChannel } from "./page-channel.js";
import { asWireError } from "../wire/errors.js";
import type { ThreadChannelSetup, ToThread, FromThread } from "./thread-channel.js";

const port = parentPort!;

interface Current {
  conn: Connection;
  channel: FrameChannel;
  regions: Region[];
}
/** The migration this thread serves now, once its connection is open. */
let current: Current | undefined;
/** The main thread's number for the migration served now: every answer carries it, so a late one of an earlier migration is told apart. */
let serial = 0;
const post = (m: FromThread) => port.postMessage({ ...m, serial });

function failed(of: number, error: unknown): void {
  if (of !== serial) return;
  current = undefined;
  const wire = asWireError(error);
  post({ kind: "failed", reason: wire.reason, message: wire.message });
}

async function open(setup: ThreadChannelSetup, mine: number): Promise<void> {
  serial = mine;
  try {
    const { conn } = await connectChannel({ ...setup.target, migrationId: new Uint8Array(setup.target.migrationId) });
    if (mine !== serial) return conn.close();
    current = { conn, channel: new FrameChannel(conn), regions: setup.regions.map((r) => Region.attach(r.memory, r.layout)) };
    conn.onFailure((error) => failed(mine, error));
    post({ kind: "open" });
  } catch (error) {
    failed(mine, error);
  }
}

port.on("message", (m: ToThread) => {
  if (m.kind === "open") return void open(m.setup, m.serial);
  if (m.kind === "close") {
    serial = 0; // what the closed connection still reports is no news
    current?.conn.close();
    current = undefined;
    return;
  }
  const c = current;
  if (!c) return; // its failure has been reported
  const done = (): void => post({ kind: "written", id: m.id, sent: c.conn.sent });
  // A failed write fails the connection, which is reported once, above.
  if (m.kind === "endRound") return void c.channel.endRound(m.end).then(done, () => undefined);
  const region = c.regions[m.region];
  c.channel
    .sendBatch({
      region: m.region,
      round: m.round,
      records: region.bytes.subarray(m.records, m.records + m.recordsLength),
      runs: m.runs,
      guest: region.pages(0, region.pageCount),
      pageSize: region.pageSize,
      framing: region.bytes.subarray(m.framing, m.framing + (m.runs.length / 2) * m.framingStride),
      framingStride: m.framingStride,
    })
    .then(done, () => undefined);
});

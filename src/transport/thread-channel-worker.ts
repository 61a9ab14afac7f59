// Worker: one channel of a migration at a time on a thread of its own (see thread-channel.ts). For
// each migration it opens and authenticates its connection, then writes the batches the main
// thread encoded, or encodes on its own lane the pages it is given, straight from the regions'
// shared memory, and says when each is written (and what an encoded batch held); it counts the
// pages of each round, which its round-ends carry. A failure of its connection is reported once.
// Between migrations it waits, idle, for the next.
import { parentPort } from "node:worker_threads";
import { Region } from "../memory/region.js";
import type { Connection } from "./connection.js";
import { connectChannel } from "./handshake.js";
import { type EncodedBatch, FrameChannel, type PageBatch } from "./page-channel.js";
import { Core } from "../core/core.js";
import { IO_HEADROOM, RUN_HEADER_SPACE } from "../memory/layout.js";
import { asWireError } from "../wire/errors.js";
import type { ThreadChannelSetup, ToThread, FromThread } from "./thread-channel.js";

const port = parentPort!;

interface Current {
  conn: Connection;
  channel: FrameChannel;
  regions: Region[];
  /** A Core per region on this thread's lane, when it encodes. */
  cores?: Core[];
  /** Pages carried in the round being sent. */
  roundPages: number;
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
    const regions = setup.regions.map((r) => Region.attach(r.memory, r.layout));
    const lane = setup.lane;
    current = { conn, channel: new FrameChannel(conn), regions, cores: lane === undefined ? undefined : regions.map((r) => new Core(r, lane, { keepEncodeStats: setup.resuming })), roundPages: 0 };
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
  const done = (encoded?: EncodedBatch) => (): void => post({ kind: "written", id: m.id, sent: c.conn.sent, encoded });
  // A failed write fails the connection, which is reported once, above.
  if (m.kind === "endRound") {
    const end = { ...m.end, pages: c.roundPages };
    c.roundPages = 0;
    return void c.channel.endRound(end).then(done(), () => undefined);
  }
  const region = c.regions[m.region];
  let batch: PageBatch;
  let encoded: EncodedBatch | undefined;
  if (m.kind === "encode") {
    const core = c.cores![m.region];
    core.setEncoding(m.encoding);
    core.list.set(m.pages);
    core.skipZero(m.fresh);
    const { layout } = region;
    const bytes = core.encode(m.pages.length, m.buffer + IO_HEADROOM);
    const runs = core.runs();
    let rawPages = 0;
    for (let r = 1; r < runs.length; r += 2) rawPages += runs[r];
    encoded = { records: core.encodedRecords, rawPages, bytes };
    batch = {
      region: m.region, round: m.round,
      records: region.bytes.subarray(m.buffer + IO_HEADROOM, m.buffer + IO_HEADROOM + bytes), recordCount: encoded.records,
      runs, guest: region.pages(0, region.pageCount), pageSize: region.pageSize,
      framing: region.bytes.subarray(m.buffer + layout.runHeadersOffset, m.buffer + layout.runHeadersOffset + layout.batchPages * RUN_HEADER_SPACE),
      framingStride: RUN_HEADER_SPACE,
    };
    c.roundPages += encoded.records + rawPages;
  } else {
    batch = {
      region: m.region, round: m.round,
      records: region.bytes.subarray(m.records, m.records + m.recordsLength), recordCount: 0,
      runs: m.runs, guest: region.pages(0, region.pageCount), pageSize: region.pageSize,
      framing: region.bytes.subarray(m.framing, m.framing + (m.runs.length / 2) * m.framingStride),
      framingStride: m.framingStride,
    };
    c.roundPages += m.pages;
  }
  c.channel.sendBatch(batch).then(done(encoded), () => undefined);
});

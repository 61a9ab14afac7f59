// Worker: one channel of a migration on a thread of its own (see thread-channel.ts). It opens and
// authenticates its connection, then writes the batches the main thread encoded, straight from
// the regions' shared memory, and says when each is written; a failure of its connection is
// reported once, and the thread then exits.
import { parentPort, workerData } from "node:worker_threads";
import { Region } from "../memory/region.js";
import { connectChannel } from "./handshake.js";
import { FrameChannel } from "./page-channel.js";
import { asWireError } from "../wire/errors.js";
import type { ThreadChannelSetup, ToThread, FromThread } from "./thread-channel.js";

const setup = workerData as ThreadChannelSetup;
const regions = setup.regions.map((r) => Region.attach(r.memory, r.layout));
const port = parentPort!;
const post = (m: FromThread) => port.postMessage(m);

function failed(error: unknown): void {
  const wire = asWireError(error);
  post({ kind: "failed", reason: wire.reason, message: wire.message });
  port.close();
}

async function run(): Promise<void> {
  const { conn } = await connectChannel({ ...setup.target, migrationId: new Uint8Array(setup.target.migrationId) });
  const channel = new FrameChannel(conn);
  conn.onFailure((error) => failed(error));
  post({ kind: "open" });
  port.on("message", (m: ToThread) => {
    if (m.kind === "close") {
      conn.close();
      port.close();
      return;
    }
    const done = (): void => post({ kind: "written", id: m.id, sent: conn.sent });
    if (m.kind === "endRound") {
      channel.endRound(m.end).then(done, () => undefined);
      return;
    }
    const region = regions[m.region];
    channel
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
      // A failed write fails the connection, which is reported once above.
      .then(done, () => undefined);
  });
}

run().catch(failed);

// The source side of post-copy (QEMU's postcopy-ram.c, source half): the switch-over, which tells
// the destination which pages it lacks and hands over the device state, then the push of every
// missing page, those the destination's guest asks for first.
import { FrameType } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import { PagewireError } from "../errors.js";
import { encodeSwitchover, type Switchover } from "../wire/pages.js";
import type { PageRequest } from "../wire/messages.js";
import type { Connection } from "../transport/connection.js";
import { type FailureLatch, Wakeup } from "./failure.js";
import type { RoundSender } from "./round-sender.js";
import type { Core } from "../core/core.js";
import type { RoundReport, SourceCounters } from "./stats.js";

/**
 * Background batches in flight during post-copy: few, so that a page the destination's guest is
 * blocked on does not queue behind megabytes of pushed pages in the socket.
 */
const POSTCOPY_PUSH_DEPTH = 2;

export class PostcopySource {
  private readonly requests: PageRequest[] = [];
  private readonly requestArrived = new Wakeup();

  constructor(
    private readonly sender: RoundSender,
    private readonly latch: FailureLatch,
    private readonly counters: SourceCounters,
  ) {
    latch.onFail(() => this.requestArrived.wake());
  }

  /** A page request from the destination (after the switch-over); one outside the guest is a protocol error. */
  request(r: PageRequest): void {
    const region = this.sender.cores[r.region]?.region;
    if (!region || r.count < 1 || r.page + r.count > region.pageCount) {
      throw new WireError("badFrame", `page request for pages ${r.page}+${r.count} of region ${r.region}, which the guest does not have`);
    }
    this.counters.postcopyRequests++;
    this.counters.postcopyRequestedPages += r.count;
    this.requests.push(r);
    this.requestArrived.wake();
  }

  /**
   * With the guest paused here: sends, as one round, the bitmap of pages each region lacks and
   * the device state (`handOver`), after which the destination resumes the guest. Returns that
   * round's report and the pages still to push.
   */
  async switchOver(channel0: Connection, handOver: () => Promise<void>): Promise<{ report: RoundReport; missing: number }> {
    let missing = 0;
    const report = await this.sender.runRound(this.sender.round + 1, "switchover", 0, async () => {
      const perRegion = this.sender.takeMissing();
      for (const [i, core] of this.sender.cores.entries()) {
        missing += perRegion[i];
        const { auxBitmap, bitmapBytes } = core.region.layout;
        await channel0.send(FrameType.switchover, encodeSwitchover({ region: i, bitmap: core.region.bytes.subarray(auxBitmap, auxBitmap + bitmapBytes) }));
      }
      await handOver();
    });
    return { report, missing };
  }

  /** The final round: every missing page (set in each region's aux bitmap, cleared as it goes) exactly once. */
  push(missing: number): Promise<RoundReport> {
    return this.sender.runRound(this.sender.round + 1, "postcopy", missing, () => this.pushAll(missing));
  }

  /**
   * Requested ranges first, then the rest in address order from just after the last request
   * (pre-paging), with few background batches in flight so that a request never waits behind many.
   */
  private async pushAll(missing: number): Promise<void> {
    const { cores } = this.sender;
    const cursor = { region: 0, from: 0 };
    let inFlight = 0;
    const batchDone = new Wakeup();
    while (missing > 0) {
      this.latch.check();
      const request = this.requests.shift();
      if (request) {
        missing -= await this.pushRange(request.region, request.page, request.page + request.count);
        cursor.region = request.region;
        cursor.from = request.page + request.count;
        continue;
      }
      if (inFlight >= POSTCOPY_PUSH_DEPTH) {
        await Promise.race([batchDone.wait(), this.requestArrived.wait()]);
        continue;
      }
      const i = cursor.region;
      const core = cores[i];
      const n = core.take(core.region.layout.auxBitmap, cursor.from);
      cursor.from = core.scanEnd;
      if (cursor.from >= core.region.pageCount) {
        cursor.region = (i + 1) % cores.length;
        cursor.from = 0;
      }
      if (n === 0) continue;
      missing -= n;
      inFlight++;
      const { written } = await this.sender.sendBatch(i, n, false);
      written.then(
        () => {
          inFlight--;
          batchDone.wake();
        },
        // The failure itself reaches the latch through sendBatch; this only unblocks the wait.
        () => batchDone.wake(),
      );
      // Small writes (zero pages) complete without I/O, so this loop could run to the end without
      // ever reading the return path: a page request, or the switch-over's ack, would wait for it.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Sends the pages of [from, to) in region i still missing at the destination; returns how many. */
  private async pushRange(i: number, from: number, to: number): Promise<number> {
    const core = this.sender.cores[i];
    const { auxBitmap } = core.region.layout;
    let sent = 0;
    while (from < to) {
      const n = core.take(auxBitmap, from, to);
      from = core.scanEnd;
      if (n === 0) break;
      sent += n;
      await this.sender.sendBatch(i, n, false);
    }
    return sent;
  }
}

/**
 * After a post-copy reconnection the destination says, region by region in order, which pages it
 * still lacks (its guest has written the others since, which must not be overwritten): `handle`
 * takes each bitmap into the region's aux bitmap, the push set; `missing` resolves with their
 * count once every region's came, or rejects on the migration's failure.
 */
export function collectStillMissing(cores: Core[], latch: FailureLatch): { handle: (m: Switchover) => void; missing: Promise<number> } {
  let next = 0;
  let count = 0;
  let done!: (n: number) => void;
  const missing = new Promise<number>((resolve, reject) => {
    done = resolve;
    latch.onFail(reject);
  });
  const handle = ({ region, bitmap }: Switchover) => {
    const core = cores[region];
    if (region !== next || !core || bitmap.length !== core.region.layout.bitmapBytes) {
      throw new WireError("badFrame", `the destination's still-missing bitmap names region ${region} with ${bitmap.length} bytes; region ${next} was next`);
    }
    core.region.bytes.set(bitmap, core.region.layout.auxBitmap);
    count += core.countBitmap(core.region.layout.auxBitmap);
    if (++next === cores.length) done(count);
  };
  return { handle, missing };
}

/** A failure after the switch-over: the guest has run on the destination, so neither side can go on. */
export function postcopyLost(error: Error): PagewireError {
  return new PagewireError(
    "EPOSTCOPY",
    `post-copy failed after the switch-over: ${error.message}. The guest had resumed on the destination with part of its memory there, ` +
      "so it cannot continue on either side; restart it (from a checkpoint, if you have one)",
  );
}

// One channel of a migration being received, and the frame being read on it: the round it is in,
// the pages it carried in that round, and where the current frame's payload goes. It checks every
// prefix (wire/pages.ts) against the channel's state and hands the frame to its session.
import type { Region } from "../memory/region.js";
import { FRAME_NAMES, FrameType, PAGES_PREFIX_BYTES } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import type { FrameSink } from "../wire/frame.js";
import { readPagesPrefix, readRawRunPrefix, type PagesPrefix, type RawRunPrefix } from "../wire/pages.js";
import { decodeRoundEnd } from "../wire/messages.js";

/** What a channel needs of the session it belongs to. */
export interface ChannelOwner {
  readonly regions: Region[];
  /** Where the records of a pages frame of `length` record bytes for `region` on `channel` are read to. */
  recordsTarget(channel: number, region: number, length: number): Uint8Array;
  /** Applies the records read there; returns the pages applied. */
  applyRecords(channel: number, region: number, length: number): number;
  /** Checks that a raw run may be written (post-copy: only pages still expected); returns its guest memory. */
  runTarget(run: RawRunPrefix): Uint8Array;
  /** The run's pages are in guest memory. */
  runArrived(run: RawRunPrefix): void;
  /** Every channel's round ends here; returns false to hold this channel until the others catch up. */
  roundEnded(channel: number, round: number, final: boolean): boolean;
  /** A control frame that is not a round end (device state, switchover, complete, cancel); returns false to stop reading. */
  control(channel: number, type: number, payload: Uint8Array): boolean;
  /**
   * A channel opened after a reconnection names its first round: it must come after every round
   * the session finished, and be the same on every channel. Throws if not.
   */
  resumedAt(channel: number, round: number): void;
}

/** Control frames a session takes on channel 0 only; round-end and cancel come on any. */
const CHANNEL_0_ONLY: ReadonlySet<number> = new Set([FrameType.deviceState, FrameType.complete, FrameType.switchover]);

export class ChannelReader implements FrameSink {
  /** The round this channel is receiving. */
  round = 1;
  /** Pages it carried in that round. */
  private pagesThisRound = 0;
  /** It ended the final round. */
  finished = false;
  // The frame being read (its prefix is decoded into these, reused frame after frame).
  private readonly pages: PagesPrefix = { region: 0, round: 0 };
  private readonly run: RawRunPrefix = { region: 0, round: 0, first: 0, count: 0 };
  private payload: Uint8Array = new Uint8Array(0);
  private length = 0;
  /** A raw run is being read into guest memory (begun, not ended). */
  private runOpen = false;

  /** Set on a channel opened after a reconnection: its first round is the one its first frame names. */
  private adopting: boolean;

  constructor(
    private readonly owner: ChannelOwner,
    readonly index: number,
    resumed = false,
  ) {
    this.adopting = resumed;
  }

  /** The raw run the connection broke in the middle of, if it did: its pages are in guest memory only in part. */
  get cutRun(): RawRunPrefix | undefined {
    return this.runOpen ? this.run : undefined;
  }

  /** The round a frame names; on a reconnected channel, its first frame sets the round. */
  private check(round: number): void {
    if (!this.adopting) return;
    this.owner.resumedAt(this.index, round);
    this.round = round;
    this.adopting = false;
  }

  begin(type: number, length: number, prefix: Uint8Array): Uint8Array {
    this.length = length;
    if (type === FrameType.pages) {
      this.checkPageFrame(type, readPagesPrefix(prefix, this.pages));
      return this.owner.recordsTarget(this.index, this.pages.region, length - PAGES_PREFIX_BYTES);
    }
    if (type === FrameType.rawRun) {
      const run = readRawRunPrefix(prefix, this.run);
      const region = this.checkPageFrame(type, run);
      if (run.first + run.count > region.pageCount) throw new WireError("badFrame", `raw-run frame names pages ${run.first}..${run.first + run.count - 1} of a ${region.pageCount}-page region`);
      if (length - prefix.length !== run.count * region.pageSize) {
        throw new WireError("badFrame", `raw-run frame of ${run.count} pages carries ${length - prefix.length} bytes, not ${run.count * region.pageSize}`);
      }
      const target = this.owner.runTarget(run);
      this.runOpen = true;
      return target;
    }
    if (type === FrameType.keepalive) {
      if (length !== 0) throw new WireError("badFrame", `a keepalive frame of ${length} bytes on channel ${this.index}; it has none`);
      return (this.payload = new Uint8Array(0));
    }
    if (type === FrameType.roundEnd || type === FrameType.cancel || (CHANNEL_0_ONLY.has(type) && this.index === 0)) {
      return (this.payload = new Uint8Array(length));
    }
    throw new WireError("unexpectedFrame", `a ${FRAME_NAMES[type]} frame has no place on channel ${this.index} of a migration`);
  }

  /** A page frame must name a region of the guest and this channel's round, before the final round ended. */
  private checkPageFrame(type: number, p: PagesPrefix): Region {
    const name = FRAME_NAMES[type];
    const region = this.owner.regions[p.region];
    if (!region) throw new WireError("badFrame", `${name} frame names region ${p.region}; the guest has ${this.owner.regions.length}`);
    if (this.finished) throw new WireError("unexpectedFrame", `${name} frame after the final round on channel ${this.index}`);
    this.check(p.round);
    if (p.round !== this.round) throw new WireError("badFrame", `${name} frame of round ${p.round} arrived on channel ${this.index} during round ${this.round}`);
    return region;
  }

  end(type: number): boolean {
    if (type === FrameType.pages) {
      this.pagesThisRound += this.owner.applyRecords(this.index, this.pages.region, this.length - PAGES_PREFIX_BYTES);
      return true;
    }
    if (type === FrameType.rawRun) {
      this.runOpen = false;
      this.owner.runArrived(this.run);
      this.pagesThisRound += this.run.count;
      return true;
    }
    if (type === FrameType.roundEnd) return this.roundEnd(decodeRoundEnd(this.payload));
    if (type === FrameType.keepalive) return true;
    return this.owner.control(this.index, type, this.payload);
  }

  private roundEnd(e: { round: number; pages: number; final: boolean }): boolean {
    this.check(e.round);
    if (e.round !== this.round) throw new WireError("badFrame", `channel ${this.index} ended round ${e.round} while in round ${this.round}`);
    if (e.pages !== this.pagesThisRound) {
      throw new WireError("badFrame", `channel ${this.index} announced ${e.pages} pages for round ${e.round} but carried ${this.pagesThisRound}`);
    }
    this.round++;
    this.pagesThisRound = 0;
    if (e.final) this.finished = true;
    return this.owner.roundEnded(this.index, e.round, e.final);
  }
}

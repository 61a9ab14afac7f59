// The seam between the round sender and where a round's pages go. A TCP connection is one kind
// of channel (FrameChannel, below); a channel run by a worker thread or a checkpoint file is
// another, and the round loop and the policies do not change for either.
import type { Connection } from "./connection.js";
import { FRAME_HEADER_BYTES, FrameType, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES } from "../wire/constants.js";
import { writePagesPrefix, writeRawRunPrefix } from "../wire/pages.js";
import { encodeRoundEnd, type RoundEnd } from "../wire/messages.js";

/** Bytes in front of a batch's records that a channel may write its framing into. */
export const RECORDS_HEADROOM = FRAME_HEADER_BYTES + PAGES_PREFIX_BYTES;
/** Bytes of scratch a channel may use to frame one run of raw pages. */
export const RUN_FRAMING_BYTES = FRAME_HEADER_BYTES + RAW_RUN_PREFIX_BYTES;

export interface PageChannel {
  /** Bytes handed to the channel and not yet passed on: the sender picks the least loaded. */
  readonly backlog: number;
  /** Bytes sent so far, framing included. */
  readonly sent: number;
  /**
   * Sends a batch of page records (assembly/records.ts) of `region` in `round`. The
   * RECORDS_HEADROOM bytes in front of `records`, in the same buffer, are the channel's to write.
   * Resolves once the records' memory may be reused.
   */
  sendRecords(region: number, round: number, records: Uint8Array): Promise<void>;
  /**
   * Sends pages [first, first + count) of `region` in `round`, straight from `pages` (their guest
   * memory), using `framing` (RUN_FRAMING_BYTES) as scratch. Resolves once both may be reused.
   */
  sendRun(region: number, round: number, first: number, count: number, pages: Uint8Array, framing: Uint8Array): Promise<void>;
  /** Ends a round on this channel, with the pages it carried in it. */
  endRound(end: RoundEnd): Promise<void>;
}

/** A channel that is a TCP connection: pages and raw-run frames (docs/PROTOCOL.md), without copies. */
export class FrameChannel implements PageChannel {
  constructor(readonly connection: Connection) {}

  get backlog(): number {
    return this.connection.socket.writableLength;
  }

  get sent(): number {
    return this.connection.sent;
  }

  sendRecords(region: number, round: number, records: Uint8Array): Promise<void> {
    const framed = new Uint8Array(records.buffer, records.byteOffset - RECORDS_HEADROOM, RECORDS_HEADROOM + records.length);
    writePagesPrefix(framed.subarray(FRAME_HEADER_BYTES), { region, round });
    return this.connection.sendParts(FrameType.pages, framed.subarray(0, FRAME_HEADER_BYTES), [framed.subarray(FRAME_HEADER_BYTES)]);
  }

  sendRun(region: number, round: number, first: number, count: number, pages: Uint8Array, framing: Uint8Array): Promise<void> {
    const prefix = framing.subarray(FRAME_HEADER_BYTES, RUN_FRAMING_BYTES);
    writeRawRunPrefix(prefix, { region, round, first, count });
    return this.connection.sendParts(FrameType.rawRun, framing.subarray(0, FRAME_HEADER_BYTES), [prefix, pages]);
  }

  endRound(end: RoundEnd): Promise<void> {
    return this.connection.send(FrameType.roundEnd, encodeRoundEnd(end));
  }
}

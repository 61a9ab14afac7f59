// The seam between the round sender and where a round's pages go. A TCP connection is one kind
// of channel (FrameChannel, below); a channel run by a worker thread or a checkpoint file is
// another, and the round loop and the policies do not change for either.
import type { Connection } from "./connection.js";
import { FRAME_HEADER_BYTES, FrameType, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES } from "../wire/constants.js";
import { writePagesPrefix, writeRawRunPrefix } from "../wire/pages.js";
import { writeFrameHeader } from "../wire/frame.js";
import type { EncodingOptions } from "../core/core.js";
import type { EncodeStats } from "../abi/abi.js";
import { encodeRoundEnd, type RoundEnd } from "../wire/messages.js";

/** Bytes in front of a batch's records that a channel may write its framing into. */
export const RECORDS_HEADROOM = FRAME_HEADER_BYTES + PAGES_PREFIX_BYTES;
/** Bytes of scratch a channel may use to frame one run of raw pages. */
export const RUN_FRAMING_BYTES = FRAME_HEADER_BYTES + RAW_RUN_PREFIX_BYTES;

/** One encoded batch of a region's pages, as the round sender hands it to a channel. */
export interface PageBatch {
  region: number;
  round: number;
  /**
   * The batch's page records (assembly/records.ts), possibly none; the RECORDS_HEADROOM bytes in
   * front of them, in the same buffer, are the channel's to write.
   */
  records: Uint8Array;
  /** How many records `records` holds. */
  recordCount: number;
  /** Its runs of raw pages, as (first page, count) pairs, sent straight from guest memory. */
  runs: Uint32Array;
  /** The region's guest memory from page 0, and its page size. */
  guest: Uint8Array;
  pageSize: number;
  /** Scratch for framing the runs: RUN_HEADER_SPACE bytes (src/memory/layout.ts) per run. */
  framing: Uint8Array;
  /** Bytes of scratch per run in `framing`. */
  framingStride: number;
}

/** A batch for a channel that encodes on a thread of its own: which pages, how, and into which buffer. */
export interface PagesToEncode {
  region: number;
  round: number;
  /** The pages, in the order to encode them. */
  pages: Uint32Array;
  /** Pages never sent before: a zero one gets no record (the destination starts zeroed). */
  fresh: boolean;
  encoding: EncodingOptions;
  /** The address of the I/O buffer (src/memory/layout.ts) to encode into. */
  buffer: number;
}

/** What an encoded batch held. */
export interface EncodedBatch {
  records: number;
  rawPages: number;
  /** Bytes of records. */
  bytes: number;
}

export interface PageChannel {
  /** Bytes handed to the channel and not yet passed on: the sender picks the least loaded. */
  readonly backlog: number;
  /** Bytes sent so far, framing included. */
  readonly sent: number;
  /** Sends a batch: its runs and its records. Resolves once its memory (records, pages, framing) may be reused. */
  sendBatch(batch: PageBatch): Promise<void>;
  /**
   * Encodes the pages on the channel's own thread and sends them; resolves, once written, with
   * what the batch held. Only a channel with a lane of its own has it; never with delta encoding
   * (the delta cache is the region's, one per guest).
   */
  encodeBatch?(batch: PagesToEncode): Promise<EncodedBatch>;
  /** The encoder's counters of what such a channel encoded (its lane's, in every region). */
  encodeStats?(): EncodeStats;
  /** Ends a round on this channel, with the pages it carried in it. */
  endRound(end: RoundEnd): Promise<void>;
}

/**
 * A channel that is a TCP connection: pages and raw-run frames (docs/PROTOCOL.md), without copies.
 * A batch goes in one write: each run a frame (its header and prefix in the run's framing slot,
 * then its pages), the records another; a scattered guest's batch is dozens of short runs, and a
 * write per frame cost a system call and a handful of promises each.
 */
export class FrameChannel implements PageChannel {
  constructor(readonly connection: Connection) {}

  get backlog(): number {
    return this.connection.socket.writableLength;
  }

  get sent(): number {
    return this.connection.sent;
  }

  sendBatch(b: PageBatch): Promise<void> {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let r = 0; r < b.runs.length; r += 2) {
      const first = b.runs[r];
      const count = b.runs[r + 1];
      const at = (r / 2) * b.framingStride;
      const framing = b.framing.subarray(at, at + RUN_FRAMING_BYTES);
      const bytes = count * b.pageSize;
      writeFrameHeader(framing, 0, FrameType.rawRun, RAW_RUN_PREFIX_BYTES + bytes);
      writeRawRunPrefix(framing.subarray(FRAME_HEADER_BYTES), { region: b.region, round: b.round, first, count });
      parts.push(framing, b.guest.subarray(first * b.pageSize, first * b.pageSize + bytes));
      length += RUN_FRAMING_BYTES + bytes;
    }
    if (b.records.length > 0) {
      const framed = new Uint8Array(b.records.buffer, b.records.byteOffset - RECORDS_HEADROOM, RECORDS_HEADROOM + b.records.length);
      writeFrameHeader(framed, 0, FrameType.pages, PAGES_PREFIX_BYTES + b.records.length);
      writePagesPrefix(framed.subarray(FRAME_HEADER_BYTES), { region: b.region, round: b.round });
      parts.push(framed);
      length += framed.length;
    }
    // A batch of zero pages sent for the first time has nothing to write.
    return parts.length > 0 ? this.connection.sendFrames(parts, length) : Promise.resolve();
  }

  endRound(end: RoundEnd): Promise<void> {
    return this.connection.send(FrameType.roundEnd, encodeRoundEnd(end));
  }
}

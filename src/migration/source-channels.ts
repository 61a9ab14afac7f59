// A source's channels to its destination: channel 0 with the offer, then the others, each
// authenticated; where their failures go, channel 0's keepalives, and the return path. Opened
// again, under the same migration id, each time a broken connection is replaced.
import type { Region } from "../memory/region.js";
import type { Connection } from "../transport/connection.js";
import { connectChannel } from "../transport/handshake.js";
import { FrameChannel, type PageChannel } from "../transport/page-channel.js";
import { ThreadChannel } from "../transport/thread-channel.js";
import { TokenBucket } from "../transport/token-bucket.js";
import { Encoding, FrameType, MAX_CONTROL_PAYLOAD, OfferFlags, SWITCHOVER_PREFIX_BYTES } from "../wire/constants.js";
import { asWireError } from "../wire/errors.js";
import { newMigrationId } from "../wire/auth.js";
import type { Offer } from "../wire/messages.js";
import type { FailureLatch } from "./failure.js";
import { ReturnPath, type ReturnPathHandlers } from "./return-path.js";
import type { SourceOptions } from "./source-options.js";

/** A channel's end on this side: a connection, or a thread that holds one (channelThreads). */
export type ChannelEnd = Connection | ThreadChannel;

export interface OpenChannels {
  /** Channel 0: the offer, the control frames, the return path. */
  control: Connection;
  /** Every channel, channel 0 first. */
  ends: ChannelEnd[];
  frames: PageChannel[];
  returnPath: ReturnPath;
  /** The session key of channel 0's handshake: it authenticates complete and done. */
  key: Uint8Array;
}

export class SourceChannels {
  private readonly migrationId = newMigrationId();
  /** The rate limit all channels share, across reconnections too. */
  private readonly bucket: TokenBucket | undefined;
  /** The destination accepted channel 0 once: from then on it holds the migration, and a reconnection resumes it. */
  private admitted = false;

  constructor(
    private readonly regions: Region[],
    private readonly options: SourceOptions,
  ) {
    this.bucket = options.bandwidth ? new TokenBucket(options.bandwidth) : undefined;
  }

  private offer(resuming: boolean): Offer {
    const o = this.options;
    return {
      pageSize: this.regions[0].pageSize,
      encodings: (o.compress ? Encoding.lz4 : 0) | (o.delta ? Encoding.delta : 0),
      batchPages: Math.max(...this.regions.map((r) => r.layout.batchPages)),
      regions: this.regions.map((r) => r.pageCount),
      flags: (o.reconnect ?? 0) > 0 ? OfferFlags.resumable | (resuming && this.admitted ? OfferFlags.resuming : 0) : 0,
    };
  }

  /**
   * Opens every channel (resuming: as the reconnection of a migration the destination holds);
   * their failures go to `latch`, but for a close of a channel other than 0 once `quietClose()`
   * says so. Channels opened before one is refused are closed again.
   */
  async open(resuming: boolean, latch: FailureLatch, handlers: () => ReturnPathHandlers, quietClose: () => boolean): Promise<OpenChannels> {
    const o = this.options;
    const count = o.channels ?? 1;
    const target = { host: o.host, port: o.port, secret: o.secret ?? "", migrationId: this.migrationId, channelCount: count, bucket: this.bucket, timeoutMs: o.timeoutMs, tls: o.tls };
    if (o.channelThreads) ThreadChannel.warm(count - 1);
    const { conn: first, key } = await connectChannel({ ...target, channelIndex: 0, offer: this.offer(resuming) });
    this.admitted = true;
    // Channels past 0 on threads of their own, or here; a thread's channel shares this side's rate limit.
    // A thread encodes too, on the lane of its channel's number, where every region has one.
    const laneFor = (channelIndex: number) => (this.regions.every((r) => r.layout.lanes.length > channelIndex) ? channelIndex : undefined);
    const openOther = (channelIndex: number): Promise<Connection | ThreadChannel> =>
      o.channelThreads ? ThreadChannel.open(this.regions, { ...target, channelIndex }, this.bucket, laneFor(channelIndex), resuming) : connectChannel({ ...target, channelIndex }).then((h) => h.conn);
    const others = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => openOther(i + 1)));
    const ends: ChannelEnd[] = [first, ...others.flatMap((other) => (other.status === "fulfilled" ? [other.value] : []))];
    const refused = others.find((other) => other.status === "rejected") as PromiseRejectedResult | undefined;
    if (refused) {
      for (const c of ends) c.fail(asWireError(refused.reason), true);
      throw refused.reason;
    }
    ends.forEach((c, index) =>
      c.onFailure((error) => {
        // Once the completion went, only channel 0 has anything left to carry (done): the
        // destination closing the others as it finishes may overtake done on the wire.
        if (index > 0 && quietClose() && error.reason === "connection") return;
        latch.fail(error);
      }),
    );
    latch.check();
    // Keepalives cover the phases where the source sends nothing: the embedder's pause and device-state hooks, the digest.
    first.keepAlive(o.keepaliveMs ?? 1000);
    // After a post-copy reconnection the destination sends a bitmap per region, larger than other control frames.
    const stillMissingBytes = SWITCHOVER_PREFIX_BYTES + Math.max(...this.regions.map((r) => r.layout.bitmapBytes));
    first.maxPayload = (type) => (type === FrameType.stillMissing ? stillMissingBytes : MAX_CONTROL_PAYLOAD);
    const returnPath = new ReturnPath(first, latch, handlers, o.timeoutMs ?? 30_000);
    return { control: first, ends, frames: ends.map((c) => (c instanceof ThreadChannel ? c : new FrameChannel(c))), returnPath, key };
  }
}

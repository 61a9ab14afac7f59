// One migration being received: its channels (attached as they authenticate), the routing of
// their frames into guest memory, the round barrier that keeps copies of a page in order across
// channels, the device state, and the completion: the digest checked before the guest resumes.
import { Core, DecodeError } from "../core/core.js";
import type { DigestPool } from "../core/digest.js";
import type { Region } from "../memory/region.js";
import { IO_HEADROOM } from "../memory/layout.js";
import type { Connection } from "../transport/connection.js";
import { FrameType, OfferFlags, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES, DEVICE_STATE_PIECE, MAX_CONTROL_PAYLOAD, SWITCHOVER_PREFIX_BYTES } from "../wire/constants.js";
import { WireError, asWireError } from "../wire/errors.js";
import { type Offer, decodeDeviceStatePiece, decodeComplete, decodeFailure, encodeAck, encodeDone, DEVICE_STATE_HEADER_BYTES, encodePageRequest } from "../wire/messages.js";
import { decodeSwitchover, encodeSwitchover, type RawRunPrefix } from "../wire/pages.js";
import { ChannelReader, type ChannelOwner } from "./channel-reader.js";
import { DeviceStateAssembler } from "./device-state.js";
import { PostcopyDestination } from "./postcopy-destination.js";
import { DestinationProof } from "./destination-proof.js";
import { asError } from "./failure.js";
import type { DestinationHooks, SessionResult, SessionProgress } from "./listener-types.js";

/** While verifying, channel 0 sends a keepalive after this long without a write. */
const VERIFY_KEEPALIVE_MS = 1000;

export class Session implements ChannelOwner {
  private readonly cores: Core[];
  private readonly channels: Connection[] = [];
  private readonly readers: ChannelReader[] = [];
  private waitingAtBarrier = 0;
  private pages = 0;
  private rounds = 0;
  private deviceState = new DeviceStateAssembler();
  private readonly postcopy: PostcopyDestination;
  private postcopyRequests = 0;
  /** Resolves once the guest runs (post-copy) or when there is nothing to wait for. */
  private guestStarted: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  /** The completion arrived: the destination is verifying, nothing more is due from the source. */
  private completing = false;
  private done = false;
  private readonly start = performance.now();
  /** What proves the migration here: the digest's group terms, kept current as pages arrive. */
  private readonly proof: DestinationProof;
  private settle!: { resolve: (r: SessionResult) => void; reject: (e: Error) => void };
  readonly result: Promise<SessionResult>;

  constructor(
    readonly id: string,
    /** The session key from channel 0's handshake (the latest, after a reconnection): it authenticates complete and done. */
    private key: Uint8Array,
    readonly regions: Region[],
    readonly offer: Offer,
    readonly channelCount: number,
    private readonly hooks: DestinationHooks | undefined,
    digests: DigestPool,
    /** Told each time a channel ends a round. */
    private readonly onRoundEnd: (channel: number, round: number) => void = () => undefined,
    private readonly idleTimeoutMs = 60_000,
  ) {
    this.cores = regions.map((r) => {
      const core = new Core(r);
      core.trackReceived(true);
      core.clearBitmap(r.layout.auxBitmap);
      return core;
    });
    this.proof = new DestinationProof(regions, digests, () => this.postcopy.active);
    this.postcopy = new PostcopyDestination(this.cores, digests, this.proof.threadTime, (region, page, count) => this.requestPages(region, page, count));
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    const stop = () => this.proof.stop();
    this.result.then(stop, stop);
    this.resumable = ((offer.flags ?? 0) & OfferFlags.resumable) !== 0;
    this.watchIdle(idleTimeoutMs);
    // The listener reports the outcome; nobody else need handle a rejection.
    this.result.catch(() => undefined);
  }

  /** The source reconnects after a broken connection (its offer said so): a break suspends the session instead of failing it. */
  private readonly resumable: boolean;
  /** Set while the channels are gone and the source is expected back; ends it if the source is not back in time. */
  private suspension: { timer: NodeJS.Timeout; cause: Error } | undefined;
  /** Bytes received on channels that broke since. */
  private receivedBefore = 0;
  /** The first round of the channels opened after the last reconnection, once one named it. */
  private resumedRound: number | undefined;
  /** Reconnections so far. */
  reconnections = 0;

  private get received(): number {
    return this.receivedBefore + this.channels.reduce((s, c) => s + (c?.received ?? 0), 0);
  }

  /**
   * A channel broke: the session fails, or, when the source said it reconnects and nothing is
   * past the point where resuming is safe, waits for it with what it holds.
   */
  private channelFailed(error: WireError): void {
    const breakage = error.reason === "connection" || error.reason === "truncated";
    // Post-copy resumes once the guest runs here (it waits on missing pages meanwhile); between
    // the switch-over and the device state, the source still holds the guest and takes it back.
    const postcopyBeforeGuest = this.postcopy.active && !this.guestRan;
    if (!this.resumable || !breakage || this.completing || this.done || postcopyBeforeGuest || this.failure) return this.fail(error);
    if (this.suspension) return;
    this.receivedBefore = this.received;
    for (const reader of this.readers) {
      const cut = reader?.cutRun;
      if (!cut) continue;
      // Part of the run is in guest memory: its chunks' hashes are stale.
      this.proof.written(cut.region, cut.first, cut.count);
      if (this.postcopy.active) this.postcopy.runCut(cut);
    }
    for (const c of this.channels) c?.fail(error);
    this.channels.length = 0;
    this.readers.length = 0;
    this.waitingAtBarrier = 0;
    // Pre-copy sends its device state again after the final round it sends again; post-copy's is in use by the guest.
    if (!this.postcopy.active) this.deviceState = new DeviceStateAssembler();
    const timer = setTimeout(() => {
      this.suspension = undefined;
      this.fail(new WireError("connection", `${error.message}, and the source did not reconnect within ${this.idleTimeoutMs / 1000} s; the migration is dropped`));
    }, this.idleTimeoutMs);
    timer.unref();
    this.suspension = { timer, cause: error };
  }

  /**
   * The source reconnects (channel 0 of a resuming offer, authenticated): the session continues
   * on the channels attached from now on, under the new handshake's key. A session that has not
   * noticed its connections broke drops them now.
   */
  resume(key: Uint8Array, offer: Offer): void {
    const same = offer.pageSize === this.offer.pageSize && offer.encodings === this.offer.encodings && offer.batchPages === this.offer.batchPages &&
      offer.regions.length === this.offer.regions.length && offer.regions.every((p, i) => p === this.offer.regions[i]);
    if (!same) throw new WireError("badFrame", `the reconnecting source offers another guest than migration ${this.id} began with`);
    if (this.failure || this.done || this.completing) throw new WireError("unknownMigration", `migration ${this.id} has ended here; it cannot be resumed`);
    if (!this.suspension) this.channelFailed(new WireError("connection", "the source reconnected"));
    if (!this.suspension) throw new WireError("unknownMigration", `migration ${this.id} cannot be resumed here now`);
    clearTimeout(this.suspension.timer);
    this.suspension = undefined;
    this.resumedRound = undefined;
    this.key = key;
    this.reconnections++;
  }

  /**
   * The reconnected channel 0 was accepted. Under post-copy the source learns which pages are
   * still missing here (the guest has written the others, which must not be sent again), and the
   * page the guest is blocked on, if any, is asked for again.
   */
  announceResume(): void {
    if (!this.postcopy.active || this.failure) return;
    const conn = this.channels[0];
    const regions = this.postcopy.stillMissing();
    regions.forEach(({ bitmap }, region) => conn.send(FrameType.stillMissing, encodeSwitchover({ region, bitmap })).catch((error: Error) => this.fail(error)));
    regions.forEach(({ pending }, region) => pending && this.requestPages(region, pending.first, pending.count));
  }

  resumedAt(channel: number, round: number): void {
    if (round <= this.rounds) throw new WireError("badFrame", `channel ${channel} resumed at round ${round}, but round ${this.rounds} was finished here already`);
    if (this.resumedRound !== undefined && round !== this.resumedRound) throw new WireError("badFrame", `channel ${channel} resumed at round ${round}, another channel at ${this.resumedRound}`);
    this.resumedRound = round;
  }

  attach(conn: Connection, index: number, count: number): void {
    if (count !== this.channelCount) throw new WireError("badFrame", `channel ${index} says the migration has ${count} channels; channel 0 said ${this.channelCount}`);
    if (this.channels[index]) throw new WireError("badFrame", `channel ${index} of migration ${this.id} is already open`);
    this.channels[index] = conn;
    const { pageSize, batchPages } = this.offer;
    const switchoverBytes = SWITCHOVER_PREFIX_BYTES + Math.max(...this.regions.map((r) => r.layout.bitmapBytes));
    conn.maxPayload = (type) => {
      if (type === FrameType.pages) return PAGES_PREFIX_BYTES + batchPages * (8 + pageSize);
      if (type === FrameType.rawRun) return RAW_RUN_PREFIX_BYTES + batchPages * pageSize;
      if (type === FrameType.deviceState) return DEVICE_STATE_HEADER_BYTES + DEVICE_STATE_PIECE;
      if (type === FrameType.switchover) return switchoverBytes;
      return MAX_CONTROL_PAYLOAD;
    };
    const reader = new ChannelReader(this, index, this.reconnections > 0);
    this.readers[index] = reader;
    conn.setSink(reader);
    conn.onFailure((error) => {
      if (this.channels[index] === conn) this.channelFailed(error);
    });
    conn.failureFrame = FrameType.error;
  }

  /** Fails the session when no channel has received a byte for `ms` (until the completion came). */
  private watchIdle(ms: number): void {
    let last = -1;
    let since = performance.now();
    const timer = setInterval(() => {
      if (this.completing || this.failure || this.done) return clearInterval(timer);
      // While the source reconnects, its own timeout runs.
      if (this.suspension) {
        since = performance.now();
        return;
      }
      const received = this.received;
      if (received !== last) {
        last = received;
        since = performance.now();
      } else if (performance.now() - since > ms) {
        clearInterval(timer);
        this.fail(new WireError("connection", `the source sent nothing for ${ms / 1000} s: it stalled or left; the migration is dropped`));
      }
    }, Math.max(10, Math.min(1000, ms / 4)));
    timer.unref();
  }

  progress(): SessionProgress {
    return {
      migrationId: this.id,
      peer: this.channels[0]?.peer ?? "?",
      received: this.received,
      pages: this.pages,
      rounds: this.rounds,
      startedAt: this.start,
    };
  }

  fail(error: Error): void {
    if (this.failure || this.done) return;
    if (this.postcopy.active) {
      this.postcopy.lose();
      error = new WireError(
        error instanceof WireError ? error.reason : "internal",
        `post-copy failed after the guest resumed here: ${error.message}. Part of its memory never arrived, so it cannot continue; restart it (from a checkpoint, if you have one)`,
      );
    }
    // Every failure says which source it was about.
    const peer = this.channels[0]?.peer;
    if (peer && !error.message.includes(peer)) error.message += ` (migration ${this.id.slice(0, 8)} from ${peer})`;
    this.failure = error;
    if (this.suspension) clearTimeout(this.suspension.timer);
    const wire = asWireError(error);
    // The peer hears why, unless it is the one that left or cancelled.
    const tellPeer = wire.reason !== "cancelled" && wire.reason !== "connection" && wire.reason !== "truncated";
    for (const c of this.channels) c?.fail(wire, tellPeer);
    this.settle.reject(error);
  }

  // ChannelOwner: where each frame's bytes go.

  recordsTarget(channel: number, region: number, length: number): Uint8Array {
    const at = this.inputBuffer(region, channel);
    return this.regions[region].bytes.subarray(at, at + length);
  }

  private inputBuffer(region: number, channel: number): number {
    const { ioBuffers } = this.regions[region].layout;
    return ioBuffers[channel % ioBuffers.length] + IO_HEADROOM;
  }

  applyRecords(channel: number, region: number, length: number): number {
    let applied: number;
    try {
      applied = this.cores[region].decode(this.inputBuffer(region, channel), length);
    } catch (error) {
      if (error instanceof DecodeError) throw new WireError("decode", `region ${region}: ${error.message}`);
      throw error;
    }
    this.pages += applied;
    if (this.postcopy.active) this.postcopy.recordsArrived(region, applied);
    return applied;
  }

  runTarget(run: RawRunPrefix): Uint8Array {
    if (this.postcopy.active) this.postcopy.acceptRun(run);
    return this.regions[run.region].pages(run.first, run.count);
  }

  runArrived(run: RawRunPrefix): void {
    const core = this.cores[run.region];
    core.markRange(core.region.layout.auxBitmap, run.first, run.count);
    this.proof.written(run.region, run.first, run.count);
    this.pages += run.count;
    if (this.postcopy.active) this.postcopy.runArrived(run);
  }

  /** The round barrier: a channel that ended round r waits until every channel has. */
  roundEnded(channel: number, round: number, final: boolean): boolean {
    this.onRoundEnd(channel, round);
    this.waitingAtBarrier++;
    if (this.waitingAtBarrier < this.channelCount) return false;
    // Every channel has finished this round: release the ones held, acknowledge.
    this.waitingAtBarrier = 0;
    this.rounds = round;
    if (this.readers.some((r) => r.finished !== final)) throw new WireError("badFrame", `channels disagree whether round ${round} is the final one`);
    // Acknowledged once what the round wrote is hashed: a source pauses after the acknowledgement,
    // so the completion finds the digest current.
    const hashed = this.postcopy.active ? undefined : this.proof.roundEnded();
    for (let c = 0; c < this.channelCount; c++) if (c !== channel) setImmediate(() => this.channels[c]?.resume());
    // The switch-over round is acknowledged once the guest runs here: the source's downtime ends then.
    // Never over a connection made since: a resumed source settles its unacknowledged rounds itself.
    const conn = this.channels[0];
    Promise.all([this.guestStarted, hashed])
      .then(() => (this.channels[0] === conn ? conn?.send(FrameType.ack, encodeAck({ round })) : undefined))
      .catch((error: Error) => (this.channels[0] === conn ? this.channelFailed(asWireError(error)) : undefined));
    return true;
  }

  control(channel: number, type: number, payload: Uint8Array): boolean {
    switch (type) {
      case FrameType.switchover:
        if (this.readers[0].finished) throw new WireError("unexpectedFrame", "switch-over after the final round");
        this.postcopy.switchover(decodeSwitchover(payload));
        return true;
      case FrameType.deviceState:
        this.addDeviceState(payload);
        return true;
      case FrameType.complete:
        void this.complete(payload);
        return false;
      case FrameType.cancel: {
        const f = decodeFailure(payload, "cancel");
        this.fail(new WireError("cancelled", `the source cancelled the migration on channel ${channel}: ${f.message}`));
        return false;
      }
    }
    throw new WireError("unexpectedFrame", `frame type ${type} has no place on channel ${channel}`);
  }

  /** Set once the embedder's guest was given the memory: it is the guest's from then on. */
  guestRan = false;

  private resumeGuest(deviceState: Uint8Array): void | Promise<void> {
    this.guestRan = true;
    return this.hooks?.resume?.(deviceState, this.regions);
  }

  private requestPages(region: number, page: number, count: number): void {
    // While the source reconnects the request waits; announceResume() asks again.
    if (!this.channels[0]) return;
    this.postcopyRequests++;
    this.channels[0].send(FrameType.pageRequest, encodePageRequest({ region, page, count })).catch((error: Error) => this.fail(error));
  }

  private addDeviceState(payload: Uint8Array): void {
    if (!this.readers[0].finished && !this.postcopy.active) throw new WireError("unexpectedFrame", "device state arrived before the final round or the switch-over");
    if (!this.deviceState.add(decodeDeviceStatePiece(payload)) || !this.postcopy.active) return;
    // Post-copy: the device state is in; hash the pages present, then start the guest on them.
    this.hooks?.checkDeviceState?.(this.deviceState.bytes, this.regions);
    this.guestStarted = this.postcopy.startGuest(() => this.resumeGuest(this.deviceState.bytes), () => this.failure !== undefined);
    this.guestStarted.catch((error: Error) => this.fail(error));
  }

  private async complete(payload: Uint8Array): Promise<void> {
    this.completing = true;
    try {
      const { digests, mac } = decodeComplete(payload, this.key);
      if (!this.readers.every((r) => r.finished)) throw new WireError("unexpectedFrame", "completion arrived before the final round ended on every channel");
      const deviceState = this.deviceState.bytes;
      if (digests.length !== this.regions.length) throw new WireError("badFrame", `completion carries ${digests.length} digests for ${this.regions.length} regions`);
      const verifyStart = performance.now();
      // The digest of a large memory takes seconds: the source hears keepalives meanwhile.
      this.channels[0].keepAlive(VERIFY_KEEPALIVE_MS);
      const postcopy = this.postcopy.active;
      if (postcopy) this.postcopy.checkAllArrived();
      await this.guestStarted;
      const hashedBytes = await this.proof.check(digests, postcopy ? this.postcopy.pageSums() : undefined);
      const verifyMs = performance.now() - verifyStart;
      if (!postcopy) this.hooks?.checkDeviceState?.(deviceState, this.regions);
      if (this.failure) return;
      await this.channels[0].send(FrameType.done, encodeDone({ verifyMs }, this.key, mac));
      this.done = true;
      // Nothing more comes or goes: release the sockets now rather than wait for the source.
      for (const c of this.channels) c.close();
      if (postcopy) this.postcopy.finish();
      else await this.resumeGuest(deviceState);
      this.settle.resolve({
        migrationId: this.id,
        regions: this.regions,
        deviceState,
        stats: {
          "total-time": performance.now() - this.start,
          "verify-time": verifyMs,
          "verify-hashed-bytes": hashedBytes,
          "digest-thread-time": this.proof.threadTime.ms,
          received: this.received,
          pages: this.pages,
          rounds: this.rounds,
          channels: this.channelCount,
          "device-state-bytes": deviceState.length,
          "postcopy-faults": this.postcopy.faults,
          "postcopy-requests": this.postcopyRequests,
          "postcopy-blocked-ms": this.postcopy.blockedMs,
        },
      });
    } catch (error) {
      this.fail(asError(error));
    }
  }
}

// The destination side: a listener that admits migrations (one session each), places page data
// straight into guest memory, holds channels at round boundaries so that no page of a later
// round is overtaken by an earlier copy, and verifies the digest before it confirms and resumes.
import { EventEmitter } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { Core, DecodeError } from "../core/core.js";
import { DigestPool } from "../core/digest.js";
import { Region } from "../memory/region.js";
import { IO_HEADROOM } from "../memory/layout.js";
import { Connection } from "../transport/connection.js";
import { acceptChannel, type Admission } from "../transport/handshake.js";
import {
  FrameType, FRAME_NAMES, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES, DEVICE_STATE_PIECE, MAX_DEVICE_STATE,
  MAX_CONTROL_PAYLOAD, MAX_REGIONS, SWITCHOVER_PREFIX_BYTES,
} from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import type { FrameSink } from "../wire/frame.js";
import {
  type Offer, decodeRoundEnd, decodeDeviceStatePiece, decodeComplete, decodeFailure, encodeAck, encodeDone,
  DEVICE_STATE_HEADER_BYTES, encodePageRequest,
} from "../wire/messages.js";
import { Presence } from "./presence.js";

export interface DestinationHooks {
  /**
   * Start the guest with its device state. After pre-copy or stop-and-copy its memory is complete
   * and verified. Under post-copy this is called at the switch-over, with pages still arriving:
   * the guest must check presence before touching memory (the region's presence area, see
   * src/migration/presence.ts; the workload kernels do it per chunk of work).
   */
  resume?(deviceState: Uint8Array, regions: Region[]): void | Promise<void>;
}

export interface ListenerOptions {
  /** Shared with the source; never sent. Default: empty (no protection). */
  secret?: string;
  /** Memory to receive into; offers must match it. Default: allocate per offer. */
  regions?: Region[];
  /** Touch memory allocated for an offer before accepting it, as QEMU's -mem-prealloc does. Default true. */
  prefault?: boolean;
  /** The regions handed in hold only zeros (fresh from Region.create): skip checking before the first migration. */
  zeroed?: boolean;
  hooks?: DestinationHooks;
  /** Handshake timeout, ms. Default 30,000. */
  timeoutMs?: number;
}

export interface Received {
  migrationId: string;
  regions: Region[];
  deviceState: Uint8Array;
  stats: {
    "total-time": number;
    "verify-time": number;
    received: number;
    pages: number;
    rounds: number;
    channels: number;
    "device-state-bytes": number;
    /** Post-copy: times the guest found a page missing, page requests sent, and ms the guest spent blocked. */
    "postcopy-faults": number;
    "postcopy-requests": number;
    "postcopy-blocked-ms": number;
  };
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function describe(pageSize: number, regions: number[]): string {
  const gib = (regions.reduce((s, p) => s + p, 0) * pageSize) / 2 ** 30;
  return `${regions.length} region(s) of ${regions.join(", ")} pages of ${pageSize} bytes (${gib.toFixed(3)} GiB)`;
}

export class Listener extends EventEmitter {
  private readonly server: Server;
  private readonly sessions = new Map<string, Session>();
  private busy = false;
  private knownZero: boolean;
  private readonly digests = new DigestPool();

  constructor(readonly options: ListenerOptions = {}) {
    super();
    this.knownZero = options.zeroed ?? false;
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
  }

  /** Starts listening; resolves with the port (pass 0 for any free port). */
  listen(port = 0, host = "127.0.0.1"): Promise<number> {
    this.digests.warm();
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sessions.values()) s.fail(new WireError("cancelled", "the destination is shutting down"));
    this.digests.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The next migration to complete, or the next to fail. */
  next(): Promise<Received> {
    return new Promise((resolve, reject) => {
      const ok = (r: Received) => {
        this.off("failed", ko);
        resolve(r);
      };
      const ko = (e: Error) => {
        this.off("completed", ok);
        reject(e);
      };
      this.once("completed", ok);
      this.once("failed", ko);
    });
  }

  private onConnection(socket: Socket): void {
    const conn = Connection.accept(socket, { expectPreamble: true });
    acceptChannel(conn, this.options.secret ?? "", (a) => this.admit(conn, a), this.options.timeoutMs).catch((error: Error) => this.emit("refused", error));
  }

  private admit(conn: Connection, { hello, offer }: Admission): void {
    const id = hex(hello.migrationId);
    if (hello.channelIndex > 0) {
      const session = this.sessions.get(id);
      if (!session) throw new WireError("unknownMigration", `no migration ${id} is in progress here: open channel 0 first`);
      session.attach(conn, hello.channelIndex, hello.channelCount);
      return;
    }
    if (this.sessions.has(id)) throw new WireError("badFrame", `migration ${id} is already in progress`);
    if (!offer) throw new WireError("badFrame", "channel 0 came without an offer");
    if (this.options.regions && this.busy) throw new WireError("busy", "this destination is receiving another migration into its memory; try again when it is done");
    const regions = this.options.regions ? this.checkOffer(offer, this.options.regions) : this.allocate(offer, hello.channelCount);
    const session = new Session(id, regions, offer, hello.channelCount, this.options.hooks, this.digests);
    this.sessions.set(id, session);
    if (this.options.regions) this.busy = true;
    session.attach(conn, 0, hello.channelCount);
    this.emit("session", id);
    session.result.then(
      (received) => this.emit("completed", received),
      (error) => this.emit("failed", error),
    ).finally(() => {
      this.sessions.delete(id);
      if (this.options.regions) this.busy = false;
    });
  }

  private checkOffer(offer: Offer, regions: Region[]): Region[] {
    const mine = regions.map((r) => r.pageCount);
    const pageSize = regions[0].pageSize;
    if (offer.pageSize !== pageSize || offer.regions.length !== mine.length || offer.regions.some((p, i) => p !== mine[i])) {
      throw new WireError("regionMismatch", `the source offers ${describe(offer.pageSize, offer.regions)}, but this destination holds ${describe(pageSize, mine)}`);
    }
    const small = regions.find((r) => r.layout.batchPages < offer.batchPages);
    if (small) throw new WireError("regionMismatch", `the source sends batches of ${offer.batchPages} pages; this destination's buffers hold ${small.layout.batchPages}`);
    if (!this.knownZero) for (const r of regions) zeroGuest(r);
    this.knownZero = false;
    return regions;
  }

  private allocate(offer: Offer, channels: number): Region[] {
    if (offer.regions.length > MAX_REGIONS) throw new WireError("badFrame", `too many regions: ${offer.regions.length}`);
    try {
      const regions = offer.regions.map((pageCount) => Region.create({ pageSize: offer.pageSize, pageCount, batchPages: offer.batchPages, ioBuffers: channels }));
      if (this.options.prefault ?? true) for (const r of regions) r.prefault();
      return regions;
    } catch (error) {
      throw new WireError("regionMismatch", `cannot hold ${describe(offer.pageSize, offer.regions)}: ${(error as Error).message}`);
    }
  }
}

/** The protocol assumes a destination that starts zeroed: make sure of it for memory handed in. */
function zeroGuest(region: Region): void {
  const core = new Core(region);
  const { guest, pageShift, pageCount } = region.layout;
  if (core.wasm.zeroCountRange(guest, pageShift, 0, pageCount) !== pageCount) region.pages(0, pageCount).fill(0);
}

/** One migration being received. */
class Session {
  private readonly cores: Core[];
  private readonly channels: Connection[] = [];
  /** The round each channel is receiving. */
  private readonly roundOf: number[];
  private readonly pagesThisRound: number[];
  private readonly finished: boolean[];
  /** Per channel, the frame being read: the region of a pages frame, the pages of a raw run, a control payload. */
  private readonly pagesRegion: number[] = [];
  private readonly pending: Array<{ region: number; first: number; count: number } | undefined> = [];
  private readonly control: Uint8Array[] = [];
  private waitingAtBarrier = 0;
  private pages = 0;
  private rounds = 0;
  private deviceState: Uint8Array | undefined;
  private deviceStateFilled = 0;
  private failure: Error | undefined;
  private done = false;
  private readonly start = performance.now();
  /** Post-copy: set once every region's switch-over bitmap is in. */
  private presences: Presence[] | undefined;
  private switchoverRegions = 0;
  /** Post-copy: per region, the sum of page hashes of the pages as they were at switch-over or arrived. */
  private readonly pageSums: bigint[];
  /** Resolves once the guest runs (post-copy) or when there is nothing to wait for. */
  private guestStarted: Promise<void> = Promise.resolve();
  private postcopyRequests = 0;
  private settle!: { resolve: (r: Received) => void; reject: (e: Error) => void };
  readonly result: Promise<Received>;

  constructor(
    readonly id: string,
    readonly regions: Region[],
    readonly offer: Offer,
    readonly channelCount: number,
    private readonly hooks: DestinationHooks | undefined,
    private readonly digests: DigestPool,
  ) {
    this.cores = regions.map((r) => {
      const core = new Core(r);
      core.trackReceived(true);
      core.clearBitmap(r.layout.auxBitmap);
      return core;
    });
    this.pageSums = regions.map(() => 0n);
    this.roundOf = Array(channelCount).fill(1);
    this.pagesThisRound = Array(channelCount).fill(0);
    this.finished = Array(channelCount).fill(false);
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined);
  }

  attach(conn: Connection, index: number, count: number): void {
    if (count !== this.channelCount) throw new WireError("badFrame", `channel ${index} says the migration has ${count} channels; channel 0 said ${this.channelCount}`);
    if (this.channels[index]) throw new WireError("badFrame", `channel ${index} of migration ${this.id} is already open`);
    this.channels[index] = conn;
    const { pageSize } = this.offer;
    const batchBytes = this.offer.batchPages * (8 + pageSize);
    conn.maxPayload = (type) => {
      if (type === FrameType.pages) return PAGES_PREFIX_BYTES + batchBytes;
      if (type === FrameType.rawRun) return RAW_RUN_PREFIX_BYTES + this.offer.batchPages * pageSize;
      if (type === FrameType.deviceState) return DEVICE_STATE_HEADER_BYTES + DEVICE_STATE_PIECE;
      if (type === FrameType.switchover) return SWITCHOVER_PREFIX_BYTES + Math.max(...this.regions.map((r) => r.layout.bitmapBytes));
      return MAX_CONTROL_PAYLOAD;
    };
    conn.setSink(new ChannelSink(this, index));
    conn.onFailure((error) => this.fail(error));
    conn.failureFrame = FrameType.error;
  }

  fail(error: Error): void {
    if (this.failure || this.done) return;
    if (this.presences) {
      for (const p of this.presences) p.lose();
      error = new WireError(
        error instanceof WireError ? error.reason : "internal",
        `post-copy failed after the guest resumed here: ${error.message}. Part of its memory never arrived, so it cannot continue; restart it (from a checkpoint, if you have one)`,
      );
    }
    this.failure = error;
    const wire = error instanceof WireError ? error : new WireError("internal", error.message);
    for (const c of this.channels) c?.fail(wire, wire.reason !== "cancelled" && wire.reason !== "connection" && wire.reason !== "truncated");
    this.settle.reject(error);
  }

  /** Where a frame's payload goes, after checking its prefix. */
  begin(channel: number, type: number, length: number, prefix: Uint8Array): Uint8Array {
    const name = FRAME_NAMES[type];
    const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
    if (type === FrameType.pages || type === FrameType.rawRun) {
      const regionIndex = view.getUint16(0, true);
      const round = view.getUint32(4, true);
      if (view.getUint16(2, true) !== 0) throw new WireError("badFrame", `${name} frame has reserved bits set`);
      const region = this.regions[regionIndex];
      if (!region) throw new WireError("badFrame", `${name} frame names region ${regionIndex}; the guest has ${this.regions.length}`);
      if (this.finished[channel]) throw new WireError("unexpectedFrame", `${name} frame after the final round on channel ${channel}`);
      if (round !== this.roundOf[channel]) throw new WireError("badFrame", `${name} frame of round ${round} arrived on channel ${channel} during round ${this.roundOf[channel]}`);
      if (type === FrameType.pages) {
        this.pagesRegion[channel] = regionIndex;
        return region.bytes.subarray(this.inputBuffer(region, channel), this.inputBuffer(region, channel) + length - PAGES_PREFIX_BYTES);
      }
      const first = view.getUint32(8, true);
      const count = view.getUint32(12, true);
      if (count < 1 || first + count > region.pageCount) throw new WireError("badFrame", `raw-run frame names pages ${first}..${first + count - 1} of a ${region.pageCount}-page region`);
      if (length - RAW_RUN_PREFIX_BYTES !== count * region.pageSize) throw new WireError("badFrame", `raw-run frame of ${count} pages carries ${length - RAW_RUN_PREFIX_BYTES} bytes, not ${count * region.pageSize}`);
      if (this.presences && !this.cores[regionIndex].wasm.bitmapTakeRange(region.layout.syncBitmap, first, count)) {
        throw new WireError("badFrame", `post-copy raw-run frame carries pages ${first}..${first + count - 1} of region ${regionIndex}, which are not all expected (never missing, or sent twice)`);
      }
      this.pending[channel] = { region: regionIndex, first, count };
      return region.pages(first, count);
    }
    const onChannel0 = type === FrameType.deviceState || type === FrameType.complete || type === FrameType.switchover;
    if (type === FrameType.roundEnd || type === FrameType.cancel || (onChannel0 && channel === 0)) {
      return (this.control[channel] = new Uint8Array(length));
    }
    throw new WireError("unexpectedFrame", `a ${name} frame has no place on channel ${channel} of a migration`);
  }

  private inputBuffer(region: Region, channel: number): number {
    return region.layout.ioBuffers[channel % region.layout.ioBuffers.length] + IO_HEADROOM;
  }

  /** A frame is complete; returns false to hold the channel at a round barrier. */
  end(channel: number, type: number, length: number): boolean {
    switch (type) {
      case FrameType.pages: {
        const regionIndex = this.pagesRegion[channel];
        const region = this.regions[regionIndex];
        try {
          const core = this.cores[regionIndex];
          const applied = core.decode(this.inputBuffer(region, channel), length);
          this.pagesThisRound[channel] += applied;
          this.pages += applied;
          if (this.presences) {
            this.pageSums[regionIndex] += core.sumListed(applied);
            this.presences[regionIndex].arrivedListed(applied);
          }
        } catch (error) {
          if (error instanceof DecodeError) throw new WireError("decode", `region ${regionIndex}: ${error.message}`);
          throw error;
        }
        return true;
      }
      case FrameType.rawRun: {
        const run = this.pending[channel]!;
        const core = this.cores[run.region];
        core.wasm.bitmapMarkRange(core.region.layout.auxBitmap, run.first, run.count);
        this.pagesThisRound[channel] += run.count;
        this.pages += run.count;
        if (this.presences) {
          this.pageSums[run.region] += core.sumRange(run.first, run.count);
          this.presences[run.region].arrivedRange(run.first, run.count);
        }
        return true;
      }
      case FrameType.switchover:
        this.switchover();
        return true;
      case FrameType.roundEnd:
        return this.roundEnd(channel);
      case FrameType.deviceState:
        this.addDeviceState();
        return true;
      case FrameType.complete:
        void this.complete();
        return false;
      case FrameType.cancel: {
        const f = decodeFailure(this.control[channel], "cancel");
        this.fail(new WireError("cancelled", `the source cancelled the migration: ${f.message}`));
        return false;
      }
    }
    return true;
  }

  private roundEnd(channel: number): boolean {
    const e = decodeRoundEnd(this.control[channel]);
    if (e.round !== this.roundOf[channel]) throw new WireError("badFrame", `channel ${channel} ended round ${e.round} while in round ${this.roundOf[channel]}`);
    if (e.pages !== this.pagesThisRound[channel]) {
      throw new WireError("badFrame", `channel ${channel} announced ${e.pages} pages for round ${e.round} but carried ${this.pagesThisRound[channel]}`);
    }
    this.roundOf[channel]++;
    this.pagesThisRound[channel] = 0;
    if (e.final) this.finished[channel] = true;
    this.waitingAtBarrier++;
    if (this.waitingAtBarrier < this.channelCount) return false;
    // Every channel has finished this round: release the ones held, acknowledge.
    this.waitingAtBarrier = 0;
    this.rounds = e.round;
    if (this.finished.some((f) => f !== e.final)) throw new WireError("badFrame", `channels disagree whether round ${e.round} is the final one`);
    for (let c = 0; c < this.channelCount; c++) if (c !== channel) setImmediate(() => this.channels[c].resume());
    // The switch-over round is acknowledged once the guest runs here: the source's downtime ends then.
    void this.guestStarted.then(() => this.channels[0].send(FrameType.ack, encodeAck({ round: e.round }))).catch(() => undefined);
    return true;
  }

  /**
   * Post-copy's switch-over: the source says which pages of a region are still to come. They are
   * expected (the decoder takes each exactly once); the rest are here already, and their page
   * hashes start the digest.
   */
  private switchover(): void {
    const payload = this.control[0];
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const index = view.getUint16(0, true);
    const region = this.regions[index];
    if (this.finished[0] || this.presences) throw new WireError("unexpectedFrame", "switch-over after the final round");
    if (index !== this.switchoverRegions || !region) throw new WireError("badFrame", `switch-over names region ${index}; region ${this.switchoverRegions} was next`);
    const { syncBitmap, auxBitmap, bitmapBytes } = region.layout;
    if (payload.length !== SWITCHOVER_PREFIX_BYTES + bitmapBytes) throw new WireError("badFrame", `switch-over bitmap of ${payload.length - SWITCHOVER_PREFIX_BYTES} bytes for a region whose bitmap has ${bitmapBytes}`);
    // On a destination the sync bitmap is free: post-copy keeps the pages still expected in it.
    // The aux bitmap (received pages) keeps the missing set as it was, for hashing the pages that
    // were here: marking arrivals there changes nothing, as every arrival was missing.
    region.bytes.set(payload.subarray(SWITCHOVER_PREFIX_BYTES), syncBitmap);
    region.bytes.set(payload.subarray(SWITCHOVER_PREFIX_BYTES), auxBitmap);
    this.cores[index].expectPages(syncBitmap);
    this.switchoverRegions++;
    if (this.switchoverRegions === this.regions.length) {
      this.presences = this.cores.map((core, i) => new Presence(core, (first, count) => this.requestPages(i, first, count)));
    }
  }

  /** Post-copy ends with every expected page in: one still expected was never sent. */
  private checkAllArrived(): void {
    this.cores.forEach((core, i) => {
      const { syncBitmap, bitmapBytes } = core.region.layout;
      const left = core.wasm.bitmapCount(syncBitmap, bitmapBytes);
      if (left > 0) throw new WireError("truncated", `post-copy completed with ${left} pages of region ${i} never sent`);
    });
  }

  private requestPages(region: number, page: number, count: number): void {
    this.postcopyRequests++;
    this.channels[0].send(FrameType.pageRequest, encodePageRequest({ region, page, count })).catch(() => undefined);
  }

  /** Post-copy: the device state is in; hash the pages present, then start the guest on them. */
  private async startGuest(): Promise<void> {
    const sums = await this.digests.pageSums(this.cores, (r) => r.layout.auxBitmap);
    sums.forEach((sum, i) => (this.pageSums[i] += sum));
    if (this.failure) return;
    this.presences!.forEach((p, i) => p.begin(this.regions[i].layout.syncBitmap));
    await this.hooks?.resume?.(this.deviceState!, this.regions);
  }

  private addDeviceState(): void {
    const piece = decodeDeviceStatePiece(this.control[0]);
    if (!this.finished[0] && !this.presences) throw new WireError("unexpectedFrame", "device state arrived before the final round or the switch-over");
    if (piece.total > MAX_DEVICE_STATE) throw new WireError("frameTooLarge", `device state of ${piece.total} bytes exceeds the ${MAX_DEVICE_STATE}-byte limit`);
    this.deviceState ??= new Uint8Array(piece.total);
    if (piece.total !== this.deviceState.length || piece.offset !== this.deviceStateFilled || piece.offset + piece.bytes.length > piece.total) {
      throw new WireError("badFrame", `device state piece at ${piece.offset} (${piece.bytes.length} of ${piece.total} bytes) does not follow the ${this.deviceStateFilled} bytes received`);
    }
    this.deviceState.set(piece.bytes, piece.offset);
    this.deviceStateFilled += piece.bytes.length;
    if (this.presences && this.deviceStateFilled === this.deviceState.length) {
      this.guestStarted = this.startGuest();
      this.guestStarted.catch((error: Error) => this.fail(error));
    }
  }

  private async complete(): Promise<void> {
    try {
      const { digests } = decodeComplete(this.control[0]);
      if (!this.finished.every(Boolean)) throw new WireError("unexpectedFrame", "completion arrived before the final round ended on every channel");
      if (!this.deviceState || this.deviceStateFilled !== this.deviceState.length) throw new WireError("truncated", "completion arrived before the whole device state");
      if (digests.length !== this.regions.length) throw new WireError("badFrame", `completion carries ${digests.length} digests for ${this.regions.length} regions`);
      const verifyStart = performance.now();
      const postcopy = this.presences !== undefined;
      if (postcopy) this.checkAllArrived();
      await this.guestStarted;
      const mine = postcopy ? this.pageSums.map((s) => BigInt.asUintN(64, s)) : await this.digests.digest(this.cores);
      mine.forEach((digest, i) => {
        if (digest !== digests[i]) {
          const what = postcopy ? "page-hash sum" : "memory digest";
          throw new WireError("digest", `${what} mismatch in region ${i}: the source has ${digests[i].toString(16)}, the destination ${digest.toString(16)}${postcopy ? "" : "; nothing was resumed"}`);
        }
      });
      const verifyMs = performance.now() - verifyStart;
      if (this.failure) return;
      await this.channels[0].send(FrameType.done, encodeDone({ verifyMs }));
      this.done = true;
      if (postcopy) for (const p of this.presences!) p.finish();
      else await this.hooks?.resume?.(this.deviceState, this.regions);
      this.settle.resolve({
        migrationId: this.id,
        regions: this.regions,
        deviceState: this.deviceState,
        stats: {
          "total-time": performance.now() - this.start,
          "verify-time": verifyMs,
          received: this.channels.reduce((s, c) => s + c.received, 0),
          pages: this.pages,
          rounds: this.rounds,
          channels: this.channelCount,
          "device-state-bytes": this.deviceState.length,
          "postcopy-faults": this.presences?.reduce((n, p) => n + p.faults, 0) ?? 0,
          "postcopy-requests": this.postcopyRequests,
          "postcopy-blocked-ms": this.presences?.reduce((n, p) => n + p.blockedMs, 0) ?? 0,
        },
      });
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/** Routes one channel's frames into its session. */
class ChannelSink implements FrameSink {
  private length = 0;

  constructor(
    private readonly session: Session,
    private readonly channel: number,
  ) {}

  begin(type: number, length: number, prefix: Uint8Array): Uint8Array {
    const target = this.session.begin(this.channel, type, length, prefix);
    this.length = target.length;
    return target;
  }

  end(type: number): boolean {
    return this.session.end(this.channel, type, this.length);
  }
}

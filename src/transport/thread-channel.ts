// A channel run by a worker thread (QEMU's multifd send threads): the thread owns the socket, its
// handshake and its writes, so a migration's system calls and kernel copies are spread over
// cores instead of queued on the main thread, which keeps the syncs, the plan and the encoding.
// A batch's memory (records, framing, pages) lives in the region's shared memory: only offsets and
// the runs cross to the thread, and the thread says when the batch is written. Channel 0, which
// carries the control frames and the return path, stays on the main thread.
import { Worker } from "node:worker_threads";
import type { LayoutOptions } from "../memory/layout.js";
import type { Region } from "../memory/region.js";
import { workerUrl } from "../runtime/worker-url.js";
import type { ReasonName } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import type { RoundEnd } from "../wire/messages.js";
import type { ChannelTarget } from "./handshake.js";
import { type EncodedBatch, type PageBatch, type PageChannel, type PagesToEncode, RECORDS_HEADROOM, RUN_FRAMING_BYTES } from "./page-channel.js";
import { Core, type EncodingOptions } from "../core/core.js";
import { addEncodeStats, type EncodeStats } from "../abi/abi.js";
import type { TokenBucket } from "./token-bucket.js";

export interface ThreadChannelSetup {
  target: Omit<ChannelTarget, "bucket" | "migrationId"> & { migrationId: Uint8Array };
  regions: Array<{ memory: WebAssembly.Memory; layout: LayoutOptions }>;
  /** The lane the thread encodes on, in every region; undefined: it only writes what the main thread encoded. */
  lane?: number;
  /** A reconnection of the same migration: the lane's encoder counters carry on. */
  resuming?: boolean;
}

/** What the main thread tells a channel's thread. Offsets are into the region's memory. */
export type ToThread =
  | { kind: "open"; serial: number; setup: ThreadChannelSetup }
  | { kind: "batch"; id: number; region: number; round: number; pages: number; records: number; recordsLength: number; runs: Uint32Array; framing: number; framingStride: number }
  | { kind: "encode"; id: number; region: number; round: number; pages: Uint32Array; fresh: boolean; encoding: EncodingOptions; buffer: number }
  | { kind: "endRound"; id: number; end: RoundEnd }
  | { kind: "close" };

/**
 * What a channel's thread answers: its connection is open, a message is written (with the bytes
 * sent so far, and what a batch it encoded held), or it failed.
 */
export type FromThread = { kind: "open" } | { kind: "written"; id: number; sent: number; encoded?: EncodedBatch } | { kind: "failed"; reason: ReasonName; message: string };

/**
 * Threads between migrations. A thread takes 50-200 ms to start (its modules load), which a
 * migration would otherwise pay in its setup each time; idle ones do not keep the process alive.
 */
const idle: Worker[] = [];
let serials = 0;

function acquire(): Worker {
  let worker = idle.pop();
  if (!worker) {
    const created = new Worker(workerUrl("thread-channel-worker", import.meta.url));
    // A thread that dies idle leaves the pool; one in use also tells its channel (onError).
    created.on("error", () => idle.includes(created) && idle.splice(idle.indexOf(created), 1));
    worker = created;
  }
  worker.ref();
  return worker;
}

export class ThreadChannel implements PageChannel {
  backlog = 0;
  sent = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (encoded?: EncodedBatch) => void; reject: (error: Error) => void; bytes: number }>();
  private failure: WireError | undefined;
  private readonly failureListeners: Array<(error: WireError) => void> = [];
  private readonly serial = ++serials;
  private readonly onMessage = (m: FromThread & { serial: number }) => this.message(m);
  private readonly onError = (error: Error) => this.threadFailed(error);
  private opened!: { resolve: () => void; reject: (error: Error) => void };
  private attached = true;

  private constructor(
    private readonly worker: Worker,
    private readonly regions: Region[],
    private readonly bucket: TokenBucket | undefined,
    private readonly index: number,
    /** The lane it encodes on, if it does. */
    readonly lane: number | undefined,
  ) {
    if (lane !== undefined) this.encodeBatch = (b) => this.encodeOnThread(b);
  }

  /** Starts threads until `count` are idle, so that their start overlaps channel 0's handshake. */
  static warm(count: number): void {
    const started = Array.from({ length: Math.max(0, count - idle.length) }, () => acquire());
    for (const worker of started) {
      worker.unref();
      idle.push(worker);
    }
  }

  /**
   * Gives a thread the connection of channel `target.channelIndex`; resolves once it is
   * authenticated. With `lane` (every region laid out with that many lanes and more), the thread
   * encodes the batches it is given on it; otherwise it writes what the main thread encoded.
   * `resuming`: the channel of a migration reconnecting, whose lane's counters carry on.
   */
  static async open(regions: Region[], target: ChannelTarget, bucket?: TokenBucket, lane?: number, resuming = false): Promise<ThreadChannel> {
    const { bucket: _shared, ...rest } = target;
    const setup: ThreadChannelSetup = { target: rest, regions: regions.map((r) => ({ memory: r.memory, layout: r.options })), lane, resuming };
    const channel = new ThreadChannel(acquire(), regions, bucket, target.channelIndex, lane);
    const opened = new Promise<void>((resolve, reject) => (channel.opened = { resolve, reject }));
    channel.worker.on("message", channel.onMessage);
    channel.worker.on("error", channel.onError);
    channel.worker.postMessage({ kind: "open", serial: channel.serial, setup } satisfies ToThread);
    await opened;
    return channel;
  }

  private message(m: FromThread & { serial: number }): void {
    if (m.serial !== this.serial) return; // of the migration this thread served before
    if (m.kind === "open") this.opened.resolve();
    else if (m.kind === "written") this.written(m.id, m.sent, m.encoded);
    else this.fail(new WireError(m.reason, m.message));
  }

  /** The thread itself died: it serves no one again. */
  private threadFailed(error: Error): void {
    this.detach(false);
    this.fail(new WireError("internal", `channel ${this.index}'s thread failed: ${error.message}`));
  }

  /** Stops listening to the thread; a healthy one waits for the next migration. */
  private detach(healthy: boolean): void {
    this.attached = false;
    this.worker.off("message", this.onMessage);
    this.worker.off("error", this.onError);
    if (!healthy) return void this.worker.terminate();
    this.worker.postMessage({ kind: "close" } satisfies ToThread);
    this.worker.unref();
    idle.push(this.worker);
  }

  private written(id: number, sent: number, encoded?: EncodedBatch): void {
    this.sent = sent;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.backlog -= p.bytes;
    p.resolve(encoded);
  }

  /** Calls `listener` when the channel fails (at once if it has). */
  onFailure(listener: (error: WireError) => void): void {
    if (this.failure) listener(this.failure);
    else this.failureListeners.push(listener);
  }

  /**
   * Ends the channel because of `error` (once): what is still out is refused and the thread drops
   * its connection. The peer hears why on channel 0, whatever `_tellPeer` says (it is there so
   * that a thread's channel ends as a connection does).
   */
  fail(error: WireError, _tellPeer = false): void {
    if (this.failure) return;
    this.failure = error;
    if (this.attached) this.detach(true);
    this.opened.reject(error);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const l of this.failureListeners.splice(0)) l(error);
  }

  /** Ends the channel on purpose: the thread closes its connection once what it was given is written. */
  close(): void {
    if (this.failure) return;
    this.failure = new WireError("connection", "the channel was closed by this side");
    this.detach(true);
  }

  /** Messages go to the thread in the order they were given, each after its bytes are taken from the rate limit. */
  private queue: Promise<void> = Promise.resolve();

  /**
   * Hands `message` (built by the caller at once: what it points to may change after) to the
   * thread behind those before it; resolves once the thread says it is written.
   */
  private post(message: ToThread & { id: number }, bytes: number): Promise<EncodedBatch | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    this.backlog += bytes;
    const answered = new Promise<EncodedBatch | undefined>((resolve, reject) => this.pending.set(message.id, { resolve, reject, bytes }));
    const turn = this.queue.then(async () => {
      if (this.bucket && bytes > 0) await this.bucket.take(bytes);
      if (!this.failure) this.worker.postMessage(message);
    });
    this.queue = turn.catch(() => undefined);
    return answered;
  }

  async sendBatch(b: PageBatch): Promise<void> {
    if (b.runs.length === 0 && b.records.length === 0) return;
    const region = this.regions[b.region];
    const bytes = (b.records.length ? RECORDS_HEADROOM + b.records.length : 0) + (b.runs.length / 2) * RUN_FRAMING_BYTES + sumRuns(b.runs) * b.pageSize;
    await this.post(
      {
        kind: "batch", id: this.nextId++, region: b.region, round: b.round, pages: b.recordCount + sumRuns(b.runs),
        records: b.records.byteOffset - region.bytes.byteOffset, recordsLength: b.records.length,
        // A copy: the runs are the encoding lane's, which the next batch overwrites.
        runs: b.runs.slice(), framing: b.framing.byteOffset - region.bytes.byteOffset, framingStride: b.framingStride,
      },
      bytes,
    );
  }

  /** Present only when the thread has a lane (see open): the round sender then hands it pages, not encoded batches. */
  readonly encodeBatch?: (b: PagesToEncode) => Promise<EncodedBatch>;

  private async encodeOnThread(b: PagesToEncode): Promise<EncodedBatch> {
    // The rate limit is taken for every page whole: what the encoder saves is not known here yet.
    const bytes = b.pages.length * this.regions[b.region].pageSize;
    const encoded = await this.post({ kind: "encode", id: this.nextId++, region: b.region, round: b.round, pages: b.pages, fresh: b.fresh, encoding: b.encoding, buffer: b.buffer }, bytes);
    return encoded!;
  }

  /** What the thread encoded, from its lane's counters (reset when it opened this migration's connection). */
  encodeStats(): EncodeStats {
    return addEncodeStats(this.lane === undefined ? [] : this.regions.map((r) => Core.encodeStatsOf(r, r.layout.lanes[this.lane!])));
  }

  /**
   * Ends a round: the thread counts the pages it carried in it itself (those it encoded are
   * known only there), so `end.pages` is not used.
   */
  endRound(end: RoundEnd): Promise<void> {
    return this.post({ kind: "endRound", id: this.nextId++, end }, 0).then(() => undefined);
  }
}

function sumRuns(runs: Uint32Array): number {
  let pages = 0;
  for (let r = 1; r < runs.length; r += 2) pages += runs[r];
  return pages;
}

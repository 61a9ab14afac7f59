// One TCP connection of a migration: frames in (through a FrameReader and a pluggable sink)
// and frames out (with socket backpressure and an optional shared rate limit).
import { Socket, type OnReadOpts } from "node:net";
import { adopt, type AcceptedSocket } from "./adopt.js";
import { FrameReader, type FrameSink, frame } from "../wire/frame.js";
import { ControlQueue, type ControlFrame } from "./control-queue.js";
import { FRAME_NAMES, FrameType, MAX_CONTROL_PAYLOAD, PREAMBLE_BYTES } from "../wire/constants.js";
import { WireError, asWireError } from "../wire/errors.js";
import { checkPreamble, encodeFailure } from "../wire/messages.js";
import type { TokenBucket } from "./token-bucket.js";
import { WriteWatchdog } from "./write-watchdog.js";

export type { ControlFrame } from "./control-queue.js";

export interface ConnectionOptions {
  expectPreamble?: boolean;
  maxPayload?: (type: number) => number;
  bucket?: TokenBucket;
  /** Fail when queued writes make no progress for this long, ms (the peer stopped reading). Default: never. */
  stallTimeoutMs?: number;
}

/** HOST:PORT, [HOST]:PORT for IPv6. */
export const formatAddress = (address: string, port: number | undefined) => (address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`);

/** Where reads go once a connection has failed: nowhere that matters. */
const DISCARDED = new Uint8Array(4096);

export class Connection {
  readonly socket: Socket;
  /** True when the socket reads straight into the frame reader's targets (no copy on receive). */
  readonly readsInPlace: boolean;
  private readonly reader: FrameReader;
  private readonly control = new ControlQueue();
  private sink: FrameSink = this.control;
  private preamble: Uint8Array | undefined;
  private preambleFilled = 0;
  private failure: WireError | undefined;
  private readonly failureListeners: Array<(error: WireError) => void> = [];
  /** Bytes written to the socket (frame headers included). */
  sent = 0;
  private readonly bucket: TokenBucket | undefined;
  private readonly watchdog: WriteWatchdog | undefined;
  /** Largest payload accepted per frame type; the migration raises it once buffers are sized. */
  maxPayload: (type: number) => number;

  /**
   * Over a socket that reads into Node's buffers, or, given a function that opens a socket with
   * the `onread` it is passed, over one that reads in place.
   */
  constructor(socket: Socket | ((onread: OnReadOpts) => Socket), options: ConnectionOptions = {}) {
    this.bucket = options.bucket;
    this.watchdog = options.stallTimeoutMs
      ? new WriteWatchdog(options.stallTimeoutMs, (ms) => this.fail(new WireError("connection", `${this.peer} stopped reading: nothing it was sent went out for ${ms / 1000} s`)))
      : undefined;
    this.maxPayload = options.maxPayload ?? (() => MAX_CONTROL_PAYLOAD);
    this.reader = new FrameReader({ begin: (t, l, p) => this.sink.begin(t, l, p), end: (t) => this.sink.end(t) }, (type) => this.maxPayload(type));
    if (options.expectPreamble) this.preamble = new Uint8Array(PREAMBLE_BYTES);
    this.readsInPlace = typeof socket === "function";
    // The buffer function runs once here, and after each read for the next one.
    this.socket = typeof socket === "function" ? socket({ buffer: () => this.readTarget(), callback: (n: number) => this.onReadInPlace(n) }) : socket;
    this.socket.setNoDelay(true);
    if (!this.readsInPlace) this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", (error) => this.fail(new WireError("connection", `connection to ${this.peer} failed: ${error.message}`)));
    this.socket.on("close", () => {
      if (!this.failure) {
        const cut = !this.reader.atBoundary;
        this.fail(new WireError(cut ? "truncated" : "connection", cut ? `connection to ${this.peer} closed in the middle of a frame` : `connection to ${this.peer} closed`));
      }
    });
  }

  /** The peer's address, HOST:PORT ([HOST]:PORT for IPv6), as errors name it. */
  get peer(): string {
    if (this.peerName === undefined && this.socket.remoteAddress) this.peerName = formatAddress(this.socket.remoteAddress, this.socket.remotePort);
    return this.peerName ?? "an unknown peer";
  }

  /** Known once connected; kept, since a closed socket forgets it. */
  private peerName: string | undefined;

  /** Bytes received so far. */
  get received(): number {
    return this.reader.received;
  }

  /** Over a socket a server accepted (one created with pauseOnConnect), reading in place where Node allows. */
  static accept(accepted: Socket, options: ConnectionOptions = {}): Connection {
    const socket = accepted as AcceptedSocket;
    if (!socket._handle) {
      socket.resume();
      return new Connection(socket, options);
    }
    // The adopted socket knows no address of its own: take it from the accepted one first.
    const peer = socket.remoteAddress ? formatAddress(socket.remoteAddress, socket.remotePort) : undefined;
    const conn = new Connection((onread) => adopt(socket, onread), options);
    conn.peerName = peer;
    return conn;
  }

  /**
   * Where the next bytes read go: the rest of the preamble, or what the frame reader wants next
   * (after a failure the socket may still deliver a read before it closes).
   */
  private readTarget(): Uint8Array {
    if (this.failure) return DISCARDED;
    return this.preamble ? this.preamble.subarray(this.preambleFilled) : this.reader.target();
  }

  /** `n` bytes were read into readTarget(); returns false to stop reading (until resume()). */
  private onReadInPlace(n: number): boolean {
    if (this.failure) return false;
    try {
      if (this.preamble) this.preambleRead(n);
      else this.reader.wrote(n);
      return !this.reader.paused;
    } catch (error) {
      this.failOn(error);
      return false;
    }
  }

  /** `n` more bytes of the preamble are in; checks it once whole. */
  private preambleRead(n: number): void {
    this.preambleFilled += n;
    if (this.preambleFilled < PREAMBLE_BYTES) return;
    checkPreamble(this.preamble!);
    this.preamble = undefined;
  }

  /** Ends the connection over an error thrown while reading, telling the peer why. */
  private failOn(error: unknown): void {
    this.fail(asWireError(error), true);
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    try {
      let data: Uint8Array = chunk;
      if (this.preamble) {
        const n = Math.min(data.length, PREAMBLE_BYTES - this.preambleFilled);
        this.preamble.set(data.subarray(0, n), this.preambleFilled);
        data = data.subarray(n);
        this.preambleRead(n);
      }
      if (data.length > 0) this.reader.push(data);
      if (this.reader.paused) this.socket.pause();
    } catch (error) {
      this.failOn(error);
    }
  }

  /** Routes frames to `sink` from now on (page data needs one). */
  setSink(sink: FrameSink): void {
    this.sink = sink;
  }

  /** Continues reading after the sink's end() returned false. */
  resume(): void {
    if (this.failure) return;
    try {
      this.reader.resume();
      if (!this.reader.paused) this.socket.resume();
    } catch (error) {
      this.failOn(error);
    }
  }

  /** The next control frame; rejects when the connection fails first or after timeoutMs (0: wait forever). */
  async nextFrame(timeoutMs = 30_000): Promise<ControlFrame> {
    for (;;) {
      const next = this.control.frames.shift();
      if (next) return next;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve, reject) => {
        const timer = timeoutMs > 0 ? setTimeout(() => reject(new WireError("connection", `no answer from ${this.peer} within ${timeoutMs / 1000} s`)), timeoutMs) : undefined;
        const done = () => {
          clearTimeout(timer);
          this.control.waiter = undefined;
          unsubscribe();
          resolve();
        };
        this.control.waiter = done;
        const unsubscribe = this.onFailure(done);
      });
    }
  }

  /** The next control frame, which must be of `type`; a refusal or error frame becomes a WireError. */
  async expect(type: number, decodeFailure: (payload: Uint8Array) => WireError, timeoutMs?: number): Promise<Uint8Array> {
    const next = await this.nextFrame(timeoutMs);
    if (next.type === type) return next.payload;
    if (FRAME_NAMES[next.type] === "refuse" || FRAME_NAMES[next.type] === "error" || FRAME_NAMES[next.type] === "cancel") throw decodeFailure(next.payload);
    throw new WireError("unexpectedFrame", `expected a ${FRAME_NAMES[type]} frame from ${this.peer}, got ${FRAME_NAMES[next.type]}`);
  }

  /** Calls `listener` when the connection fails (at once if it has); returns a function that unsubscribes it. */
  onFailure(listener: (error: WireError) => void): () => void {
    if (this.failure) {
      listener(this.failure);
      return () => undefined;
    }
    this.failureListeners.push(listener);
    return () => {
      const i = this.failureListeners.indexOf(listener);
      if (i >= 0) this.failureListeners.splice(i, 1);
    };
  }

  /**
   * The frame type that tells the peer why this side gave up (refuse during a handshake, error
   * from a destination, cancel from a source); undefined sends nothing.
   */
  failureFrame: number | undefined;

  /**
   * Ends the connection because of `error` (once); listeners hear of it. With `tellPeer`, the
   * reason goes to the peer in a failureFrame before the connection closes.
   */
  fail(error: WireError, tellPeer = false): void {
    if (this.failure) return;
    this.failure = error;
    this.watchdog?.stop();
    if (tellPeer && this.failureFrame !== undefined && this.socket.writable) {
      this.socket.end(frame(this.failureFrame, encodeFailure({ reason: error.reason, message: error.message })));
      // Let the peer read why before the socket goes, but never hold the process for it.
      this.socket.unref();
      setTimeout(() => this.socket.destroy(), 2000).unref();
    } else {
      this.socket.destroy();
    }
    for (const listener of this.failureListeners.splice(0)) listener(error);
    this.control.waiter?.();
  }

  /**
   * Queues a write behind earlier ones (so a rate-limited frame is never overtaken), takes its
   * bytes from the rate limit, then calls `write`, which hands buffers to the socket at once and
   * returns a promise of their completion. Resolves when the socket has taken every buffer, so
   * their memory may be reused.
   */
  private ordered(length: number, write: () => Promise<void>): Promise<void> {
    const turn = this.order.then(async () => {
      if (this.bucket) await this.bucket.take(length);
      if (this.failure) throw this.failure;
      this.sent += length;
      return { written: write() };
    });
    this.order = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn.then((t) => t.written);
  }

  private order: Promise<void> = Promise.resolve();

  private socketWrite(part: Uint8Array): Promise<void> {
    this.watchdog?.queued();
    return new Promise<void>((resolve, reject) => {
      this.socket.write(part, (error) => {
        this.watchdog?.flushed();
        if (error) reject(this.failure ?? new WireError("connection", `write to ${this.peer} failed: ${error.message}`));
        else resolve();
      });
    });
  }

  /**
   * From now on sends a keepalive frame whenever nothing was written for `intervalMs`, until the
   * connection ends: a phase in which this side legitimately sends nothing (a slow hook, a digest
   * of a large memory) is not mistaken by the peer for a stall.
   */
  keepAlive(intervalMs: number): void {
    let last = this.sent;
    const timer = setInterval(() => {
      if (this.failure) return clearInterval(timer);
      // A failed send fails the connection, which its owners hear of.
      if (this.sent === last && this.socket.writableLength === 0) this.send(FrameType.keepalive).catch(() => undefined);
      last = this.sent;
    }, intervalMs);
    timer.unref();
  }

  /** Writes raw bytes (the preamble, or a prebuilt frame). */
  write(bytes: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.ordered(bytes.length, () => this.socketWrite(bytes));
  }

  /** Sends a control frame. */
  send(type: number, payload?: Uint8Array): Promise<void> {
    return this.write(frame(type, payload));
  }

  /**
   * Sends frames already framed in `parts` (`length` bytes in all), corked into one write: the
   * parts are not copied. Resolves once the socket has taken the last (a stream writes in
   * order, so every part before it too).
   */
  sendFrames(parts: Uint8Array[], length: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.ordered(length, () => {
      this.socket.cork();
      for (let i = 0; i < parts.length - 1; i++) this.socket.write(parts[i]);
      const written = this.socketWrite(parts[parts.length - 1]);
      this.socket.uncork();
      return written;
    });
  }

  /**
   * Ends the connection on purpose, once the protocol is done with it: writes already handed to
   * the socket go out, then it closes, whatever the peer does. That is no failure (listeners hear
   * nothing); a later send or read is refused.
   */
  close(): void {
    if (this.failure) return;
    this.failure = new WireError("connection", `the connection to ${this.peer} was closed by this side`);
    this.watchdog?.stop();
    this.socket.destroySoon();
    this.control.waiter?.();
  }
}

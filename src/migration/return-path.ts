// The source's return path (QEMU's rp thread): the frames the destination sends back on channel
// 0, read until it confirms the digest. Acknowledgements and page requests go to their handlers;
// an error or refusal, or a frame with no place here, fails the migration.
import type { Connection } from "../transport/connection.js";
import { FrameType, FRAME_NAMES } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import { decodeAck, decodeDone, decodeFailure, decodePageRequest, type PageRequest } from "../wire/messages.js";
import { decodeSwitchover, type Switchover } from "../wire/pages.js";
import { type FailureLatch, asError } from "./failure.js";

export interface ReturnPathHandlers {
  ack(round: number): void;
  /** A page request; undefined while post-copy has not begun (a request then is a protocol error). */
  pageRequest: ((request: PageRequest) => void) | undefined;
  /** A region's bitmap of pages the destination still lacks; undefined unless a post-copy reconnection waits for them. */
  stillMissing: ((bitmap: Switchover) => void) | undefined;
}

export class ReturnPath {
  /** Resolves with the destination's verification time once it sent done; rejects on the migration's first failure. */
  readonly done: Promise<number>;
  private resolveDone!: (verifyMs: number) => void;
  /** Set when the source has sent complete: what a done must be authenticated with. */
  private awaitedDone: { key: Uint8Array; completeMac: Uint8Array } | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly latch: FailureLatch,
    private readonly handlers: () => ReturnPathHandlers,
    /** How long the destination may take to confirm once the completion is sent, ms. */
    private readonly timeoutMs: number,
  ) {
    this.done = new Promise<number>((resolve, reject) => {
      this.resolveDone = resolve;
      latch.onFail(reject);
    });
    // Awaited when the migration ends; a failure before that is thrown from the step that sees it.
    this.done.catch(() => undefined);
    void this.read();
  }

  /** When the destination last sent a frame: while it verifies, its keepalives say it is alive. */
  private lastHeard = performance.now();

  /**
   * The completion has gone: a done is valid from now on if it answers it under `key`. The
   * destination must send it, or at least keepalives, within the timeout.
   */
  expectDone(key: Uint8Array, completeMac: Uint8Array): void {
    this.awaitedDone = { key, completeMac };
    this.lastHeard = performance.now();
    const timer = setInterval(() => {
      if (performance.now() - this.lastHeard < this.timeoutMs) return;
      this.latch.fail(new WireError("connection", `the destination ${this.conn.peer} did not confirm the digest, nor send anything, within ${this.timeoutMs / 1000} s of the completion; the guest runs on here`));
    }, Math.max(10, Math.min(1000, this.timeoutMs / 4)));
    timer.unref();
    this.done.then(() => clearInterval(timer), () => clearInterval(timer));
  }

  private async read(): Promise<void> {
    try {
      for (;;) {
        const { type, payload } = await this.conn.nextFrame(0);
        this.lastHeard = performance.now();
        const handlers = this.handlers();
        if (type === FrameType.keepalive) {
          if (payload.length !== 0) throw new WireError("badFrame", `the destination sent a keepalive frame of ${payload.length} bytes; it has none`);
        } else if (type === FrameType.ack) {
          handlers.ack(decodeAck(payload).round);
        } else if (type === FrameType.pageRequest && handlers.pageRequest) {
          handlers.pageRequest(decodePageRequest(payload));
        } else if (type === FrameType.stillMissing && handlers.stillMissing) {
          handlers.stillMissing(decodeSwitchover(payload));
        } else if (type === FrameType.done) {
          if (!this.awaitedDone) throw new WireError("unexpectedFrame", "the destination sent done before the source sent its completion");
          this.resolveDone(decodeDone(payload, this.awaitedDone.key, this.awaitedDone.completeMac).verifyMs);
          return;
        } else if (type === FrameType.error || type === FrameType.refuse) {
          const f = decodeFailure(payload, "destination's error");
          throw new WireError(f.reason, `the destination failed: ${f.message}`);
        } else {
          throw new WireError("unexpectedFrame", `the destination sent a ${FRAME_NAMES[type]} frame${type === FrameType.pageRequest ? " before post-copy began" : ""}`);
        }
      }
    } catch (error) {
      this.latch.fail(asError(error));
    }
  }
}

// A connection's default sink: whole control frames, queued until Connection.nextFrame() takes
// them. Frames that carry pages have no place here (a migration's session sets its own sink).
import type { FrameSink } from "../wire/frame.js";
import { FRAME_NAMES } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";

export interface ControlFrame {
  type: number;
  payload: Uint8Array;
}

/** Default sink: queues whole control frames for nextFrame(); frames with page data are refused. */
export class ControlQueue implements FrameSink {
  readonly frames: ControlFrame[] = [];
  private current: Uint8Array = new Uint8Array(0);
  waiter?: () => void;

  begin(type: number, length: number, prefix: Uint8Array): Uint8Array {
    if (prefix.length > 0) throw new WireError("unexpectedFrame", `${FRAME_NAMES[type]} frame arrived before the handshake finished`);
    this.current = new Uint8Array(length);
    return this.current;
  }

  end(type: number): boolean {
    this.frames.push({ type, payload: this.current });
    this.waiter?.();
    return true;
  }
}

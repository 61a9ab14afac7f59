// Device state (the embedder's CPU and device registers, or a workload's state struct), both
// sides: cut into pieces of at most DEVICE_STATE_PIECE bytes on channel 0, put back together in
// order on the destination, every piece checked against what came before.
import { FrameType, DEVICE_STATE_PIECE, MAX_DEVICE_STATE } from "../wire/constants.js";
import { WireError } from "../wire/errors.js";
import { encodeDeviceStatePiece, type DeviceStatePiece } from "../wire/messages.js";
import type { Connection } from "../transport/connection.js";
import { PagewireError } from "../errors.js";

/** Sends `state` as device-state frames (one empty piece when it is empty). */
export async function sendDeviceState(channel0: Connection, state: Uint8Array): Promise<void> {
  if (state.length > MAX_DEVICE_STATE) throw new PagewireError("EOPTION", `device state of ${state.length} bytes exceeds the ${MAX_DEVICE_STATE}-byte limit`);
  let offset = 0;
  do {
    const bytes = state.subarray(offset, offset + DEVICE_STATE_PIECE);
    await channel0.send(FrameType.deviceState, encodeDeviceStatePiece({ offset, total: state.length, bytes }));
    offset += bytes.length;
  } while (offset < state.length);
}

/** The destination's half: pieces in, one state out. */
export class DeviceStateAssembler {
  private state: Uint8Array | undefined;
  private filled = 0;

  /** True once every byte has arrived. */
  get complete(): boolean {
    return this.state !== undefined && this.filled === this.state.length;
  }

  /** The whole state; only when complete. */
  get bytes(): Uint8Array {
    if (!this.complete) throw new WireError("truncated", "completion arrived before the whole device state");
    return this.state!;
  }

  /** Adds a piece; returns true when it completed the state. */
  add(piece: DeviceStatePiece): boolean {
    if (piece.total > MAX_DEVICE_STATE) throw new WireError("frameTooLarge", `device state of ${piece.total} bytes exceeds the ${MAX_DEVICE_STATE}-byte limit`);
    const first = this.state === undefined;
    this.state ??= new Uint8Array(piece.total);
    if ((!first && this.complete) || piece.total !== this.state.length || piece.offset !== this.filled || piece.offset + piece.bytes.length > piece.total) {
      throw new WireError("badFrame", `device state piece at ${piece.offset} (${piece.bytes.length} of ${piece.total} bytes) does not follow the ${this.filled} bytes received`);
    }
    this.state.set(piece.bytes, piece.offset);
    this.filled += piece.bytes.length;
    return this.complete;
  }
}

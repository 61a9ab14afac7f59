import { PagewireError, ERRORS, type ErrorCode, type ErrorInfo } from "../errors.js";
import { REASON_NAMES, type ReasonName, Reason } from "./constants.js";

/** The error code of each wire reason: the table entry that carries its number. */
const CODE_OF_REASON = Object.fromEntries(
  Object.entries(ERRORS).flatMap(([code, info]) => ("wire" in info ? [[REASON_NAMES[info.wire], code]] : [])),
) as Record<ReasonName, ErrorCode>;

/** A protocol failure: what went wrong on the wire, with the reason code both peers share. */
export class WireError extends PagewireError {
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(CODE_OF_REASON[reason], message);
    this.name = "WireError";
  }

  get reasonCode(): number {
    return Reason[this.reason];
  }
}

/**
 * What to tell the peer about a failure, the same on both sides: a protocol failure as it is, a
 * cancellation here as cancelled, an error whose code has a wire reason (ESTATE from a hook) with
 * it, anything else (a bug, a hook that threw) as internal.
 */
export function asWireError(error: unknown): WireError {
  if (error instanceof WireError) return error;
  if (error instanceof PagewireError && error.code === "EABORTED") return new WireError("cancelled", error.message);
  if (error instanceof PagewireError) {
    const info: ErrorInfo = ERRORS[error.code];
    if (info.wire !== undefined) return new WireError(REASON_NAMES[info.wire], error.message);
  }
  return new WireError("internal", error instanceof Error ? error.message : String(error));
}

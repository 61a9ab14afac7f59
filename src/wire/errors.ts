import { PagewireError } from "../errors.js";
import { REASON_NAMES, type ReasonName, Reason } from "./constants.js";

/** A protocol failure: what went wrong on the wire, with the reason code both peers share. */
export class WireError extends PagewireError {
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(`E${reason.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase()}`, message);
    this.name = "WireError";
  }

  get reasonCode(): number {
    return Reason[this.reason];
  }

  static fromCode(code: number, message: string): WireError {
    return new WireError(REASON_NAMES[code] ?? "internal", message);
  }
}

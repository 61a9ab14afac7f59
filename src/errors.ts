// Every error pagewire raises is a PagewireError with a code from this table: a stable name and
// number for programs to branch on, what it means, and what to do. The codes that travel on the
// wire carry their protocol reason (docs/PROTOCOL.md, "refuse, error, cancel"); WireError
// (src/wire/errors.ts) is the PagewireError of those. The README lists the same table.

export interface ErrorInfo {
  /** Stable across releases. */
  number: number;
  /** The reason code in refuse, error and cancel frames, for errors that cross the wire. */
  wire?: number;
  /** What happened and what to do about it. */
  meaning: string;
  /** Where it can arise. */
  where: string;
}

export const ERRORS = {
  EBAD_MAGIC: { number: 1, wire: 1, meaning: "the peer does not speak pagewire: check the host and port", where: "handshake (destination)" },
  EVERSION: { number: 2, wire: 2, meaning: "the two sides speak different protocol versions: run the same pagewire release on both hosts", where: "handshake (destination)" },
  EAUTH: { number: 3, wire: 3, meaning: "the shared secrets differ: give both sides the same --secret", where: "handshake (both sides)" },
  EREGION_MISMATCH: {
    number: 4, wire: 4,
    meaning: "the destination cannot hold the guest offered (a different size or page size than its fixed memory, or too large to allocate): match --size and --page-size on both sides",
    where: "admission (destination)",
  },
  EFRAME_TOO_LARGE: { number: 5, wire: 5, meaning: "a frame was longer than its type allows: the peer is broken or hostile", where: "any frame" },
  EBAD_FRAME: { number: 6, wire: 6, meaning: "a frame broke the protocol (a field out of range, reserved bits set, a count that does not add up): the peer is broken or hostile", where: "any frame" },
  EUNEXPECTED_FRAME: { number: 7, wire: 7, meaning: "a frame arrived where the protocol has no place for it", where: "any frame" },
  EDECODE: { number: 8, wire: 8, meaning: "a batch of page records is malformed (a page outside the region, a bad LZ4 block or delta); nothing outside the named page was written", where: "pages frames (destination), Core.decode" },
  EDIGEST: {
    number: 9, wire: 9,
    meaning: "the destination's memory differs from the source's at the pause, so nothing was resumed there and the source runs on: a writer did not mark a page dirty after writing it, or the stream was changed on the way",
    where: "completion (destination)",
  },
  ETRUNCATED: { number: 10, wire: 10, meaning: "the stream ended in the middle of a frame, or before every page or the whole device state arrived", where: "any channel" },
  EBUSY: { number: 11, wire: 11, meaning: "the destination is receiving another migration into its fixed memory: retry when it is done", where: "admission (destination)" },
  ECANCELLED: { number: 12, wire: 12, meaning: "the other side cancelled the migration; its message says why", where: "any time before done" },
  EINTERNAL: { number: 13, wire: 13, meaning: "an unexpected failure on the other side (a bug, or a hook that threw); its message says what", where: "any time" },
  EUNKNOWN_MIGRATION: { number: 14, wire: 14, meaning: "a data channel named a migration the destination does not know: channel 0 failed or never opened", where: "admission (destination)" },
  ECONNECTION: { number: 15, wire: 15, meaning: "the connection failed, closed, or went unanswered: is the peer running and reachable?", where: "any channel" },
  EOPTION: { number: 20, meaning: "an option or argument is invalid; the message names it and the values allowed", where: "Source, Listener, policies, the command line" },
  ELAYOUT: { number: 21, meaning: "a region cannot be laid out (page size, page count, more than 4 GiB with its buffers): pick a valid page size or split the guest into regions", where: "Region.create, planLayout" },
  ECORE: { number: 22, meaning: "the WASM core is not built or cannot be loaded: run npm run build (or reinstall the package)", where: "the first Core or workload" },
  EABORTED: { number: 23, meaning: "the migration was cancelled here (the AbortSignal fired, or Ctrl-C); the guest runs on at the source", where: "Source" },
  EPOSTCOPY: { number: 24, meaning: "post-copy failed after the switch-over: the guest ran on the destination with part of its memory, so it is lost on both sides; restart it from a checkpoint", where: "Source, after a switch-over" },
  ESTATE: { number: 25, wire: 16, meaning: "the device state is not a pagewire workload state, is of an unknown format, or does not fit the guest (a field out of range; the message names it): a destination refuses it before done, so the source runs on", where: "Workload.check, a destination's checkDeviceState hook, pagewire listen" },
  EDESTINATION: { number: 26, meaning: "the destination process that pagewire migrate started failed or exited; its message says why", where: "pagewire migrate" },
  ELISTEN: { number: 27, meaning: "the destination cannot listen where it was told: the port is in use, or the address is not this host's", where: "Listener.listen, pagewire listen" },
  ETIMEOUT: { number: 28, meaning: "the migration did not complete within the time allowed (--timeout) and was cancelled; the guest runs on at the source", where: "pagewire send, migrate" },
  ECHECKPOINT: { number: 29, meaning: "a checkpoint file is not one pagewire wrote, is cut short or corrupt (a page does not match its digest), or a layer is restored without its base or out of order: the message says which, and nothing half-restored was resumed", where: "Checkpoint, restore, pagewire checkpoint, restore, send --from" },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

/** Every error pagewire raises: `code` and `number` are stable for programs to branch on, the message is for people. */
export class PagewireError extends Error {
  readonly number: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PagewireError";
    this.number = ERRORS[code].number;
  }
}

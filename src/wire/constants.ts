// Constants of the pagewire stream (docs/PROTOCOL.md). All integers are little-endian.

/** The first 4 bytes a source sends on every connection. */
export const MAGIC = 0x52574750; // "PGWR" read as a little-endian u32
/** 2: complete and done carry MACs under the session key; 4: a region's digest is a sum of terms per 16 KiB group of pages. */
export const PROTOCOL_VERSION = 4;
/** Magic (4) + version (2) + reserved (2). */
export const PREAMBLE_BYTES = 8;
/** u32 payload length, u8 type, u8 flags, u16 reserved. */
export const FRAME_HEADER_BYTES = 8;
/** No frame may be longer than this, whatever was negotiated. */
export const MAX_FRAME_PAYLOAD = 64 << 20;
/** Control frames (handshake, markers, errors) are small. */
export const MAX_CONTROL_PAYLOAD = 64 << 10;
/** Device state travels in pieces of at most this many bytes. */
export const DEVICE_STATE_PIECE = 1 << 20;
/** Largest device-state blob accepted. */
export const MAX_DEVICE_STATE = 256 << 20;
export const MAX_REGIONS = 256;
export const MAX_CHANNELS = 16;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const MIGRATION_ID_BYTES = 16;
export const MAX_REASON_BYTES = 1024;

export const FrameType = {
  // Handshake.
  hello: 0x01,
  challenge: 0x02,
  auth: 0x03,
  accept: 0x04,
  refuse: 0x05,
  // Source to destination.
  pages: 0x10,
  rawRun: 0x11,
  roundEnd: 0x12,
  deviceState: 0x20,
  complete: 0x21,
  cancel: 0x22,
  switchover: 0x23,
  // Destination to source (the return path, channel 0).
  ack: 0x30,
  done: 0x31,
  error: 0x32,
  pageRequest: 0x33,
  /** After a post-copy reconnection: a region's bitmap of pages still missing (the switchover's layout). */
  stillMissing: 0x34,
  // Either way, after the handshake: no payload; it only shows the sender is alive in a quiet phase.
  keepalive: 0x40,
} as const;
export type FrameTypeName = keyof typeof FrameType;

/** Name by code, for a table of codes by name. */
function namesByCode<T extends Record<string, number>>(codes: T): Record<number, keyof T> {
  return Object.fromEntries(Object.entries(codes).map(([name, code]) => [code, name]));
}

export const FRAME_NAMES = namesByCode(FrameType);

/** Fixed bytes at the start of a frame's payload that the reader needs before it can place the rest. */
export const PAGES_PREFIX_BYTES = 8; // u16 region, u16 reserved, u32 round
export const RAW_RUN_PREFIX_BYTES = 16; // u16 region, u16 reserved, u32 round, u32 first page, u32 count
export const SWITCHOVER_PREFIX_BYTES = 4; // u16 region, u16 reserved; then the bitmap of pages still to come

/** Reasons carried by refuse, error and cancel frames, and by WireError. */
export const Reason = {
  badMagic: 1,
  version: 2,
  auth: 3,
  regionMismatch: 4,
  frameTooLarge: 5,
  badFrame: 6,
  unexpectedFrame: 7,
  decode: 8,
  digest: 9,
  truncated: 10,
  busy: 11,
  cancelled: 12,
  internal: 13,
  unknownMigration: 14,
  connection: 15,
  state: 16,
} as const;
export type ReasonName = keyof typeof Reason;
export const REASON_NAMES = namesByCode(Reason);

/**
 * The offer's flags. resumable: the source reconnects after a broken connection, so the
 * destination holds the migration for a while instead of dropping it. resuming: this channel 0
 * reconnects such a migration (refused when the destination does not hold it).
 */
export const OfferFlags = { resumable: 1, resuming: 2 } as const;
export const ALL_OFFER_FLAGS = OfferFlags.resumable | OfferFlags.resuming;

/** Encodings a source may use; the destination accepts any of them. */
export const Encoding = { lz4: 1, delta: 2 } as const;

// Encoders and validating decoders for every control message (docs/PROTOCOL.md); the prefixes
// of the frames that carry pages are in pages.ts. Reserved fields must be 0.
import { ByteReader, ByteWriter } from "./bytes.js";
import {
  OfferFlags, ALL_OFFER_FLAGS, MAGIC, PROTOCOL_VERSION, PREAMBLE_BYTES, MIGRATION_ID_BYTES, NONCE_BYTES, MAC_BYTES, MAX_REGIONS,
  MAX_CHANNELS, MAX_REASON_BYTES, Reason, REASON_NAMES, type ReasonName, Encoding,
} from "./constants.js";

const ALL_ENCODINGS = Encoding.lz4 | Encoding.delta;
import { WireError } from "./errors.js";
import { tag, sameMac } from "./auth.js";
import { MIN_PAGE_SIZE, MAX_PAGE_SIZE } from "../abi/abi.js";

export function encodePreamble(version = PROTOCOL_VERSION): Uint8Array {
  return ByteWriter.sized(PREAMBLE_BYTES).u32(MAGIC).u16(version).u16(0).bytes;
}

/** Checks the 8 bytes a connection starts with; returns the version. */
export function checkPreamble(bytes: Uint8Array): number {
  const r = new ByteReader(bytes, "preamble");
  const magic = r.u32();
  if (magic !== MAGIC) {
    throw new WireError("badMagic", `the peer does not speak pagewire (first bytes 0x${magic.toString(16).padStart(8, "0")}, expected "PGWR")`);
  }
  const version = r.u16();
  if (version !== PROTOCOL_VERSION) {
    throw new WireError("version", `the source speaks pagewire protocol ${version}, this destination speaks ${PROTOCOL_VERSION}: run the same pagewire version on both hosts`);
  }
  r.reserved16();
  return version;
}

export interface Hello {
  migrationId: Uint8Array;
  channelIndex: number;
  channelCount: number;
  clientNonce: Uint8Array;
}

export function encodeHello(h: Hello): Uint8Array {
  return ByteWriter.sized(MIGRATION_ID_BYTES + 4 + NONCE_BYTES).raw(h.migrationId).u16(h.channelIndex).u16(h.channelCount).raw(h.clientNonce).bytes;
}

export function decodeHello(bytes: Uint8Array): Hello {
  const r = new ByteReader(bytes, "hello");
  const hello = { migrationId: r.raw(MIGRATION_ID_BYTES).slice(), channelIndex: r.u16(), channelCount: r.u16(), clientNonce: r.raw(NONCE_BYTES).slice() };
  r.end();
  if (hello.channelCount < 1 || hello.channelCount > MAX_CHANNELS) throw new WireError("badFrame", `hello asks for ${hello.channelCount} channels; 1 to ${MAX_CHANNELS} are allowed`);
  if (hello.channelIndex >= hello.channelCount) throw new WireError("badFrame", `hello names channel ${hello.channelIndex} of ${hello.channelCount}`);
  return hello;
}

/** What the source proposes on channel 0: the guest's shape and how pages will be encoded. */
export interface Offer {
  pageSize: number;
  /** Encoding bits (Encoding.*) the source may use. */
  encodings: number;
  /** Most pages in one page frame; the destination sizes its buffers by it. */
  batchPages: number;
  /** Pages of each region. */
  regions: number[];
  /** OfferFlags: whether the source reconnects after a break, and whether this offer is such a reconnection. */
  flags?: number;
}

export interface Auth {
  mac: Uint8Array;
  /** Present on channel 0 only: its bytes are covered by the MAC (see proof() in auth.ts). */
  offerBytes?: Uint8Array;
}

export function encodeOffer(o: Offer): Uint8Array {
  const w = ByteWriter.sized(16 + 8 * o.regions.length).u32(o.pageSize).u32(o.encodings).u32(o.batchPages).u16(o.regions.length).u16(o.flags ?? 0);
  for (const pages of o.regions) w.u64(pages);
  return w.bytes;
}

export function encodeAuth(a: Auth): Uint8Array {
  const out = new Uint8Array(MAC_BYTES + (a.offerBytes?.length ?? 0));
  out.set(a.mac);
  if (a.offerBytes) out.set(a.offerBytes, MAC_BYTES);
  return out;
}

/** Splits an auth message; the offer's bytes are read only once the MAC over them is checked (decodeOffer). */
export function decodeAuth(bytes: Uint8Array, withOffer: boolean): Auth {
  const r = new ByteReader(bytes, "auth");
  const mac = r.raw(MAC_BYTES).slice();
  if (!withOffer) {
    r.end();
    return { mac };
  }
  return { mac, offerBytes: r.rest().slice() };
}

export function decodeOffer(bytes: Uint8Array): Offer {
  const r = new ByteReader(bytes, "offer");
  const pageSize = r.u32();
  const encodings = r.u32();
  const batchPages = r.u32();
  const regionCount = r.u16();
  const flags = r.u16();
  if ((flags & ~ALL_OFFER_FLAGS) !== 0) throw new WireError("badFrame", `offer has unknown flag bits 0x${flags.toString(16)}`);
  if ((flags & OfferFlags.resuming) !== 0 && (flags & OfferFlags.resumable) === 0) throw new WireError("badFrame", "offer resumes a migration but says it is not resumable");
  if ((encodings & ~ALL_ENCODINGS) !== 0) throw new WireError("badFrame", `offer has unknown encoding bits 0x${encodings.toString(16)}`);
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) throw new WireError("badFrame", `offer has page size ${pageSize}`);
  if (batchPages < 1 || batchPages > 65536) throw new WireError("badFrame", `offer has ${batchPages} pages per batch`);
  if (regionCount < 1 || regionCount > MAX_REGIONS) throw new WireError("badFrame", `offer has ${regionCount} regions; 1 to ${MAX_REGIONS} are allowed`);
  const regions: number[] = [];
  for (let i = 0; i < regionCount; i++) {
    const pages = r.safeU64();
    if (pages < 1) throw new WireError("badFrame", `offer region ${i} has no pages`);
    regions.push(pages);
  }
  r.end();
  return { pageSize, encodings, batchPages, regions, flags };
}

/** A message that is exactly `length` opaque bytes: a challenge (nonce) or an accept (MAC). */
export function decodeFixed(bytes: Uint8Array, length: number, what: string): Uint8Array {
  const r = new ByteReader(bytes, what);
  const out = r.raw(length).slice();
  r.end();
  return out;
}

/** A refusal, an error or a cancellation: a reason code and a sentence for people. */
export interface Failure {
  reason: ReasonName;
  message: string;
}

export function encodeFailure(f: Failure): Uint8Array {
  const text = new TextEncoder().encode(f.message).subarray(0, MAX_REASON_BYTES);
  return ByteWriter.sized(4 + text.length).u16(Reason[f.reason]).u16(0).raw(text).bytes;
}

export function decodeFailure(bytes: Uint8Array, what: string): Failure {
  const r = new ByteReader(bytes, what);
  const code = r.u16();
  r.reserved16();
  const text = r.rest();
  if (text.length > MAX_REASON_BYTES) throw new WireError("badFrame", `${what} reason is ${text.length} bytes`);
  const reason: ReasonName = REASON_NAMES[code] ?? "internal";
  return { reason, message: new TextDecoder().decode(text) };
}

export interface RoundEnd {
  round: number;
  /** Pages this channel carried in the round: the destination checks it received as many. */
  pages: number;
  /** Set on the last round: the guest is paused, device state and completion follow. */
  final: boolean;
}

export function encodeRoundEnd(e: RoundEnd): Uint8Array {
  return ByteWriter.sized(16).u32(e.round).u32(e.final ? 1 : 0).u64(e.pages).bytes;
}

export function decodeRoundEnd(bytes: Uint8Array): RoundEnd {
  const r = new ByteReader(bytes, "round end");
  const round = r.u32();
  const flags = r.u32();
  const pages = r.safeU64();
  r.end();
  if (flags > 1) throw new WireError("badFrame", `round end has unknown flags ${flags}`);
  return { round, pages, final: flags === 1 };
}

export interface DeviceStatePiece {
  offset: number;
  total: number;
  bytes: Uint8Array;
}

export const DEVICE_STATE_HEADER_BYTES = 16;

export function encodeDeviceStatePiece(p: DeviceStatePiece): Uint8Array {
  return ByteWriter.sized(DEVICE_STATE_HEADER_BYTES + p.bytes.length).u64(p.offset).u64(p.total).raw(p.bytes).bytes;
}

export function decodeDeviceStatePiece(bytes: Uint8Array): DeviceStatePiece {
  const r = new ByteReader(bytes, "device state");
  const offset = r.safeU64();
  const total = r.safeU64();
  return { offset, total, bytes: r.rest() };
}

export interface Complete {
  /**
   * Per region: the digest of its memory at pause time (docs/PROTOCOL.md); after post-copy, the
   * sum of per-page hashes instead, which the destination adds up as pages arrive.
   */
  digests: bigint[];
}

/** complete: u32 count, a u64 digest per region, then the MAC of all that under the session key. */
export function encodeComplete(c: Complete, key: Uint8Array): Uint8Array {
  const w = ByteWriter.sized(4 + 8 * c.digests.length).u32(c.digests.length);
  for (const d of c.digests) w.u64(d);
  const out = new Uint8Array(w.bytes.length + MAC_BYTES);
  out.set(w.bytes);
  out.set(tag(key, "pagewire/2 complete", w.bytes), w.bytes.length);
  return out;
}

/** Reads a completion and checks its MAC; also returns the MAC, which done answers to. */
export function decodeComplete(bytes: Uint8Array, key: Uint8Array): Complete & { mac: Uint8Array } {
  const r = new ByteReader(bytes, "complete");
  const n = r.u32();
  if (n < 1 || n > MAX_REGIONS) throw new WireError("badFrame", `complete carries ${n} digests`);
  const digests = Array.from({ length: n }, () => r.u64());
  const mac = r.raw(MAC_BYTES).slice();
  r.end();
  if (!sameMac(mac, tag(key, "pagewire/2 complete", bytes.subarray(0, 4 + 8 * n)))) {
    throw new WireError("auth", "the completion is not authenticated by this migration's key: it did not come from the source that opened the migration (a relay on the path changed or forged it)");
  }
  return { digests, mac };
}

/** The destination applied every frame of a round (the source learns how far behind it is). */
export interface Ack {
  round: number;
}

export function encodeAck(a: Ack): Uint8Array {
  return ByteWriter.sized(4).u32(a.round).bytes;
}

export function decodeAck(bytes: Uint8Array): Ack {
  const r = new ByteReader(bytes, "ack");
  const round = r.u32();
  r.end();
  return { round };
}

/** The destination verified the digest and resumed the guest. */
export interface Done {
  /** Milliseconds the destination spent verifying the digest. */
  verifyMs: number;
}

/** done: u32 ms, then the MAC under the session key of those bytes and of the completion's MAC it answers. */
export function encodeDone(d: Done, key: Uint8Array, completeMac: Uint8Array): Uint8Array {
  const head = ByteWriter.sized(4).u32(Math.min(0xffffffff, Math.round(d.verifyMs))).bytes;
  const out = new Uint8Array(4 + MAC_BYTES);
  out.set(head);
  out.set(tag(key, "pagewire/2 done", head, completeMac), 4);
  return out;
}

export function decodeDone(bytes: Uint8Array, key: Uint8Array, completeMac: Uint8Array): Done {
  const r = new ByteReader(bytes, "done");
  const verifyMs = r.u32();
  const mac = r.raw(MAC_BYTES);
  r.end();
  if (!sameMac(mac, tag(key, "pagewire/2 done", bytes.subarray(0, 4), completeMac))) {
    throw new WireError("auth", "the confirmation (done) is not authenticated by this migration's key: it did not come from the destination that verified the digests");
  }
  return { verifyMs };
}

/** Post-copy: the destination asks for pages its guest touched before they arrived. */
export interface PageRequest {
  region: number;
  page: number;
  count: number;
}

export function encodePageRequest(p: PageRequest): Uint8Array {
  return ByteWriter.sized(12).u16(p.region).u16(0).u32(p.page).u32(p.count).bytes;
}

export function decodePageRequest(bytes: Uint8Array): PageRequest {
  const r = new ByteReader(bytes, "page request");
  const region = r.u16();
  r.reserved16();
  const page = r.u32();
  const count = r.u32();
  r.end();
  return { region, page, count };
}


// Every wire codec alone: each message and prefix round-trips, and malformed bytes are refused
// with badFrame (truncated, trailing bytes, reserved bits, values out of range). The frame reader
// reassembles frames from any split of the stream, both ways of reading.
import { describe, it, expect } from "vitest";
import * as m from "../src/wire/messages.js";
import { readPagesPrefix, readRawRunPrefix, writePagesPrefix, writeRawRunPrefix, encodeSwitchover, decodeSwitchover } from "../src/wire/pages.js";
import { FrameReader, frame, type FrameSink } from "../src/wire/frame.js";
import { FrameType, PAGES_PREFIX_BYTES, RAW_RUN_PREFIX_BYTES, MAX_CONTROL_PAYLOAD, PROTOCOL_VERSION } from "../src/wire/constants.js";
import { WireError } from "../src/wire/errors.js";
import { randomBytes } from "./helpers.js";

function refused(f: () => unknown, pattern: RegExp): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(WireError);
  expect((error as WireError).message).toMatch(pattern);
}

/** Every prefix of a message shorter than it, and the message with a byte added, are refused. */
function strictLength(bytes: Uint8Array, decode: (b: Uint8Array) => unknown): void {
  for (let n = 0; n < bytes.length; n++) refused(() => decode(bytes.subarray(0, n)), /too short|bytes/);
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  refused(() => decode(longer), /trailing/);
}

describe("control messages", () => {
  const id = randomBytes(16, 1);
  const nonce = randomBytes(32, 2);
  const offer = { pageSize: 4096, encodings: 3, batchPages: 256, regions: [262144, 7], flags: 0 };

  it("round-trip, and refuse a wrong length", () => {
    const hello = { migrationId: id, channelIndex: 1, channelCount: 2, clientNonce: nonce };
    expect(m.decodeHello(m.encodeHello(hello))).toEqual(hello);
    strictLength(m.encodeHello(hello), m.decodeHello);
    const auth = { mac: randomBytes(32, 3), offerBytes: m.encodeOffer(offer) };
    expect(m.decodeAuth(m.encodeAuth(auth), true)).toEqual(auth);
    expect(m.decodeOffer(auth.offerBytes)).toEqual(offer);
    expect(m.decodeOffer(m.encodeOffer({ ...offer, flags: 3 }))).toEqual({ ...offer, flags: 3 });
    expect(m.decodeAuth(m.encodeAuth({ mac: auth.mac }), false)).toEqual({ mac: auth.mac });
    strictLength(auth.offerBytes, m.decodeOffer);
    for (const e of [{ round: 7, pages: 2 ** 40, final: true }, { round: 0, pages: 0, final: false }]) {
      expect(m.decodeRoundEnd(m.encodeRoundEnd(e))).toEqual(e);
      strictLength(m.encodeRoundEnd(e), m.decodeRoundEnd);
    }
    const piece = { offset: 3 << 20, total: 5 << 20, bytes: randomBytes(100, 4) };
    expect(m.decodeDeviceStatePiece(m.encodeDeviceStatePiece(piece))).toEqual(piece);
    const key = randomBytes(32, 9);
    const complete = { digests: [0n, 2n ** 64n - 1n, 12345n] };
    const completeBytes = m.encodeComplete(complete, key);
    const { mac, ...decoded } = m.decodeComplete(completeBytes, key);
    expect(decoded).toEqual(complete);
    strictLength(completeBytes, (b) => m.decodeComplete(b, key));
    refused(() => m.decodeComplete(completeBytes, randomBytes(32, 10)), /not authenticated/);
    const tampered = completeBytes.slice();
    tampered[5] ^= 1;
    refused(() => m.decodeComplete(tampered, key), /not authenticated/);
    expect(m.decodeAck(m.encodeAck({ round: 9 }))).toEqual({ round: 9 });
    expect(m.decodeDone(m.encodeDone({ verifyMs: 12.4 }, key, mac), key, mac)).toEqual({ verifyMs: 12 });
    refused(() => m.decodeDone(m.encodeDone({ verifyMs: 1 }, key, mac), key, new Uint8Array(32)), /not authenticated/);
    const request = { region: 3, page: 100, count: 5 };
    expect(m.decodePageRequest(m.encodePageRequest(request))).toEqual(request);
    strictLength(m.encodePageRequest(request), m.decodePageRequest);
    const failure = { reason: "digest" as const, message: "memory digest mismatch" };
    expect(m.decodeFailure(m.encodeFailure(failure), "error")).toEqual(failure);
    expect(m.checkPreamble(m.encodePreamble())).toBe(PROTOCOL_VERSION);
  });

  it("refuse reserved bits, unknown flags and encodings, and values out of range", () => {
    const reserved = (bytes: Uint8Array, at: number) => {
      const b = bytes.slice();
      b[at] = 1;
      return b;
    };
    refused(() => m.checkPreamble(reserved(m.encodePreamble(), 6)), /reserved/);
    refused(() => m.decodePageRequest(reserved(m.encodePageRequest({ region: 0, page: 0, count: 1 }), 2)), /reserved/);
    refused(() => m.decodeFailure(reserved(m.encodeFailure({ reason: "busy", message: "x" }), 2), "refusal"), /reserved/);
    const offerBytes = m.encodeOffer(offer);
    refused(() => m.decodeOffer(m.encodeOffer({ ...offer, flags: 4 })), /unknown flag bits 0x4/);
    refused(() => m.decodeOffer(m.encodeOffer({ ...offer, flags: 2 })), /resumes a migration but says it is not resumable/);
    refused(() => m.decodeOffer(reserved(offerBytes, 4 + 1)), /unknown encoding bits/);
    refused(() => m.decodeOffer(m.encodeOffer({ ...offer, pageSize: 3000 })), /page size 3000/);
    refused(() => m.decodeOffer(m.encodeOffer({ ...offer, regions: [0] })), /no pages/);
    refused(() => m.decodeRoundEnd(reserved(m.encodeRoundEnd({ round: 1, pages: 0, final: false }), 5)), /unknown flags/);
    refused(() => m.decodeHello(m.encodeHello({ migrationId: id, channelIndex: 2, channelCount: 2, clientNonce: nonce })), /channel 2 of 2/);
    refused(() => m.decodeHello(m.encodeHello({ migrationId: id, channelIndex: 0, channelCount: 17, clientNonce: nonce })), /17 channels/);
    refused(() => m.decodeComplete(m.encodeComplete({ digests: [] }, new Uint8Array(32)), new Uint8Array(32)), /0 digests/);
    refused(() => m.decodeRoundEnd(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0])), /beyond 2\^53/);
    refused(() => m.checkPreamble(new TextEncoder().encode("GET / HT")), /does not speak pagewire/);
  });
});

describe("page-frame prefixes", () => {
  it("round-trip field by field, in place", () => {
    const buffer = new Uint8Array(64).fill(0xee);
    writePagesPrefix(buffer.subarray(8), { region: 513, round: 2 ** 32 - 1 });
    expect(readPagesPrefix(buffer.subarray(8, 8 + PAGES_PREFIX_BYTES), { region: 0, round: 0 })).toEqual({ region: 513, round: 2 ** 32 - 1 });
    expect(buffer[7]).toBe(0xee); // nothing before the prefix is touched
    const run = { region: 2, round: 7, first: 123456, count: 256 };
    writeRawRunPrefix(buffer, run);
    expect(readRawRunPrefix(buffer.subarray(0, RAW_RUN_PREFIX_BYTES), { region: 0, round: 0, first: 0, count: 0 })).toEqual(run);
    expect(buffer[RAW_RUN_PREFIX_BYTES]).toBe(0xee);
    const bitmap = randomBytes(64, 5);
    expect(decodeSwitchover(encodeSwitchover({ region: 4, bitmap }))).toEqual({ region: 4, bitmap });
  });

  it("refuse reserved bits, a run of no pages and short prefixes", () => {
    const prefix = new Uint8Array(RAW_RUN_PREFIX_BYTES);
    writeRawRunPrefix(prefix, { region: 0, round: 1, first: 0, count: 1 });
    prefix[3] = 0x80;
    refused(() => readRawRunPrefix(prefix, { region: 0, round: 0, first: 0, count: 0 }), /reserved/);
    refused(() => readPagesPrefix(prefix, { region: 0, round: 0 }), /reserved/);
    writeRawRunPrefix(prefix, { region: 0, round: 1, first: 5, count: 0 });
    refused(() => readRawRunPrefix(prefix, { region: 0, round: 0, first: 0, count: 0 }), /0 pages/);
    refused(() => readPagesPrefix(new Uint8Array(7), { region: 0, round: 0 }), /prefix is 7 bytes/);
    const switchover = encodeSwitchover({ region: 0, bitmap: new Uint8Array(64) });
    switchover[2] = 1;
    refused(() => decodeSwitchover(switchover), /reserved/);
  });
});

/** A sink that keeps every frame whole; its begin() sees the prefix of page frames. */
class Collect implements FrameSink {
  readonly frames: Array<{ type: number; bytes: Uint8Array }> = [];
  private current = new Uint8Array(0);
  private prefix = new Uint8Array(0);
  stopAfter = -1;

  begin(_type: number, length: number, prefix: Uint8Array): Uint8Array {
    this.prefix = prefix.slice();
    this.current = new Uint8Array(length - prefix.length);
    return this.current;
  }

  end(type: number): boolean {
    const bytes = new Uint8Array(this.prefix.length + this.current.length);
    bytes.set(this.prefix);
    bytes.set(this.current, this.prefix.length);
    this.frames.push({ type, bytes });
    return this.frames.length !== this.stopAfter;
  }
}

describe("frame reader", () => {
  const limit = (type: number) => (type === FrameType.pages || type === FrameType.rawRun ? 1 << 20 : MAX_CONTROL_PAYLOAD);
  const frames = [
    { type: FrameType.roundEnd, bytes: m.encodeRoundEnd({ round: 1, pages: 3, final: false }) },
    { type: FrameType.pages, bytes: randomBytes(PAGES_PREFIX_BYTES + 5000, 6).map((b, i) => (i === 2 || i === 3 ? 0 : b)) },
    { type: FrameType.complete, bytes: new Uint8Array(0) },
    { type: FrameType.rawRun, bytes: randomBytes(RAW_RUN_PREFIX_BYTES + 8192, 7) },
    { type: FrameType.ack, bytes: m.encodeAck({ round: 2 }) },
  ];
  const stream = Uint8Array.from(frames.flatMap((f) => [...frame(f.type, f.bytes)]));

  it("reassembles frames pushed in chunks of any size", () => {
    for (const chunk of [1, 2, 7, 8, 9, 100, 4096, stream.length]) {
      const sink = new Collect();
      const reader = new FrameReader(sink, limit);
      for (let at = 0; at < stream.length; at += chunk) reader.push(stream.subarray(at, at + chunk));
      expect(sink.frames, `chunks of ${chunk}`).toEqual(frames);
      expect(reader.atBoundary).toBe(true);
      expect(reader.received).toBe(stream.length);
    }
  });

  it("reassembles frames read in place, each read at most what target() asks for", () => {
    for (const most of [1, 3, 13, 1 << 16]) {
      const sink = new Collect();
      const reader = new FrameReader(sink, limit);
      for (let at = 0; at < stream.length; ) {
        const target = reader.target();
        const n = Math.min(target.length, most, stream.length - at);
        target.set(stream.subarray(at, at + n));
        reader.wrote(n);
        at += n;
      }
      expect(sink.frames, `reads of ${most}`).toEqual(frames);
    }
  });

  it("reads headers, prefixes and small frames in place in few reads, and holds what a stopped sink has not taken", () => {
    const sink = new Collect();
    sink.stopAfter = 2;
    const reader = new FrameReader(sink, limit);
    let reads = 0;
    for (let at = 0; at < stream.length; ) {
      if (reader.paused) reader.resume();
      const target = reader.target();
      const n = Math.min(target.length, stream.length - at);
      target.set(stream.subarray(at, at + n));
      reader.wrote(n);
      at += n;
      reads++;
      // What the stopped sink has not taken is held apart from the buffer the next read reuses.
      if (reader.paused) reader.target().fill(0xee);
    }
    if (reader.paused) reader.resume();
    expect(sink.frames).toEqual(frames);
    // Header, prefix and body each a read of its own would be 11; a frame's head and the small
    // frames around it come in one read instead.
    expect(reads).toBeLessThanOrEqual(5);
  });

  it("holds bytes while the sink has stopped, and goes on at resume()", () => {
    const sink = new Collect();
    sink.stopAfter = 2;
    const reader = new FrameReader(sink, limit);
    reader.push(stream);
    expect(sink.frames.length).toBe(2);
    expect(reader.paused).toBe(true);
    reader.resume();
    expect(sink.frames).toEqual(frames);
  });

  it("refuses unknown types, reserved header bits, oversized frames and frames shorter than their prefix", () => {
    const header = (length: number, type: number, flags = 0) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setUint32(0, length, true);
      b[4] = type;
      b[5] = flags;
      return b;
    };
    const read = (bytes: Uint8Array) => new FrameReader(new Collect(), limit).push(bytes);
    refused(() => read(header(0, 0xee)), /unknown frame type 0xee/);
    refused(() => read(header(0, FrameType.ack, 1)), /reserved header bits/);
    refused(() => read(header(MAX_CONTROL_PAYLOAD + 1, FrameType.ack)), /exceeds the limit/);
    refused(() => read(header(4, FrameType.rawRun)), /shorter than its 16-byte header/);
    const cut = new FrameReader(new Collect(), limit);
    cut.push(stream.subarray(0, 20));
    expect(cut.atBoundary).toBe(false);
  });
});

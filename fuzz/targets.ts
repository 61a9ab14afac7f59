// Fuzz targets: every decoder that reads bytes from the wire, fed mutated and random input. A
// target throws FuzzCrash when the decoder misbehaves: an exception that is not its own refusal,
// a status outside its contract, or a write outside the bytes it was given.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Region } from "../src/memory/region.js";
import { Core, DecodeError } from "../src/core/core.js";
import { instantiate } from "../src/runtime/module.js";
import { WireError } from "../src/wire/errors.js";
import { FrameReader, frame } from "../src/wire/frame.js";
import { FrameType, MAX_CONTROL_PAYLOAD } from "../src/wire/constants.js";
import * as m from "../src/wire/messages.js";
import { readPagesPrefix, readRawRunPrefix, decodeSwitchover, encodeSwitchover } from "../src/wire/pages.js";
import { JsonObjects } from "../src/cli/qmp.js";
import { fillPage, PAGE_CLASSES } from "../src/memory/content.js";

export class FuzzCrash extends Error {
  /** The input that crashed, when it is not the one being run (a target that compares in batches). */
  constructor(
    message: string,
    readonly input?: Uint8Array,
  ) {
    super(message);
  }
}

export interface Target {
  /** Valid inputs that mutations start from. */
  seeds(): Uint8Array[];
  run(input: Uint8Array): void;
  /** Checks what run() left pending (a target that compares in batches). */
  finish?(): void;
  /** Why the target cannot run on this machine, if it cannot. */
  unavailable?(): string | undefined;
}

const GUARD = 0xa5;
const PAGE = 4096;

/** Only the decoder's own refusals may escape. */
function refusalsOnly(f: () => void): void {
  try {
    f();
  } catch (error) {
    if (error instanceof WireError || error instanceof DecodeError) return;
    throw new FuzzCrash(`not a refusal: ${(error as Error).stack ?? error}`);
  }
}

/** A region to decode in, with guard bytes around the destination of a raw kernel. */
function scratch() {
  const region = Region.create({ pageCount: 64, batchPages: 64, ioBuffers: 4 });
  const core = new Core(region);
  const wasm = instantiate<{ deltaDecode(src: number, srcLen: number, dst: number, pageLen: number): number }>("core.debug", region.memory);
  const input = region.layout.ioBuffers[0];
  const target = region.layout.ioBuffers[2] + 64;
  return { region, core, wasm, input, target };
}

function guardedKernel(call: (s: ReturnType<typeof scratch>, length: number) => number, check: (status: number) => boolean): Target["run"] {
  const s = scratch();
  return (input) => {
    const bytes = input.subarray(0, PAGE * 2);
    s.region.bytes.set(bytes, s.input);
    s.region.bytes.fill(GUARD, s.target - 64, s.target + PAGE + 64);
    const status = call(s, bytes.length);
    if (!check(status)) throw new FuzzCrash(`status ${status} outside the contract`);
    for (let i = s.target - 64; i < s.target; i++) if (s.region.bytes[i] !== GUARD) throw new FuzzCrash("wrote before the target");
    for (let i = s.target + PAGE; i < s.target + PAGE + 64; i++) if (s.region.bytes[i] !== GUARD) throw new FuzzCrash("wrote past the target");
  };
}

function pages(): Uint8Array[] {
  return PAGE_CLASSES.map((kind) => {
    const page = new Uint8Array(PAGE);
    fillPage(page, kind, 7);
    return page;
  });
}

/** Our LZ4 blocks of every kind of page: the seeds of both LZ4 targets. */
function lz4Blocks(): Uint8Array[] {
  const { core, region } = scratch();
  return pages().map((page) => {
    region.bytes.set(page, region.layout.guest);
    const n = core.compressBlock(region.layout.guest, PAGE, region.layout.ioBuffers[1], PAGE + 64);
    return region.bytes.slice(region.layout.ioBuffers[1], region.layout.ioBuffers[1] + n);
  });
}

// Beside this file in the repository; two levels up from its build in dist/fuzz/.
const ORACLE = [new URL("./liblz4-oracle.py", import.meta.url), new URL("../../fuzz/liblz4-oracle.py", import.meta.url)].map((u) => fileURLToPath(u)).find((path) => existsSync(path)) ?? "fuzz/liblz4-oracle.py";
const ORACLE_BATCH = 1000;

/** Whether a block's sequences, read as far as they go, include a match at offset 0. */
function usesOffsetZero(block: Uint8Array): boolean {
  const length = (at: number, base: number): [number, number] => {
    let n = base;
    if (base === 15) for (let byte = 255; byte === 255 && at < block.length; n += byte) byte = block[at++];
    return [at, n];
  };
  let ip = 0;
  while (ip < block.length) {
    const token = block[ip++];
    let literals: number;
    [ip, literals] = length(ip, token >> 4);
    ip += literals;
    if (ip + 2 > block.length) return false;
    if ((block[ip] | (block[ip + 1] << 8)) === 0) return true;
    [ip] = length(ip + 2, token & 15);
  }
  return false;
}

/**
 * Our decoder against liblz4's LZ4_decompress_safe, block by block, with the same output capacity
 * (a page). liblz4 runs in a Python process (ctypes) once per batch of blocks. Where they may
 * differ, by design: liblz4 copies a match at offset 0 (from bytes not yet written: the output
 * is whatever the buffer held) where we refuse it; and liblz4 judges the end-of-block rules
 * against the capacity, not the block's real end, so a block shorter than a page that breaks them
 * may pass there (a page record must decode to a whole page, so we refuse those anyway). Anything
 * liblz4 refuses, we must refuse; anything both decode must be the same bytes; a whole page that
 * liblz4 decodes, we must decode the same.
 */
function differentialLz4(): Target {
  const s = scratch();
  const pending: Array<{ input: Uint8Array; status: number; output: Uint8Array }> = [];
  const compare = () => {
    if (pending.length === 0) return;
    const stdin = Buffer.concat(pending.flatMap(({ input }) => [Buffer.from(Uint32Array.of(input.length).buffer), Buffer.from(input)]));
    const result = spawnSync("python3", [ORACLE, String(PAGE)], { input: stdin, maxBuffer: 1 << 28 });
    if (result.status !== 0) throw new Error(`the liblz4 oracle failed: ${result.stderr}`);
    const out = result.stdout;
    let at = 0;
    for (const { input, status, output } of pending.splice(0)) {
      const theirs = out.readInt32LE(at);
      at += 4;
      const decoded = theirs > 0 ? out.subarray(at, at + theirs) : Buffer.alloc(0);
      at += decoded.length;
      const same = status === theirs && Buffer.from(output).equals(decoded);
      const problem =
        theirs < 0 && status >= 0 ? `liblz4 refuses (${theirs}) a block we decode to ${status} bytes`
        : theirs >= 0 && status >= 0 && !same ? `liblz4 and we decode a block to different bytes (${theirs} and ${status})`
        : theirs === PAGE && !same && !usesOffsetZero(input) ? `liblz4 decodes a whole page that we refuse (${status})`
        : undefined;
      if (problem) throw new FuzzCrash(`${problem}, ${input.length} bytes in`, input);
    }
  };
  return {
    seeds: lz4Blocks,
    unavailable() {
      const probe = spawnSync("python3", ["-c", "import ctypes; ctypes.CDLL('liblz4.so.1')"]);
      return probe.status === 0 ? undefined : "needs python3 and liblz4 (liblz4.so.1): apt-get install liblz4-1 python3";
    },
    run(input) {
      const bytes = input.subarray(0, PAGE * 2);
      s.region.bytes.set(bytes, s.input);
      const status = s.core.decompressBlock(s.input, bytes.length, s.target, PAGE);
      pending.push({ input: bytes.slice(), status, output: status > 0 ? s.region.bytes.slice(s.target, s.target + status) : new Uint8Array(0) });
      if (pending.length >= ORACLE_BATCH) compare();
    },
    finish: compare,
  };
}

export const TARGETS: Record<string, Target> = {
  lz4: {
    seeds: lz4Blocks,
    run: guardedKernel((s, length) => s.core.decompressBlock(s.input, length, s.target, PAGE), (status) => status >= -3 && status <= PAGE),
  },
  "lz4-liblz4": differentialLz4(),
  delta: {
    seeds: () => [Uint8Array.of(5, 3, 1, 2, 3), Uint8Array.of(0, 1, 9, 200, 31, 4, 1, 2, 3, 4)],
    run: guardedKernel((s, length) => s.wasm.deltaDecode(s.input, length, s.target, PAGE), (status) => status >= -3 && status <= 0),
  },
  batch: {
    seeds() {
      const { core, region } = scratch();
      for (const [i, page] of pages().entries()) region.bytes.set(page, region.pageAddress(i));
      core.setEncoding({ lz4: true });
      core.list.set([0, 1, 2, 3, 4]);
      const out = region.layout.ioBuffers[1];
      return [region.bytes.slice(out, out + core.encode(5, out))];
    },
    run: (() => {
      const { core, region, input } = scratch();
      return (bytes: Uint8Array) => {
        const data = bytes.subarray(0, region.layout.ioBufferBytes - 128);
        region.bytes.set(data, input);
        refusalsOnly(() => void core.decode(input, data.length));
      };
    })(),
  },
  frames: {
    seeds: () => [Uint8Array.from([...frame(FrameType.roundEnd, m.encodeRoundEnd({ round: 1, pages: 2, final: false })), ...frame(FrameType.ack, m.encodeAck({ round: 3 })), ...frame(FrameType.pages, new Uint8Array(40))])],
    run(input) {
      const reader = new FrameReader({ begin: (_t, length, prefix) => new Uint8Array(length - prefix.length), end: () => true }, (type) => (type === FrameType.pages || type === FrameType.rawRun ? 1 << 16 : MAX_CONTROL_PAYLOAD));
      refusalsOnly(() => {
        for (let at = 0; at < input.length; at += 7) reader.push(input.subarray(at, at + 7));
      });
    },
  },
  messages: {
    seeds: () => [
      m.encodeHello({ migrationId: new Uint8Array(16), channelIndex: 0, channelCount: 2, clientNonce: new Uint8Array(32) }),
      m.encodeOffer({ pageSize: 4096, encodings: 1, batchPages: 256, regions: [1024, 8] }),
      m.encodeRoundEnd({ round: 4, pages: 100, final: true }),
      m.encodeDeviceStatePiece({ offset: 0, total: 3, bytes: Uint8Array.of(1, 2, 3) }),
      m.encodeComplete({ digests: [1n, 2n] }, new Uint8Array(32)),
      m.encodePageRequest({ region: 0, page: 5, count: 2 }),
      m.encodeFailure({ reason: "busy", message: "later" }),
      m.encodePreamble(),
    ],
    run(input) {
      const key = new Uint8Array(32);
      const decoders: Array<(b: Uint8Array) => unknown> = [
        m.checkPreamble, m.decodeHello, m.decodeOffer, (b) => m.decodeAuth(b, true), m.decodeRoundEnd, m.decodeDeviceStatePiece,
        (b) => m.decodeComplete(b, key), m.decodeAck, (b) => m.decodeDone(b, key, key), m.decodePageRequest, (b) => m.decodeFailure(b, "fuzz"),
      ];
      for (const decode of decoders) refusalsOnly(() => void decode(input));
    },
  },
  pages: {
    seeds: () => [new Uint8Array(16), encodeSwitchover({ region: 1, bitmap: new Uint8Array(64) })],
    run(input) {
      refusalsOnly(() => void readPagesPrefix(input, { region: 0, round: 0 }));
      refusalsOnly(() => void readRawRunPrefix(input, { region: 0, round: 0, first: 0, count: 0 }));
      refusalsOnly(() => void decodeSwitchover(input));
    },
  },
  qmp: {
    seeds: () => [new TextEncoder().encode('{"execute":"migrate","arguments":{"uri":"tcp:[::1]:1"},"id":"a\\"}"}')],
    run(input) {
      const parser = new JsonObjects();
      try {
        for (const text of parser.push(new TextDecoder().decode(input))) JSON.parse(text);
      } catch (error) {
        if (!(error instanceof SyntaxError) && !/over 1 MiB/.test((error as Error).message)) throw new FuzzCrash(String(error));
      }
    },
  },
};

/** A deterministic mutator: bit flips, byte sets, inserts, deletes, truncation, splices, or random bytes. */
export function mutator(seed: number) {
  let x = seed | 1;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return (base: Uint8Array, others: Uint8Array[]): Uint8Array => {
    let out = base.slice();
    const edits = 1 + (rand() % 4);
    for (let e = 0; e < edits; e++) {
      const at = out.length ? rand() % out.length : 0;
      switch (rand() % 7) {
        case 0: if (out.length) out[at] ^= 1 << (rand() % 8); break;
        case 1: if (out.length) out[at] = [0, 0xff, 0x7f, 0x80, 1][rand() % 5]; break;
        case 2: out = Uint8Array.from([...out.subarray(0, at), rand() & 0xff, ...out.subarray(at)]); break;
        case 3: out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1 + (rand() % 8))]); break;
        case 4: out = out.subarray(0, at); break;
        case 5: { const other = others[rand() % others.length]; out = Uint8Array.from([...out.subarray(0, at), ...other.subarray(rand() % Math.max(1, other.length))]); break; }
        default: out = Uint8Array.from({ length: rand() % 512 }, () => rand() & 0xff);
      }
    }
    return out;
  };
}

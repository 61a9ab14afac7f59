// Shared test fixtures: a small region and a bump allocator over its I/O buffers, for calling
// core functions on arbitrary bytes, and the debug build of the core, which also exports the
// kernels tests call alone and the ABI's constants.
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import type { CoreExports } from "../src/abi/abi.js";
import { instantiate } from "../src/runtime/module.js";
import { fillPage, PAGE_CLASSES, type PageClass } from "../src/memory/content.js";

export const GUARD = 0xa5;

/** The debug build's exports: the release core's, the test-only kernels, and every ABI constant as a global. */
export interface DebugExports extends CoreExports {
  bitmapClearRange(bm: number, first: number, count: number): void;
  xxh3(p: number, len: number, secret: number): bigint;
  deltaEncode(old: number, page: number, len: number, dst: number, dstCap: number): number;
  deltaDecode(src: number, srcLen: number, dst: number, pageLen: number): number;
  [constant: string]: unknown;
}

/** An instance of build/core.debug.wasm on `memory`. */
export function debugCore(memory: WebAssembly.Memory): DebugExports {
  return instantiate<DebugExports>("core.debug", memory);
}

export class Arena {
  readonly region: Region;
  readonly core: Core;
  /** The debug core on the same memory, for kernels called alone. */
  readonly wasm: DebugExports;
  private at: number;
  private readonly end: number;

  constructor(bytes = 8 << 20) {
    const batchPages = 256;
    const ioBuffers = Math.ceil(bytes / (batchPages * 4104)) + 1;
    this.region = Region.create({ pageCount: 64, batchPages, ioBuffers });
    this.core = new Core(this.region);
    this.wasm = debugCore(this.region.memory);
    this.at = this.region.layout.ioBuffers[0];
    this.end = this.at + ioBuffers * this.region.layout.ioBufferBytes - 1024;
  }

  get bytes(): Uint8Array {
    return this.region.bytes;
  }

  /** Room for `length` bytes (16-aligned), surrounded by `guard` guard bytes on each side. */
  alloc(length: number, guard = 64): number {
    const start = Math.ceil(this.at / 16) * 16;
    const address = start + guard;
    this.at = address + length + guard;
    if (this.at > this.end) throw new Error("arena exhausted");
    this.bytes.fill(GUARD, start, this.at);
    return address;
  }

  put(data: Uint8Array, guard = 64): number {
    const address = this.alloc(data.length, guard);
    this.bytes.set(data, address);
    return address;
  }

  read(address: number, length: number): Uint8Array {
    return this.bytes.slice(address, address + length);
  }

  guardsIntact(address: number, length: number, guard = 64): boolean {
    for (let i = address - guard; i < address; i++) if (this.bytes[i] !== GUARD) return false;
    for (let i = address + length; i < address + length + guard; i++) if (this.bytes[i] !== GUARD) return false;
    return true;
  }

  reset(): void {
    this.at = this.region.layout.ioBuffers[0];
  }

  /** Our LZ4 block of `input` (≤ 64 KiB), or undefined when it does not shrink below `cap`. */
  compress(input: Uint8Array, cap = input.length + (input.length >> 8) + 32): Uint8Array | undefined {
    const src = this.put(input);
    const dst = this.alloc(cap);
    const n = this.core.compressBlock(src, input.length, dst, cap);
    const out = n === 0 ? undefined : this.read(dst, n);
    this.reset();
    return out;
  }

  /** Decodes an LZ4 block into `capacity` bytes: [status, output, guards intact]. */
  decompress(block: Uint8Array, capacity: number): [number, Uint8Array, boolean] {
    const src = this.put(block);
    const dst = this.alloc(capacity);
    const status = this.core.decompressBlock(src, block.length, dst, capacity);
    const result: [number, Uint8Array, boolean] = [status, this.read(dst, Math.max(status, 0)), this.guardsIntact(dst, capacity) && this.guardsIntact(src, block.length)];
    this.reset();
    return result;
  }
}

/** A deterministic byte source for tests. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** One page of each corpus class (and zero), `count` variants each. */
export function corpus(pageSize = 4096, count = 4): Array<[PageClass, Uint8Array]> {
  const pages: Array<[PageClass, Uint8Array]> = [];
  for (const kind of [...PAGE_CLASSES, "zero" as const]) {
    for (let i = 0; i < count; i++) {
      const page = new Uint8Array(pageSize);
      fillPage(page, kind, i * 7919 + 3);
      pages.push([kind, page]);
    }
  }
  return pages;
}

/** lz4-wasm frames a block with its uncompressed length as 4 little-endian bytes. */
export function withLengthPrefix(block: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(block.length + 4);
  new DataView(out.buffer).setUint32(0, length, true);
  out.set(block, 4);
  return out;
}

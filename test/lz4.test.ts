import { describe, it, expect } from "vitest";
import * as reference from "lz4-wasm-nodejs";
import { Arena, corpus, randomBytes, withLengthPrefix } from "./helpers.js";
import { fillPage, PAGE_CLASSES } from "../src/memory/content.js";

const arena = new Arena();

/** Inputs of every class at every interesting length, including the format's edge lengths. */
function inputs(): Array<[string, Uint8Array]> {
  const out: Array<[string, Uint8Array]> = [];
  const lengths = [0, 1, 4, 5, 11, 12, 13, 14, 15, 16, 17, 31, 64, 255, 256, 270, 511, 1000, 4095, 4096, 8192, 65536];
  for (const kind of [...PAGE_CLASSES, "zero" as const]) {
    const big = new Uint8Array(65536);
    for (let p = 0; p < 16; p++) fillPage(big.subarray(p * 4096, (p + 1) * 4096), kind, p);
    for (const length of lengths) out.push([`${kind}/${length}`, big.slice(0, length)]);
  }
  // Runs that exercise overlapping matches of every short period and long length fields.
  for (const period of [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31]) {
    const page = new Uint8Array(4096);
    const pattern = randomBytes(period, period);
    for (let i = 0; i < page.length; i++) page[i] = pattern[i % period];
    page.set(randomBytes(40, 99), 100);
    out.push([`period ${period}`, page]);
  }
  return out;
}

describe("LZ4 page codec", () => {
  it("round-trips every class and length", () => {
    for (const [name, input] of inputs()) {
      const block = arena.compress(input)!;
      expect(block, name).toBeDefined();
      const [status, output, guards] = arena.decompress(block, input.length);
      expect(status, name).toBe(input.length);
      expect(Buffer.compare(Buffer.from(output), Buffer.from(input)), name).toBe(0);
      expect(guards, name).toBe(true);
    }
  });

  it("produces blocks lz4-wasm decodes, and decodes blocks lz4-wasm produces", () => {
    for (const [name, input] of inputs()) {
      const ours = arena.compress(input)!;
      const decodedByReference = reference.decompress(withLengthPrefix(ours, input.length));
      expect(Buffer.compare(Buffer.from(decodedByReference), Buffer.from(input)), `ours→lz4-wasm ${name}`).toBe(0);

      const theirs = reference.compress(input).subarray(4);
      const [status, output] = arena.decompress(theirs, input.length);
      expect(status, `lz4-wasm→ours ${name}`).toBe(input.length);
      expect(Buffer.compare(Buffer.from(output), Buffer.from(input)), `lz4-wasm→ours ${name}`).toBe(0);
    }
  });

  it("compresses each class within 3% of lz4-wasm's ratio", () => {
    const pages = corpus(4096, 32);
    for (const kind of [...PAGE_CLASSES, "zero"]) {
      let ourBytes = 0;
      let theirBytes = 0;
      for (const [k, page] of pages) {
        if (k !== kind) continue;
        ourBytes += arena.compress(page)!.length;
        theirBytes += reference.compress(page).length - 4;
      }
      expect(ourBytes / theirBytes, kind).toBeLessThanOrEqual(1.03);
    }
  });

  it("returns 0 when the block would not fit the bound, so the page goes raw", () => {
    const random = randomBytes(4096, 7);
    expect(arena.compress(random, 4095)).toBeUndefined();
    const text = new Uint8Array(4096);
    fillPage(text, "text", 1);
    const block = arena.compress(text)!;
    expect(arena.compress(text, block.length - 1)).toBeUndefined();
    expect(arena.compress(text, block.length)).toEqual(block);
  });
});

describe("LZ4 decoder on hostile input", () => {
  it("refuses truncation, bad offsets and overlong output with an error code", () => {
    const text = new Uint8Array(4096);
    fillPage(text, "text", 5);
    const block = arena.compress(text)!;
    for (let cut = 0; cut < block.length; cut++) {
      const [status, , guards] = arena.decompress(block.subarray(0, cut), 4096);
      expect(status < 0 || status < 4096, `cut ${cut}: ${status}`).toBe(true);
      expect(guards).toBe(true);
    }
    // A match before the start of the output: literal "a", then offset 2 (then the last literals).
    const last = [0x50, 0x76, 0x77, 0x78, 0x79, 0x7a];
    expect(arena.decompress(Uint8Array.of(0x10, 0x61, 0x02, 0x00, ...last), 64)[0]).toBe(-3);
    // Offset zero.
    expect(arena.decompress(Uint8Array.of(0x10, 0x61, 0x00, 0x00, ...last), 64)[0]).toBe(-3);
    // A valid block into too small a target.
    expect(arena.decompress(block, 4095)[0]).toBe(-2);
    // A literal length past the end of the input.
    expect(arena.decompress(Uint8Array.of(0xf0, 0xff, 0xff, 0x10), 65536)[0]).toBe(-1);
    expect(arena.decompress(new Uint8Array(0), 64)[0]).toBe(-1);
  });

  it("enforces the end-of-block rules as liblz4 does", () => {
    const abcd = [0x61, 0x62, 0x63, 0x64];
    const vwxyz = [0x76, 0x77, 0x78, 0x79, 0x7a];
    // 4 literals, a match of 8 ending 5 bytes short of the end, then 5 literals: valid.
    const valid = Uint8Array.of(0x44, ...abcd, 0x04, 0x00, 0x50, ...vwxyz);
    const [status, output] = arena.decompress(valid, 17);
    expect(status).toBe(17);
    expect(new TextDecoder().decode(output)).toBe("abcdabcdabcdvwxyz");
    // The same into 16 bytes: the match would write into the last 5.
    expect(arena.decompress(Uint8Array.of(0x44, ...abcd, 0x04, 0x00, 0x50, ...vwxyz), 16)[0]).toBe(-2);
    // Literals ending within 12 bytes of the end that are not the last sequence.
    expect(arena.decompress(Uint8Array.of(0x50, ...vwxyz, 0x01, 0x00, 0x50, ...vwxyz), 16)[0]).toBe(-2);
    // A block that ends with a match, not literals.
    expect(arena.decompress(Uint8Array.of(0x44, ...abcd, 0x04, 0x00), 64)[0]).toBe(-1);
    // Literals that leave too few bytes for another sequence, and are not the last.
    expect(arena.decompress(Uint8Array.of(0x10, 0x61, 0x01, 0x00, 0x10, 0x62), 64)[0]).toBe(-1);
  });

  it("never writes outside the target, whatever the bytes (random and mutated blocks)", () => {
    const pages = corpus(4096, 2).map(([, page]) => arena.compress(page)!);
    let x = 0x2545f491;
    const rand = () => {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      return x >>> 0;
    };
    for (let trial = 0; trial < 3000; trial++) {
      let input: Uint8Array;
      if (trial % 3 === 0) {
        input = randomBytes(1 + (rand() % 600), rand());
      } else {
        input = pages[rand() % pages.length].slice();
        for (let m = 1 + (rand() % 4); m > 0; m--) input[rand() % input.length] = rand() & 0xff;
      }
      const capacity = [16, 100, 4096][rand() % 3];
      const [status, , guards] = arena.decompress(input, capacity);
      expect(status).toBeGreaterThanOrEqual(-3);
      expect(status).toBeLessThanOrEqual(capacity);
      expect(guards, `trial ${trial}`).toBe(true);
    }
  });
});

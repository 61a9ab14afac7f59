import { describe, it, expect } from "vitest";
import { Arena, randomBytes } from "./helpers.js";
import { fillPage } from "../src/memory/content.js";

const arena = new Arena();
const PAGE = 4096;

/** Encodes page against old; returns the status and the delta bytes. */
function encode(old: Uint8Array, page: Uint8Array, cap = page.length): [number, Uint8Array] {
  const o = arena.put(old);
  const p = arena.put(page);
  const dst = arena.alloc(cap + 16);
  const status = arena.wasm.deltaEncode(o, p, page.length, dst, cap);
  const out = arena.read(dst, Math.max(status, 0));
  arena.reset();
  return [status, out];
}

/** Applies a delta onto a copy of `old`: [status, result, guards intact]. */
function apply(old: Uint8Array, delta: Uint8Array): [number, Uint8Array, boolean] {
  const src = arena.put(delta);
  const page = arena.put(old);
  const status = arena.wasm.deltaDecode(src, delta.length, page, old.length);
  const result: [number, Uint8Array, boolean] = [status, arena.read(page, old.length), arena.guardsIntact(page, old.length)];
  arena.reset();
  return result;
}

describe("XBZRLE delta codec", () => {
  it("round-trips edits of every shape: single bytes, words, runs, head and tail, alternating", () => {
    const base = new Uint8Array(PAGE);
    fillPage(base, "float64-field", 1);
    const edits: Array<(p: Uint8Array) => void> = [
      (p) => (p[0] ^= 1),
      (p) => (p[PAGE - 1] ^= 1),
      (p) => p.set(randomBytes(8, 3), 800),
      (p) => p.set(randomBytes(13, 3), 801),
      (p) => { for (let i = 0; i < PAGE; i += 64) p[i] ^= 0x80; },
      (p) => { for (let i = 0; i < PAGE; i += 9) p[i] ^= 0x80; },
      (p) => p.set(randomBytes(1000, 4), 2000),
      (p) => { const f = new Float64Array(p.buffer, p.byteOffset, PAGE / 8); for (let i = 0; i < f.length; i += 3) f[i] += 1e-9; },
    ];
    for (const [i, edit] of edits.entries()) {
      const page = base.slice();
      edit(page);
      const [status, delta] = encode(base, page);
      expect(status, `edit ${i}`).toBeGreaterThan(0);
      const [result, applied, guards] = apply(base, delta);
      expect(result, `edit ${i}`).toBe(0);
      expect(Buffer.compare(Buffer.from(applied), Buffer.from(page)), `edit ${i}`).toBe(0);
      expect(guards).toBe(true);
    }
  });

  it("says unchanged for an identical page and overflow when the delta exceeds the bound", () => {
    const base = randomBytes(PAGE, 1);
    expect(encode(base, base.slice())[0]).toBe(0);
    expect(encode(base, randomBytes(PAGE, 2), PAGE - PAGE / 8)[0]).toBe(-1);
    const page = base.slice();
    page[100] ^= 1;
    const [status, delta] = encode(base, page);
    expect(status).toBe(3); // unchanged run 100, changed run 1, one byte
    expect([...delta]).toEqual([100, 1, page[100]]);
  });

  it("refuses malformed deltas without writing outside the page", () => {
    const base = randomBytes(PAGE, 9);
    expect(apply(base, Uint8Array.of(0x80))[0]).toBe(-1); // ULEB128 cut short
    expect(apply(base, Uint8Array.of(5))[0]).toBe(-1); // no changed run length
    expect(apply(base, Uint8Array.of(5, 0))[0]).toBe(-2); // empty changed run
    expect(apply(base, Uint8Array.of(0x80, 0x80, 0x80, 0x01, 1, 0))[0]).toBe(-2); // over-long length
    expect(apply(base, Uint8Array.of(0xff, 0x1f, 2, 1, 2))[0]).toBe(-3); // 4095 + 2 > page
    expect(apply(base, Uint8Array.of(0, 10, 1, 2))[0]).toBe(-1); // payload short
    for (let trial = 0; trial < 2000; trial++) {
      const [status, , guards] = apply(base, randomBytes(1 + (trial % 300), trial + 1));
      expect(status).toBeGreaterThanOrEqual(-3);
      expect(status).toBeLessThanOrEqual(0);
      expect(guards).toBe(true);
    }
  });
});

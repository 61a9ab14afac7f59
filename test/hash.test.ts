import { describe, it, expect } from "vitest";
import { xxhash64 } from "hash-wasm";
import { Arena, randomBytes } from "./helpers.js";

const arena = new Arena();

function ours(data: Uint8Array, seed = 0n): bigint {
  const at = arena.put(data);
  const h = arena.wasm.xxh64(at, data.length, seed);
  arena.reset();
  return BigInt.asUintN(64, h);
}

describe("xxh64", () => {
  it("matches the published known answers", () => {
    expect(ours(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    expect(ours(new TextEncoder().encode("abc"))).toBe(0x44bc2cf5ad770999n);
  });

  it("matches hash-wasm's XXH64 across lengths 0..300, page sizes and seeds", async () => {
    const lengths = [...Array.from({ length: 301 }, (_, i) => i), 511, 512, 513, 4095, 4096, 4097, 65536];
    for (const length of lengths) {
      const data = randomBytes(length, length + 17);
      for (const seed of [0, 1, 0x7fffffff]) {
        expect(ours(data, BigInt(seed)).toString(16).padStart(16, "0"), `length ${length} seed ${seed}`).toBe(await xxhash64(data, seed, 0));
      }
    }
  });

  it("hands out digests as unsigned 64-bit values, as the wire carries them", () => {
    const { region, core } = arena;
    let found = false;
    for (let seed = 0; seed < 64 && !found; seed++) {
      region.pages(0).set(randomBytes(region.pageSize, seed + 1000));
      const h = core.hashPages(0, 1);
      expect(h).toBeGreaterThanOrEqual(0n);
      expect(h).toBeLessThan(1n << 64n);
      found = h >= 1n << 63n;
    }
    expect(found).toBe(true);
  });

  it("hashes every page of a list in one call", () => {
    const { region, core, wasm } = arena;
    for (let p = 0; p < 8; p++) region.pages(p).set(randomBytes(region.pageSize, p + 1));
    for (let i = 0; i < 8; i++) core.list[i] = 7 - i;
    wasm.hashPages(region.layout.guest, region.layout.pageShift, core.lane.list, 8, core.lane.hashes);
    const hashes = new BigUint64Array(region.memory.buffer, core.lane.hashes, 8);
    for (let i = 0; i < 8; i++) expect(hashes[i]).toBe(ours(region.pages(7 - i)));
  });
});

import { describe, it, expect } from "vitest";
import { xxhash64, xxhash3 } from "hash-wasm";
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

  it("sums page hashes seeded with the page index, from a list or a range alike", () => {
    const { region, core } = arena;
    for (let p = 0; p < 8; p++) region.pages(p).set(randomBytes(region.pageSize, p + 1));
    for (let i = 0; i < 8; i++) core.list[i] = 7 - i;
    let want = 0n;
    for (let p = 0; p < 8; p++) want += ours(region.pages(p).slice(), BigInt(p));
    expect(core.sumListed(8)).toBe(BigInt.asUintN(64, want));
    expect(core.sumRange(0, 8)).toBe(BigInt.asUintN(64, want));
  });
});

describe("XXH3-64 and the region digest", () => {
  const { region, core } = arena;
  const lengths = [241, 255, 256, 257, 511, 512, 1023, 1024, 1025, 1087, 1088, 2048, 4095, 4096, 4097, 16384, 16385, 65536 * 3 + 17];

  it("matches hash-wasm's XXH3-64 across block and stripe boundaries", async () => {
    for (const length of lengths) {
      const data = randomBytes(length, length * 7 + 1);
      const at = arena.put(data);
      const ours = BigInt.asUintN(64, arena.wasm.xxh3(at, length, region.layout.hashSecret));
      arena.reset();
      expect(ours.toString(16).padStart(16, "0"), `length ${length}`).toBe(await xxhash3(data));
    }
  });

  it("digests a region as the sum of a term per 16 KiB group, avalanche((XXH3(group) ^ XXH3(zeros)) * (2g + 1)), unsigned", async () => {
    const { Region } = await import("../src/memory/region.js");
    const { Core } = await import("../src/core/core.js");
    const M = (1n << 64n) - 1n;
    const avalanche = (h: bigint) => {
      h ^= h >> 33n;
      h = (h * 0xc2b2ae3d27d4eb4fn) & M;
      h ^= h >> 29n;
      h = (h * 0x165667b19e3779f9n) & M;
      return h ^ (h >> 32n);
    };
    const xxh3 = async (bytes: Uint8Array) => BigInt("0x" + (await xxhash3(bytes)));
    for (const pageSize of [512, 4096, 65536]) {
      // Two full chunks and a short one, whose last group is short too.
      const region = Region.create({ pageSize, pageCount: (2 ** 20 / pageSize) * 2 + 3 });
      const core = new Core(region);
      expect(core.digest(), `a zero region of ${pageSize}-byte pages`).toBe(0n);
      region.pages(0, region.pageCount).set(randomBytes(region.pageCount * pageSize, pageSize));
      for (let p = 1; p < region.pageCount; p += 3) region.pages(p).fill(0);
      const groupPages = Math.max(1, 16384 / pageSize);
      let want = 0n;
      for (let g = 0; g * groupPages < region.pageCount; g++) {
        const n = Math.min(groupPages, region.pageCount - g * groupPages);
        const bytes = region.pages(g * groupPages, n);
        const zero = await xxh3(new Uint8Array(bytes.length));
        want = (want + avalanche((((await xxh3(bytes)) ^ zero) * BigInt(2 * g + 1)) & M)) & M;
      }
      const digest = core.digest();
      expect(digest, `page size ${pageSize}`).toBe(want);
      // Two groups trading places change it.
      const a = region.pages(0, groupPages).slice();
      region.pages(0, groupPages).set(region.pages(groupPages, groupPages));
      region.pages(groupPages, groupPages).set(a);
      expect(core.digest()).not.toBe(digest);
    }
  });
});

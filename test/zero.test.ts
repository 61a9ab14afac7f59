import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";

describe("zero-page classification", () => {
  it("finds a single set byte anywhere in a page, at every page size", () => {
    for (const pageSize of [512, 4096, 65536]) {
      const region = Region.create({ pageSize, pageCount: 64, batchPages: 64 });
      const core = new Core(region);
      const positions = [0, 1, 15, 16, 63, 64, 127, 128, pageSize / 2, pageSize - 129, pageSize - 128, pageSize - 2, pageSize - 1];
      const nonZero = new Set<number>();
      positions.forEach((at, i) => {
        const page = i * 3 + 1;
        region.pages(page)[at] = 1 << (i % 8);
        nonZero.add(page);
      });
      for (let i = 0; i < 64; i++) core.list[i] = 63 - i;
      const { guest, pageShift } = region.layout;
      const flags = new Uint8Array(region.memory.buffer, core.lane.flags, 64);
      const zeros = core.wasm.zeroClassify(guest, pageShift, core.lane.list, 64, core.lane.flags);
      expect(zeros).toBe(64 - nonZero.size);
      for (let i = 0; i < 64; i++) expect(flags[i], `page ${63 - i} of ${pageSize}`).toBe(nonZero.has(63 - i) ? 0 : 1);
      expect(core.wasm.zeroCountRange(guest, pageShift, 0, 64)).toBe(64 - nonZero.size);
    }
  });
});

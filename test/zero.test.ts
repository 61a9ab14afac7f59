import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";

describe("zero-page detection", () => {
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
      for (let page = 0; page < 64; page++) expect(core.countZeroPages(page, 1), `page ${page} of ${pageSize}`).toBe(nonZero.has(page) ? 0 : 1);
      expect(core.countZeroPages()).toBe(64 - nonZero.size);
      core.zeroGuest();
      expect(core.countZeroPages()).toBe(64);
    }
  });
});

import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Migrations run real processes over loopback: a hang must fail, not stall CI.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // Files run one at a time: timing-sensitive tests (bandwidth caps) on a 2-core machine.
    fileParallelism: false,
  },
});

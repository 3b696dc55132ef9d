import { defineConfig } from "vitest/config";

// Two projects: "unit" needs nothing; "lab" needs the lab hosts up (npm run lab:up).
// Lab tests share three hosts, so they run one file at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          setupFiles: ["test/unit/setup-state-dir.ts"],
        },
      },
      {
        test: {
          name: "lab",
          include: [
            "test/e2e/**/*.test.ts",
            "test/cases/**/*.test.ts",
            "test/lab/**/*.test.ts",
            "test/faults/**/*.test.ts",
          ],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

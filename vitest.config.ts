import { defineConfig } from 'vitest/config';

// Three projects so the fast, pure tests can run alone (`npm run test:unit`)
// while the README's test command runs all of them against real services.
export default defineConfig({
  test: {
    // One test file at a time across all projects: the end-to-end files share
    // two clusters and a 2-core machine, and timing-sensitive tests (crashes,
    // gates) must not compete with each other for CPU.
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config';

/**
 * Four tiers, each with its own script (`npm test` runs them in this order):
 * - unit: pure code and use cases over in-memory fakes of their ports; no image decoding, no servers.
 * - infra: the CDK stack (Template assertions, cdk-nag).
 * - integration: the image core on real files (sharp), and adapters against the local servers
 *   started in the test process.
 * - e2e: the running local stack over HTTP.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'infra',
          include: ['test/infra/**/*.test.ts'],
          // Synthesizing bundles both Lambdas with esbuild (and installs sharp for linux-arm64).
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Two cores: sharp already uses both, and the servers' tests time their retries.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'client',
          // The client library, the CLI and the web uploader (real Chromium) against the local stack.
          include: ['test/client/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});

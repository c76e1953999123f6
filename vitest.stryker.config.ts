import { defineConfig } from 'vitest/config';

/**
 * The tests `npm run mutate` runs against each mutant: the unit tier and the status-move tests
 * against an in-process DynamoDB-compatible server (the conditions are only checked by a real one).
 */
export default defineConfig({
  test: {
    include: [
      'test/unit/**/*.test.ts',
      'test/integration/records/status-moves.test.ts',
      'test/integration/records/dynamo-image-records.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

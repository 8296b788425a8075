import { defineConfig } from 'vitest/config'

// The tests Stryker runs against each mutant (`npm run test:mutation`, docs/testing.md). Only tests
// that exercise the mutated source in this process can kill a mutant: tests that spawn the built CLI
// or Go run code Stryker never mutates, and the slow end-to-end files cover no core check that a
// faster in-process test does not, so they stay with `npm test`.
export default defineConfig({
  test: {
    include: [
      'test/tlog/**/*.test.ts',
      'test/ucan/**/*.test.ts',
      'test/witness/**/*.test.ts',
      'test/log/**/*.test.ts',
      'test/auditor/**/*.test.ts',
      'test/e2e/append.test.ts',
      'test/e2e/security-*.test.ts',
      'test/e2e/witness-service.test.ts',
    ],
    exclude: ['test/witness/cli.test.ts', 'test/e2e/security-rate-limit.test.ts', 'test/e2e/security-disk.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

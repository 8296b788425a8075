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
    exclude: [
      'test/witness/cli.test.ts', // spawns the built CLI
      'test/auditor/cli-process.test.ts', // spawns the built CLI (test/auditor/cli.test.ts is in-process)
      'test/e2e/security-proof-graph.test.ts', // spawns the built CLI (test/ucan/proof-graph.test.ts is in-process)
      'test/e2e/security-replay-crash.test.ts', // spawns the built CLI
      'test/e2e/security-rate-limit.test.ts', // rate limits: not in the mutated core
      'test/e2e/security-disk.test.ts', // disk budget: not in the mutated core
    ],
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

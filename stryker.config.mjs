// Mutation testing of the security core: `npm run test:mutation` runs Stryker once per group of
// mutation-groups.mjs (docs/testing.md). Incremental: a rerun after a small change re-tests only the
// mutants whose code or tests changed.
import { currentGroup } from './mutation-groups.mjs'

const group = currentGroup()

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: group.mutate,
  plugins: ['@stryker-mutator/vitest-runner', './scripts/stryker-ignore-messages.mjs'],
  ignorers: ['error-messages'],
  incremental: true,
  incrementalFile: `reports/mutation/${group.name}.incremental.json`,
  reporters: ['json', 'clear-text', 'progress'],
  jsonReporter: { fileName: `reports/mutation/${group.name}.json` },
  // one sandbox parent for every group, which Stryker never copies into a sandbox
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  concurrency: 2,
  timeoutMS: 20_000,
  thresholds: { high: 95, low: 90, break: null },
}

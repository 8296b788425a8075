import { defineConfig } from 'vitest/config'
// @ts-expect-error plain JS module shared with stryker.config.mjs
import { EXCLUDED_TESTS, currentGroup } from './mutation-groups.mjs'

// The tests Stryker runs against each mutant of the current group (`npm run test:mutation`).
// `isolate: false` keeps one module graph across test files: Stryker switches mutants at run time.
export default defineConfig({
  test: {
    include: currentGroup().tests,
    exclude: EXCLUDED_TESTS,
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

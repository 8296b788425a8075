// Mutation testing of the security core (`npm run test:mutation`; docs/testing.md).
// Incremental: a rerun after a small change re-tests only the mutants whose code or tests changed.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    // authorization and invocation checks, delegation parsing, revocation, replay guard
    'src/ucan/authorize.ts',
    'src/ucan/delegation.ts',
    'src/ucan/proof-graph.ts',
    'src/ucan/revocation.ts',
    'src/ucan/replay.ts',
    'src/ucan/service.ts',
    // tlog proofs, notes, checkpoints, cosignatures, policy
    'src/tlog/proof.ts',
    'src/tlog/note.ts',
    'src/tlog/checkpoint.ts',
    'src/tlog/cosignature.ts',
    'src/tlog/policy.ts',
    // the witness core and the log's witness client
    'witness/witness.ts',
    'src/log/witness-client.ts',
    // the auditor and client-side verification
    'src/cli/audit.ts',
    'src/log/log.ts:490-514', // InvalidReceiptError, checkAppendResult: what `ucanlog append` checks of each receipt
  ],
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  reporters: ['json', 'html', 'clear-text', 'progress'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  concurrency: 2,
  timeoutMS: 20_000,
  thresholds: { high: 95, low: 90, break: null },
}

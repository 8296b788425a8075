// The security core under mutation testing (`npm run test:mutation`, docs/testing.md), in groups:
// each group's source files are mutated and tested against the tests that are about them, so a
// mutant runs the few tests that should kill it rather than every end-to-end test that happens to
// execute the line. A check counts as tested only if a test of its own group fails without it.
export const GROUPS = {
  tlog: {
    mutate: ['src/tlog/proof.ts', 'src/tlog/note.ts', 'src/tlog/checkpoint.ts', 'src/tlog/cosignature.ts', 'src/tlog/policy.ts'],
    tests: ['test/tlog/**/*.test.ts'],
  },
  witness: {
    mutate: ['witness/witness.ts'],
    tests: ['test/witness/**/*.test.ts'],
  },
  ucan: {
    // authorization and invocation checks, delegation parsing, revocation, the replay guard, and the
    // service around them (handlers, admission, request handling, wire encoding)
    mutate: [
      'src/ucan/authorize.ts',
      'src/ucan/invocation.ts',
      'src/ucan/grants.ts',
      'src/ucan/chain.ts',
      'src/ucan/lean-parsers.ts',
      'src/ucan/signed-payload.ts',
      'src/ucan/verified-ucans.ts',
      'src/ucan/preverify.ts',
      'src/ucan/attester.ts',
      'src/ucan/authorization-failure.ts',
      'src/ucan/delegation.ts',
      'src/ucan/proof-graph.ts',
      'src/ucan/revocation.ts',
      'src/ucan/replay.ts',
      'src/ucan/service.ts',
      'src/ucan/transport.ts',
      'src/ucan/run-invocation.ts',
      'src/ucan/admission.ts',
      'src/ucan/wire.ts',
      'src/ucan/handlers/context.ts',
      'src/ucan/handlers/append.ts',
      'src/ucan/handlers/read.ts',
      'src/ucan/handlers/create.ts',
      'src/ucan/handlers/revoke.ts',
    ],
    tests: ['test/ucan/**/*.test.ts'],
  },
  client: {
    // the auditor, the log's witness client, what a client verifies of each append receipt (and the trust store it pins), and the monitor's checks
    mutate: [
      'src/client/audit.ts',
      'src/client/tiles.ts',
      'src/cli/audit.ts',
      'src/log/witness-client.ts',
      'src/client/receipt.ts',
      'src/client/verify-append.ts',
      'src/client/verify-checkpoint.ts',
      'src/client/trust-store.ts',
      'src/client/verify-session.ts',
      'src/client/monitor.ts',
      'src/client/monitor-cursor.ts',
    ],
    tests: ['test/auditor/**/*.test.ts', 'test/client/**/*.test.ts', 'test/log/**/*.test.ts', 'test/witness/client.test.ts'],
  },
  append: {
    // what the client does to append exactly once and bytes exact: the entry sources (UTF-8 and
    // base64 checks, size limits), the journal, the bulk append pipeline and the library's append on it
    mutate: ['src/client/entries.ts', 'src/client/journal.ts', 'src/client/append-batch.ts', 'src/client/client.ts'],
    tests: ['test/client/**/*.test.ts'],
  },
}

/** Test files that never run mutated code in-process (they spawn the built CLI) or test no core check. */
export const EXCLUDED_TESTS = [
  'test/witness/cli.test.ts', // spawns the built CLI
  'test/auditor/cli-process.test.ts', // spawns the built CLI (test/auditor/cli.test.ts is in-process)
  'test/e2e/security-proof-graph.test.ts', // spawns the built CLI (test/ucan/proof-graph.test.ts is in-process)
  'test/e2e/security-replay-crash.test.ts', // spawns the built CLI
  'test/e2e/security-rate-limit.test.ts', // rate limits: not in the mutated core
  'test/e2e/security-disk.test.ts', // disk budget: not in the mutated core
]

/** The group named by UCANLOG_MUTATION_GROUP (set by scripts/mutation.js). */
export function currentGroup() {
  const name = process.env.UCANLOG_MUTATION_GROUP ?? ''
  const group = GROUPS[name]
  if (group === undefined) {
    throw new Error(`UCANLOG_MUTATION_GROUP must be one of ${Object.keys(GROUPS).join(', ')}: run \`npm run test:mutation\``)
  }
  return { name, ...group }
}

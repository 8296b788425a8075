/**
 * `ucanlog audit`: fetches a log's public files over HTTP and runs the auditor (src/client/audit.ts)
 * on them, keeping the checkpoint seen, the log key and the witness policy pinned in the trust store
 * (`--state`, src/client/trust-store.ts) that `ucanlog append` shares.
 */
import { Command } from 'commander'
import { AUDIT_FAILED_EXIT_CODE, auditLog } from '../client/audit.js'
import { httpLogFiles } from '../client/http.js'
import { defaultStateDir, saveTrust, trustFilePath } from '../client/trust-store.js'
import { encodeBase64, parsePolicy } from '../tlog/index.js'
import { resolveReaderTrust } from './reader-trust.js'

/** `ucanlog audit`: fetches a log's public files over HTTP, runs {@link auditLog} and keeps the pinned state in `--state`. */
export function auditCommand(): Command {
  return new Command('audit')
    .description(
      'Verify a space\'s log from its public files: log signature, witness cosignatures per policy, every entry against the tiles, ' +
        'the tree root, inclusion proofs, and consistency with the checkpoint seen last time.',
    )
    .addHelpText(
      'after',
      '\nExit status:\n' +
        '  0  the log passed every check; --state now pins this checkpoint, the log key and the policy\n' +
        `  ${AUDIT_FAILED_EXIT_CODE}  the log failed a check (nothing is pinned); the error's name says which:\n` +
        '     LogSignatureInvalid, LogKeyChanged, OriginMismatch, CosignatureInvalid, WitnessPolicyNotMet,\n' +
        '     MissingFile, MalformedFile, LeafHashMismatch, RootMismatch, TileMismatch, InclusionProofInvalid,\n' +
        '     LogRolledBack, LogForked\n' +
        '  1  any other error (usage, an unreadable policy or state file)\n' +
        '  4  the service could not be reached (connection refused, DNS, timeout); nothing is pinned\n',
    )
    .requiredOption('--space <did>', 'the space DID whose log to audit')
    .option('--url <url>', 'service base URL', process.env.UCANLOG_URL ?? 'http://127.0.0.1:8787')
    .option('--state <dir>', 'the trust store shared with `ucanlog append`: pinned keys, policy and the last checkpoint seen, per space (env UCANLOG_STATE, or UCANLOG_AUDIT_STATE)', defaultStateDir())
    .option('--witness-policy <file>', 'witness policy to require (default: the one pinned in --state by the first audit or append, fetched from /info)')
    .option('--log-vkey <vkey>', 'the log\'s vkey (default: the one pinned in --state by the first audit or append, fetched from /head)')
    .option('--sample <n>', 'maximum inclusion proofs to check', '1000')
    .option('--json', 'print the report as JSON')
    .action(async (o: { space: string; url: string; state: string; witnessPolicy?: string; logVkey?: string; sample: string; json?: boolean }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(o.space)) throw new Error('--space must be a did:key')
      const stateFile = trustFilePath(o.state, o.space)
      // A network failure is exit 4, not a failed audit.
      const { anchors, notes, reach } = await resolveReaderTrust(o, 'first audit')
      const { logVkey, origin } = anchors
      const policy = parsePolicy(anchors.policy)
      const report = await auditLog({
        fetchFile: httpLogFiles(o.url, o.space, reach),
        origin,
        logVkey,
        policy,
        previous: anchors.last,
        inclusionSample: Number(o.sample),
      })
      await saveTrust(o.state, { ...anchors, last: { size: report.size, rootHash: report.rootHash, note: report.note } })
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...report, rootHash: encodeBase64(report.rootHash), notes }, null, 2) + '\n')
        return
      }
      for (const n of notes) process.stderr.write(`note: ${n}\n`)
      process.stdout.write(
        `audit OK: ${report.origin}\n` +
          `  tree size        ${report.size}\n` +
          `  root hash        ${encodeBase64(report.rootHash)}\n` +
          `  log signature    verified (${logVkey})\n` +
          report.cosignatures.map((c) => `  cosignature      ${c.name} (${c.keyName}) at ${new Date(c.timestamp * 1000).toISOString()}, verified\n`).join('') +
          `  witness policy   satisfied (quorum ${policy.quorum})\n` +
          `  entries          ${report.entriesChecked} re-hashed against ${report.tilesChecked} tiles; tree recomputed\n` +
          `  inclusion proofs ${report.inclusionProofsChecked} verified\n` +
          (report.consistentWith !== undefined ? `  consistency      verified with the size ${report.consistentWith} seen last time\n` : `  consistency      first audit; checkpoint saved in ${stateFile}\n`),
      )
    })
}

/**
 * `ucanlog audit`: fetches a log's public files over HTTP and runs the auditor (src/client/audit.ts)
 * on them, keeping the checkpoint seen, the log key and the witness policy pinned in `--state`.
 */
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { Command } from 'commander'
import { AUDIT_FAILED_EXIT_CODE, LogKeyChangedError, auditLog } from '../client/audit.js'
import { decodeBase64, encodeBase64, parsePolicy } from '../tlog/index.js'
import { unreachable } from './exit-codes.js'

interface AuditState {
  url: string
  space: string
  origin: string
  logVkey: string
  policy: string
  size: number
  rootHash: string
  checkpoint: string
}

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
    .option('--state <dir>', 'where the last seen checkpoint and pinned keys are kept', process.env.UCANLOG_AUDIT_STATE ?? join(homedir(), '.ucanlog', 'audit'))
    .option('--witness-policy <file>', 'witness policy to require (default: the one pinned at the first audit, fetched from /info)')
    .option('--log-vkey <vkey>', 'the log\'s vkey (default: the one pinned at the first audit, fetched from /head)')
    .option('--sample <n>', 'maximum inclusion proofs to check', '1000')
    .option('--json', 'print the report as JSON')
    .action(async (o: { space: string; url: string; state: string; witnessPolicy?: string; logVkey?: string; sample: string; json?: boolean }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(o.space)) throw new Error('--space must be a did:key')
      const base = new URL(`/logs/${o.space}/`, o.url)
      const reach = (url: URL) =>
        fetch(url).catch((err: unknown) => {
          throw unreachable(o.url, err) // exit 4, not a failed audit
        })
      const get = async (path: string) => {
        const res = await reach(new URL(path, base))
        if (res.status === 404) return undefined
        if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`)
        return new Uint8Array(await res.arrayBuffer())
      }
      const stateFile = join(o.state, `${o.space}.json`)
      const prev = await readFile(stateFile, 'utf8').then((s) => JSON.parse(s) as AuditState, () => undefined)
      const notes: string[] = []
      const head = await reach(new URL(`/logs/${o.space}/head`, o.url)).then((r) => (r.ok ? (r.json() as Promise<{ origin: string; vkey: string }>) : undefined))
      if (!head) throw new Error(`the service has no published log for ${o.space}`)
      let logVkey = o.logVkey ?? prev?.logVkey
      if (!logVkey) {
        logVkey = head.vkey
        notes.push(`first audit of this log: trusting the log key the service shows (${logVkey}); it is pinned from now on`)
      } else if (!o.logVkey && head.vkey !== logVkey) {
        throw new LogKeyChangedError(`the service now shows log key ${head.vkey}, but ${logVkey} was pinned`)
      }
      let policyText = o.witnessPolicy ? await readFile(o.witnessPolicy, 'utf8') : prev?.policy
      if (!policyText) {
        const info = (await (await reach(new URL('/info', o.url))).json()) as { witnessPolicy: string }
        policyText = info.witnessPolicy
        notes.push('first audit of this log: using the witness policy the service shows at /info; it is pinned from now on')
      }
      const policy = parsePolicy(policyText)
      const origin = prev?.origin ?? head.origin
      const report = await auditLog({
        fetchFile: get,
        origin,
        logVkey,
        policy,
        previous: prev ? { size: prev.size, rootHash: decodeBase64(prev.rootHash) } : undefined,
        inclusionSample: Number(o.sample),
      })
      const state: AuditState = { url: o.url, space: o.space, origin, logVkey, policy: policyText, size: report.size, rootHash: encodeBase64(report.rootHash), checkpoint: report.note }
      await mkdir(dirname(stateFile), { recursive: true })
      await writeFile(stateFile + '.tmp', JSON.stringify(state, null, 2) + '\n')
      await rename(stateFile + '.tmp', stateFile)
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

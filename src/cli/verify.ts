/**
 * `ucanlog verify BUNDLE`: checks a proof bundle (src/client/proof-bundle.ts) offline — nothing is
 * fetched: the log's vkey and the witness policy come from the flags, else from what an earlier
 * `audit`, `append` or `prove` pinned for that log in the trust store (`--state`).
 */
import { readFile } from 'node:fs/promises'
import { Command } from 'commander'
import { parseProofBundle, verifyProofBundle } from '../client/proof-bundle.js'
import { defaultStateDir, loadTrust } from '../client/trust-store.js'
import { OriginMismatchError } from '../client/verify-errors.js'
import { encodeBase64, parsePolicy } from '../tlog/index.js'
import { UsageError } from './exit-codes.js'

/** The space DID at the end of a space log's origin (`<prefix>/logs/<spaceDID>`), if it is one. */
function spaceOf(origin: string): string | undefined {
  return /\/logs\/(did:key:z[1-9A-HJ-NP-Za-km-z]+)$/.exec(origin)?.[1]
}

/** `ucanlog verify`: see the module comment. */
export function verifyCommand(): Command {
  return new Command('verify')
    .description('Check a proof bundle from `ucanlog prove` offline: log signature, origin, witness cosignatures per policy, the entry\'s leaf hash and its inclusion proof.')
    .argument('<bundle>', 'the proof bundle file (JSON), or - for stdin')
    .option('--log-vkey <vkey>', 'the log\'s vkey (default: the one pinned in --state for the bundle\'s log)')
    .option('--witness-policy <file>', 'witness policy to require (default: the one pinned in --state for the bundle\'s log)')
    .option('--state <dir>', 'the trust store of `ucanlog audit`, `append` and `prove` (env UCANLOG_STATE)', defaultStateDir())
    .option('--json', 'print the result, and any error, as JSON on stdout')
    .action(async (file: string, o: { logVkey?: string; witnessPolicy?: string; state: string; json?: boolean }) => {
      let text: string
      try {
        text = file === '-' ? await readStdin() : await readFile(file, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
      }
      const bundle = parseProofBundle(text)
      const space = spaceOf(bundle.origin)
      const pinned = o.logVkey && o.witnessPolicy ? undefined : space ? await loadTrust(o.state, space) : undefined
      if (pinned && pinned.origin !== bundle.origin) throw new OriginMismatchError(`the bundle is for ${bundle.origin}, but ${pinned.origin} is pinned for ${space}`)
      const logVkey = o.logVkey ?? pinned?.logVkey
      const policyText = o.witnessPolicy ? await readFile(o.witnessPolicy, 'utf8') : pinned?.policy
      if (!logVkey || !policyText) {
        throw new UsageError(`nothing pinned for ${bundle.origin} in ${o.state}: give --log-vkey and --witness-policy, or run \`ucanlog audit\` of that log first`)
      }
      const v = verifyProofBundle(bundle, { origin: bundle.origin, logVkey, policy: parsePolicy(policyText), now: Math.floor(Date.now() / 1000) })
      const cp = v.checkpoint.checkpoint
      if (o.json) {
        const out = { ok: true, origin: cp.origin, index: bundle.index, leafHash: encodeBase64(bundle.leafHash), treeSize: cp.size, rootHash: encodeBase64(cp.rootHash), cosignatures: v.checkpoint.cosignatures }
        process.stdout.write(JSON.stringify(out) + '\n')
        return
      }
      process.stdout.write(
        `proof OK: entry ${bundle.index} of ${cp.origin}\n` +
          `  leaf hash        ${encodeBase64(bundle.leafHash)} (the entry, ${bundle.entry.length} bytes, hashes to it)\n` +
          `  inclusion proof  verified in the tree of ${cp.size} entries, root ${encodeBase64(cp.rootHash)}\n` +
          `  log signature    verified (${logVkey})\n` +
          v.checkpoint.cosignatures.map((c) => `  cosignature      ${c.name} (${c.keyName}) at ${new Date(c.timestamp * 1000).toISOString()}, verified\n`).join('') +
          `  witness policy   satisfied\n`,
      )
    })
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

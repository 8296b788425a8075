/**
 * `ucanlog prove`: prints the proof bundle of one entry of a space's log (src/client/proof-bundle.ts)
 * on stdout, built from the log's public files and verified before it is printed, against the same
 * pins as `ucanlog audit` (the trust store, `--state`), which it then updates with the checkpoint seen.
 */
import { readFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { EntryNotFoundError, formatProofBundle, proveEntry } from '../client/proof-bundle.js'
import { ServiceRefusedError } from '../client/errors.js'
import { httpLogFiles, readBody } from '../client/http.js'
import { defaultStateDir, saveTrust } from '../client/trust-store.js'
import { encodeBase64, equalBytes, leafHash, parsePolicy } from '../tlog/index.js'
import { UsageError } from './exit-codes.js'
import { resolveReaderTrust } from './reader-trust.js'
import { urlOption } from './service-did.js'

/** Largest lookup answer read, bytes (32 MiB): the service answers at most `--lookup-max-results` (≤ 1,000,000) indexes of ≤ 16 digits each. */
const LOOKUP_MAX_BYTES = 1 << 25

/** Most times `--entry` asks the lookup route again while the service's index catches up (503 + Retry-After). */
const LOOKUP_ATTEMPTS = 5

/** `ucanlog prove`: see the module comment. */
export function proveCommand(): Command {
  return new Command('prove')
    .description(
      'Print a self-contained proof bundle (JSON) that one entry is in a space\'s log: the entry, its index and leaf hash, ' +
        'its inclusion proof and the cosigned checkpoint; verified (log key, witness policy, consistency with the checkpoint seen last) before it is printed.',
    )
    .addHelpText('after', '\nCheck a bundle offline, anywhere: ucanlog verify [--log-vkey VKEY] [--witness-policy FILE] BUNDLE\n')
    .requiredOption('--space <did>', 'the space DID whose log holds the entry')
    .addOption(urlOption())
    .addOption(new Option('--index <n>', 'the entry\'s index in the log').conflicts('entry'))
    .addOption(new Option('--entry <file>', 'a file holding the entry\'s bytes: its index is looked up by leaf hash (GET /logs/<space>/lookup)').conflicts('index'))
    .option('--state <dir>', 'the trust store shared with `ucanlog audit` and `append` (env UCANLOG_STATE)', defaultStateDir())
    .option('--witness-policy <file>', 'witness policy to require (default: the one pinned in --state, else fetched from /info and pinned)')
    .option('--log-vkey <vkey>', 'the log\'s vkey (default: the one pinned in --state, else fetched from /head and pinned)')
    .action(async (o: { space: string; url: string; index?: string; entry?: string; state: string; witnessPolicy?: string; logVkey?: string }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(o.space)) throw new UsageError('--space must be a did:key')
      if ((o.index === undefined) === (o.entry === undefined)) throw new UsageError('give one of --index N and --entry FILE')
      if (o.index !== undefined && !/^\d{1,15}$/.test(o.index)) throw new UsageError('--index must be an integer ≥ 0')
      const { anchors, notes, reach } = await resolveReaderTrust(o, 'first proof')
      const entry = o.entry === undefined ? undefined : new Uint8Array(await readFile(o.entry))
      const index = entry ? await lookupIndex(o.url, o.space, entry, reach) : Number(o.index)
      const proof = await proveEntry({
        fetchFile: httpLogFiles(o.url, o.space, reach),
        anchors: { origin: anchors.origin, logVkey: anchors.logVkey, policy: parsePolicy(anchors.policy), now: Math.floor(Date.now() / 1000) },
        index,
        previous: anchors.last,
      })
      // The lookup is the service's word: the bundle holds the entry read from the log, which must be the file's.
      if (entry && !equalBytes(proof.bundle.entry, entry)) throw new EntryNotFoundError(`the service's lookup gave index ${index}, which holds another entry`)
      const cp = proof.checkpoint.checkpoint
      await saveTrust(o.state, { ...anchors, last: { size: cp.size, rootHash: cp.rootHash, note: proof.bundle.checkpoint } })
      for (const n of notes) process.stderr.write(`note: ${n}\n`)
      process.stdout.write(formatProofBundle(proof.bundle))
    })
}

/**
 * The lowest index of `entry` in the log, from `GET /logs/<space>/lookup?leafHash=…`.
 * @throws EntryNotFoundError when the service knows no such entry (or has no lookup route); ServiceRefusedError
 *   (`HTTPError`, exit 2) on another status; UnexpectedAnswerError past {@link LOOKUP_MAX_BYTES}; Error when it names no index.
 */
async function lookupIndex(url: string, space: string, entry: Uint8Array, get: (u: URL) => Promise<Response>): Promise<number> {
  const u = new URL(`/logs/${space}/lookup`, url)
  u.searchParams.set('leafHash', encodeBase64(leafHash(entry)))
  for (let attempt = 1; ; attempt++) {
    const res = await get(u)
    if (res.status === 503 && attempt < LOOKUP_ATTEMPTS) {
      await res.body?.cancel()
      await new Promise((r) => setTimeout(r, 1000 * Math.min(5, Number(res.headers.get('retry-after')) || 1)))
      continue
    }
    if (res.status === 404) throw new EntryNotFoundError(`the service at ${url} has no lookup for ${space}: give --index`)
    if (!res.ok) {
      await res.body?.cancel()
      throw new ServiceRefusedError({ name: 'HTTPError', message: `GET ${u.pathname} answered HTTP ${res.status}` }, res.status)
    }
    let indexes: unknown
    try {
      ;({ indexes } = JSON.parse(new TextDecoder().decode(await readBody(res, LOOKUP_MAX_BYTES))) as { indexes?: unknown })
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err
    }
    if (!Array.isArray(indexes) || !indexes.every((i) => Number.isSafeInteger(i) && i >= 0)) throw new Error(`GET ${u.pathname} answered no indexes`)
    if (indexes.length === 0) throw new EntryNotFoundError(`the log of ${space} has no entry with leaf hash ${u.searchParams.get('leafHash')}`)
    return indexes[0] as number
  }
}

/**
 * `ucanlog restore`: the command line of restore (src/client/restore.ts), which verifies a log from
 * its Storacha space's blocks before writing anything and then rebuilds its local state.
 */
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Command } from 'commander'
import { CID } from 'multiformats/cid'
import { type BlockGetter, RestoreError, gatewayBlocks, loadCars, restoreLog } from '../client/restore.js'
import { loadServiceKey } from '../server/keys.js'
import { LEGACY_ORIGIN_PREFIX, ORIGIN_PREFIX_FILE } from '../server/origin-prefix.js'
import { ed25519Signer, encodeBase64, parsePolicy, parseVerifierKey } from '../tlog/index.js'

/** `ucanlog restore`: the command definition; see the module comment for what is verified before anything is written. */
export function restoreCommand(): Command {
  return new Command('restore')
    .description(
      "Rebuild a log from its Storacha space's blocks (through an IPFS gateway or a directory of CARs), verifying every " +
        'checkpoint signature and the whole tree, so this instance can take the log over and keep appending.',
    )
    .requiredOption('--space <did>', 'the space DID whose log to restore')
    .option('--root <cid>', 'the upload root to restore (default with --cars: the CAR root with the largest checkpoint)')
    .option('--gateway <url>', 'an IPFS gateway serving the space\'s blocks (trustless, ?format=raw), e.g. https://w3s.link')
    .option('--cars <dir>', 'a directory of the space\'s CARs instead of a gateway')
    .option('--data <dir>', 'the data directory to restore into (env UCANLOG_DATA)', process.env.UCANLOG_DATA ?? './data')
    .option('--log-vkey <vkey>', "the log's vkey (shown at /logs/<space>/head); default: derived from <data>/service.key")
    .option('--witness-policy <file>', 'also require the checkpoint to satisfy this witness policy (default: the log signature only)')
    .option(
      '--origin-prefix <prefix>',
      'origin prefix: origins are <prefix>/logs/<space> (env UCANLOG_ORIGIN_PREFIX; default: the data directory\'s <data>/origin-prefix, ' +
        `else the --log-vkey's key name, else "${LEGACY_ORIGIN_PREFIX}" for a data directory whose service.key predates stored prefixes, as serve decides)`,
      process.env.UCANLOG_ORIGIN_PREFIX,
    )
    .option('--json', 'print the result as JSON')
    .action(async (o: { space: string; root?: string; gateway?: string; cars?: string; data: string; logVkey?: string; witnessPolicy?: string; originPrefix?: string; json?: boolean }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(o.space)) throw new RestoreError('--space must be a did:key')
      if (!o.gateway === !o.cars) throw new RestoreError('pass exactly one of --gateway <url> or --cars <dir>')
      if (o.gateway && !o.root) throw new RestoreError('--gateway needs --root <cid> (the upload root, e.g. the latestRoot shown at /logs/<space>/head)')
      const dataDir = resolve(o.data)
      const { prefix, stored } = await restoreOriginPrefix(dataDir, o.space, o.originPrefix, o.logVkey)
      const origin = `${prefix}/logs/${o.space}`
      let logVkey = o.logVkey
      if (!logVkey) {
        const keyFile = join(dataDir, 'service.key')
        if (!existsSync(keyFile)) throw new RestoreError(`no --log-vkey and no ${keyFile}: pass --log-vkey (GET /logs/<space>/head shows it as vkey)`)
        logVkey = ed25519Signer(origin, (await loadServiceKey(keyFile)).seed).vkey
      }
      const policy = parsePolicy(o.witnessPolicy ? await readFile(o.witnessPolicy, 'utf8') : 'quorum none\n')
      let root: CID | undefined
      try {
        root = o.root ? CID.parse(o.root) : undefined
      } catch {
        throw new RestoreError(`--root is not a CID: ${o.root}`)
      }
      let getBlock: BlockGetter
      let carRoots: CID[] | undefined
      if (o.cars) {
        const cars = await loadCars(o.cars)
        getBlock = async (cid) => cars.blocks.get(cid.toString())
        carRoots = cars.roots
      } else {
        getBlock = gatewayBlocks(o.gateway!)
      }
      const r = await restoreLog({ space: o.space, root, getBlock, carRoots, dataDir, origin, logVkey, policy })
      // `serve` on this data directory must sign under the same origin: keep the prefix there.
      if (!stored) await writeFile(join(dataDir, ORIGIN_PREFIX_FILE), prefix + '\n', { flag: 'wx' })
      if (o.json) {
        process.stdout.write(
          JSON.stringify({ origin, root: r.root.toString(), treeSize: r.size, rootHash: encodeBase64(r.rootHash), checkpointsVerified: r.checkpointsVerified, files: r.files, blocks: r.blocks, dataDir }) + '\n',
        )
        return
      }
      process.stdout.write(
        `restored ${origin}\n` +
          `  root             ${r.root}\n` +
          `  tree size        ${r.size}\n` +
          `  root hash        ${encodeBase64(r.rootHash)}\n` +
          `  checkpoints      ${r.checkpointsVerified} verified (log signature${carRoots ? ', consistency with the restored one' : ''})\n` +
          `  files            ${r.files} written to ${join(dataDir, 'logs', o.space)}\n` +
          `  blocks           ${r.blocks} in ${join(dataDir, 'cars', o.space)}\n` +
          'start `ucanlog serve` on this data directory to keep appending\n',
      )
    })
}


/**
 * The origin prefix to restore under, deciding as `serve` does so that the restored log keeps its
 * origin: `--origin-prefix` (it must agree with `<data>/origin-prefix` when that exists), else that
 * file, else the prefix in the `--log-vkey`'s key name (`<prefix>/logs/<space>`), else
 * {@link LEGACY_ORIGIN_PREFIX} for a data directory with a `service.key` and no stored prefix.
 * @returns the prefix and whether the data directory already stores it.
 * @throws RestoreError naming the conflict or what to pass.
 */
async function restoreOriginPrefix(dataDir: string, space: string, flag: string | undefined, logVkey: string | undefined): Promise<{ prefix: string; stored: boolean }> {
  const file = join(dataDir, ORIGIN_PREFIX_FILE)
  const stored = existsSync(file) ? (await readFile(file, 'utf8')).trim() || undefined : undefined
  const explicit = flag !== undefined && flag !== 'auto' ? flag : undefined
  if (explicit !== undefined && stored !== undefined && explicit !== stored) {
    throw new RestoreError(`--origin-prefix ${JSON.stringify(explicit)} differs from ${JSON.stringify(stored)} in ${file}; a log's origin never changes: drop --origin-prefix or restore into a fresh --data`)
  }
  if (explicit ?? stored) return { prefix: (explicit ?? stored)!, stored: stored !== undefined }
  if (logVkey) {
    let name: string
    try {
      name = parseVerifierKey(logVkey).name
    } catch (err) {
      throw new RestoreError(`--log-vkey is not a note verifier key: ${(err as Error).message}`)
    }
    const suffix = `/logs/${space}`
    if (!name.endsWith(suffix) || name.length === suffix.length) throw new RestoreError(`the --log-vkey's name ${JSON.stringify(name)} is not <prefix>${suffix}; pass --origin-prefix`)
    return { prefix: name.slice(0, -suffix.length), stored: false }
  }
  if (existsSync(join(dataDir, 'service.key'))) return { prefix: LEGACY_ORIGIN_PREFIX, stored: false }
  throw new RestoreError('pass --origin-prefix or --log-vkey (GET /info shows originPrefix, GET /logs/<space>/head the vkey)')
}

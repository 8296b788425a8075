/** `ucanlog key create`: a new Ed25519 principal (space or agent) in a 0600 key file. */
import { Command } from 'commander'
import { loadOrCreateSecret, parseKeyFile } from '../server/keys.js'
import { createFastSigner, formatKey, generateKey } from '../ucan/index.js'
import { UsageError } from './exit-codes.js'

/** `ucanlog key create|did`: Ed25519 key files (ucanto format, mode 0600); `--json` prints `{ did, file }`. */
export function keyCommand(): Command {
  const key = new Command('key').description('Manage Ed25519 keys for spaces and agents (ucanto ed25519 format).')
  key
    .command('create')
    .description('Create a key file (mode 0600, never overwritten) and print its did:key.')
    .requiredOption('--out <file>', 'where to write the key')
    .option('--json', 'print {"did","file"} as JSON')
    .action(async (o: { out: string; json?: boolean }) => {
      const { bytes, created } = await loadOrCreateSecret(o.out, async () => Buffer.from(formatKey(await generateKey()) + '\n'))
      if (!created) throw new UsageError(`${o.out} already exists; choose another --out or use the existing key`)
      const did = parseKeyFile(o.out, Buffer.from(bytes).toString('utf8')).did()
      process.stdout.write(o.json ? JSON.stringify({ did, file: o.out }) + '\n' : did + '\n')
    })
  key
    .command('did')
    .description('Print the did:key of a key file.')
    .requiredOption('--key <file>', 'key file')
    .option('--json', 'print {"did","file"} as JSON')
    .action(async (o: { key: string; json?: boolean }) => {
      const did = (await readKey(o.key)).did()
      process.stdout.write(o.json ? JSON.stringify({ did, file: o.key }) + '\n' : did + '\n')
    })
  return key
}

/**
 * Reads a key file written by `ucanlog key create`; the signer signs with node:crypto (same bytes, ~10× faster).
 * @throws UsageError naming the file when it cannot be read; CorruptKeyFileError (never quoting the
 *   file) when it is not a key.
 */
export async function readKey(path: string) {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read key ${path} (${err.code}); create one with: ucanlog key create --out ${path}`)
  })
  return createFastSigner(parseKeyFile(path, text))
}

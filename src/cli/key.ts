/** `ucanlog key create`: a new Ed25519 principal (space or agent) in a 0600 key file. */
import { Command } from 'commander'
import { loadOrCreateSecret } from '../server/keys.js'
import { createFastSigner, formatKey, generateKey, parseKey } from '../ucan/index.js'

/** `ucanlog key create|did`: Ed25519 key files (ucanto format, mode 0600). */
export function keyCommand(): Command {
  const key = new Command('key').description('Manage Ed25519 keys for spaces and agents (ucanto ed25519 format).')
  key
    .command('create')
    .description('Create a key file (mode 0600, never overwritten) and print its did:key.')
    .requiredOption('--out <file>', 'where to write the key')
    .action(async (o: { out: string }) => {
      const { bytes, created } = await loadOrCreateSecret(o.out, async () => Buffer.from(formatKey(await generateKey()) + '\n'))
      if (!created) throw new Error(`${o.out} already exists; choose another --out or use the existing key`)
      process.stdout.write(parseKey(Buffer.from(bytes).toString('utf8').trim()).did() + '\n')
    })
  key
    .command('did')
    .description('Print the did:key of a key file.')
    .requiredOption('--key <file>', 'key file')
    .action(async (o: { key: string }) => {
      process.stdout.write((await readKey(o.key)).did() + '\n')
    })
  return key
}

/** Reads a key file written by `ucanlog key create`; the signer signs with node:crypto (same bytes, ~10× faster). */
export async function readKey(path: string) {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read key ${path} (${err.code}); create one with: ucanlog key create --out ${path}`)
  })
  return createFastSigner(parseKey(text.trim()))
}

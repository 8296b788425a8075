/**
 * Keys of `ucanlog/client`: Ed25519 principals (spaces and agents) in the ucanto / Storacha CLI
 * text format. The signers returned sign with node:crypto (the same bytes as ucanto's, faster).
 */
import { createFastSigner } from '../ucan/principal.js'
import { type Key, formatKey as formatUcantoKey, generateKey, parseKey as parseUcantoKey } from '../ucan/client.js'
import { InvalidKeyError } from './errors.js'

export type { Key }

/** Creates a new Ed25519 key: a space's or an agent's (`key.did()` is its `did:key:z6Mk…`). */
export async function createKey(): Promise<Key> {
  return createFastSigner(await generateKey())
}

/**
 * Formats a key as `ucanlog key create` and `storacha key create` write it: multibase base64pad
 * (`M…`) of the 68-byte tagged key pair, no newline. Secret: store it with mode 0600.
 */
export function formatKey(key: Key): string {
  return formatUcantoKey(key)
}

/**
 * Parses {@link formatKey}'s format, as a key file holds it (surrounding whitespace, e.g. the
 * file's trailing newline, is ignored).
 * @throws InvalidKeyError when `text` is not such a key (the message never holds the text).
 */
export function parseKey(text: string): Key {
  let key: Key
  try {
    key = parseUcantoKey(text)
  } catch {
    throw new InvalidKeyError('not an Ed25519 key in the ucanto format (base64pad `M…`, as `ucanlog key create` writes); check the file, or create one with `ucanlog key create --out FILE`')
  }
  return createFastSigner(key)
}

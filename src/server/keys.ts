/**
 * Secret key files: created with mode 0600 on first use (never overwritten), refused when anyone but
 * the owner can read them. Contents are never logged.
 */
import { mkdir, open, readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { ed25519 } from '@ucanto/principal'
import { parseVerifierKey } from '../tlog/index.js'

/** A key file that is group- or world-accessible, or unreadable. */
export class InsecureKeyFileError extends Error {
  override name = 'InsecureKeyFileError'
}

/** A key file whose contents are not a key; the message names the file, never its contents. */
export class CorruptKeyFileError extends Error {
  override name = 'CorruptKeyFile'
}

/**
 * Parses a key file's text (ucanto's `ed25519.format`: multibase base64pad, `M` prefix, 68 bytes).
 * @param path the file, named in the error.
 * @throws CorruptKeyFileError naming the file and the next step, without any of its contents (the
 *   parser's own messages quote them).
 */
export function parseKeyFile(path: string, text: string): ed25519.EdSigner {
  try {
    return ed25519.parse(text.trim())
  } catch {
    throw new CorruptKeyFileError(
      `${path} is not an Ed25519 key in the ucanto format (multibase base64pad, starting with M); ` +
        'restore it from a backup, or move it away and create a new key (`ucanlog key create`; a new service key means new log keys)',
    )
  }
}

/**
 * Reads a secret file, or creates it with `create()`'s bytes (mode 0600, exclusive create, fsynced)
 * when it does not exist.
 * @throws InsecureKeyFileError when the file's mode grants any access to group or others.
 */
export async function loadOrCreateSecret(path: string, create: () => Uint8Array | Promise<Uint8Array>): Promise<{ bytes: Uint8Array; created: boolean }> {
  try {
    const st = await stat(path)
    if ((st.mode & 0o077) !== 0) {
      throw new InsecureKeyFileError(`${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`)
    }
    return { bytes: new Uint8Array(await readFile(path)), created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await mkdir(dirname(path), { recursive: true })
  const bytes = await create()
  const fh = await open(path, 'wx', 0o600)
  try {
    await fh.chmod(0o600)
    await fh.writeFile(bytes)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return { bytes, created: true }
}

/**
 * The service's Ed25519 key (its did:key is the service DID) from a key file holding ucanto's
 * `ed25519.format` string, created on first use.
 * @returns the ucanto signer and its 32-byte Ed25519 seed (RFC 8032 private key), which also signs
 *   checkpoints as a signed-note key; `created` when this call created the file.
 * @throws CorruptKeyFileError, InsecureKeyFileError.
 */
export async function loadServiceKey(path: string): Promise<{ signer: ed25519.EdSigner; seed: Uint8Array; created: boolean }> {
  const { bytes, created } = await loadOrCreateSecret(path, async () => Buffer.from(ed25519.format(await ed25519.generate()) + '\n'))
  const signer = parseKeyFile(path, Buffer.from(bytes).toString('utf8'))
  return { signer, seed: seedOf(signer), created }
}

/** The 32-byte Ed25519 seed inside a ucanto ed25519 signer (multicodec 0x1300 tag, then the seed). */
export function seedOf(signer: ed25519.EdSigner): Uint8Array {
  const b = signer.encode()
  return b.slice(2, 34)
}

/** The 32-byte Ed25519 public key of a ucanto ed25519 signer (its encoding: 0x1300 tag, seed, 0xed tag, public key). */
export function publicKeyOf(signer: ed25519.EdSigner): Uint8Array {
  return signer.encode().slice(36, 68)
}

/**
 * The did:key of the Ed25519 public key inside a signed-note verifier key (`name+hash+base64(type ‖
 * 32-byte key)`, c2sp.org/signed-note; types 0x01 and 0x04, parsed by tlog's `parseVerifierKey`),
 * e.g. the bundled witness's, so the service can refuse it as a space.
 * @throws Error for a vkey that does not parse or does not hold an Ed25519 key.
 */
export function didKeyOfVkey(vkey: string): `did:key:${string}` {
  let key: ReturnType<typeof parseVerifierKey>
  try {
    key = parseVerifierKey(vkey)
  } catch (err) {
    throw new Error(`not an Ed25519 signed-note verifier key: ${(err as Error).message}`)
  }
  if (key.type !== 0x01 && key.type !== 0x04) throw new Error(`not an Ed25519 signed-note verifier key (type 0x${key.type.toString(16)})`)
  return ed25519.Verifier.decode(new Uint8Array([0xed, 0x01, ...key.publicKey])).did()
}

/**
 * Checkpoints per c2sp.org/tlog-checkpoint (v1.0.0): the note text a log signs to commit to a tree.
 *
 *     <origin>\n
 *     <tree size, decimal, no leading zeros>\n
 *     <base64 of the 32-byte RFC 6962 root hash>\n
 *     [<non-empty extension line>\n]*
 *
 * Only the canonical form is accepted, so `formatCheckpoint(parseCheckpoint(t)) === t` for every
 * text that parses: a witness cosigns exactly the bytes it parsed (see c2sp.org/tlog-cosignature).
 */
import { decodeHash, encodeBase64 } from './encoding.js'

/** Maximum checkpoint text size in UTF-8 bytes (the bound Go's tlog.ParseTree and torchwood use). */
export const MAX_CHECKPOINT_SIZE = 1_000_000

/** A checkpoint text that is not canonical c2sp.org/tlog-checkpoint. */
export class MalformedCheckpointError extends Error {
  override name = 'MalformedCheckpointError'
}

/**
 * A parsed checkpoint (c2sp.org/tlog-checkpoint §Note text).
 * - `origin`: the first line, non-empty, no control characters (it is not assumed to be a URL).
 * - `size`: the tree size in entries, 0 ≤ size ≤ Number.MAX_SAFE_INTEGER.
 * - `rootHash`: the 32-byte RFC 6962 Merkle tree hash; SHA-256("") for size 0.
 * - `extension`: the extension lines, raw, each non-empty and ending in "\n"; "" when none.
 */
export interface Checkpoint {
  origin: string
  size: number
  rootHash: Uint8Array
  extension: string
}

const SIZE = /^(?:0|[1-9][0-9]{0,15})$/
const CONTROL_OR_LONE_SURROGATE = /[\u0000-\u0009\u000b-\u001f]|\p{Cs}/u

/**
 * Formats a checkpoint as note text: `origin\nsize\nbase64(rootHash)\n` + extension.
 * @returns text ending in "\n".
 * @throws MalformedCheckpointError if a field is out of range (empty origin or one containing "\n"
 *   or a control character, non-integer or negative or unsafe size, root not 32 bytes, extension
 *   not made of non-empty "\n"-terminated lines).
 */
export function formatCheckpoint(c: Checkpoint): string {
  if (typeof c.origin !== 'string' || c.origin === '' || c.origin.includes('\n')) {
    throw new MalformedCheckpointError('checkpoint origin must be a non-empty single line')
  }
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new MalformedCheckpointError('checkpoint size must be a safe integer ≥ 0')
  if (!(c.rootHash instanceof Uint8Array) || c.rootHash.length !== 32) {
    throw new MalformedCheckpointError('checkpoint root hash must be 32 bytes')
  }
  if (typeof c.extension !== 'string' || (c.extension !== '' && !/^(?:[^\n]+\n)+$/.test(c.extension))) {
    throw new MalformedCheckpointError('checkpoint extension must be non-empty lines each ending in a newline')
  }
  const text = `${c.origin}\n${c.size}\n${encodeBase64(c.rootHash)}\n${c.extension}`
  if (CONTROL_OR_LONE_SURROGATE.test(text)) throw new MalformedCheckpointError('checkpoint contains a control character or invalid UTF-8')
  return text
}

/**
 * Parses canonical checkpoint note text (c2sp.org/tlog-checkpoint §Note text): at least three
 * lines, each ending in "\n"; a non-empty origin; a decimal size with no sign, spaces or leading
 * zeros (0 ≤ size ≤ 2^53−1); a canonical base64 32-byte root hash; then any non-empty extension
 * lines. At most MAX_CHECKPOINT_SIZE bytes, valid UTF-8, no control characters besides "\n".
 * @throws MalformedCheckpointError
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string') throw new MalformedCheckpointError('checkpoint is not a string')
  if (text.length * 3 > MAX_CHECKPOINT_SIZE && Buffer.byteLength(text, 'utf8') > MAX_CHECKPOINT_SIZE) {
    throw new MalformedCheckpointError(`checkpoint is larger than ${MAX_CHECKPOINT_SIZE} bytes`)
  }
  if (!text.endsWith('\n')) throw new MalformedCheckpointError('checkpoint must end in a newline')
  if (CONTROL_OR_LONE_SURROGATE.test(text)) throw new MalformedCheckpointError('checkpoint contains a control character or invalid UTF-8')
  const lines = text.slice(0, -1).split('\n')
  if (lines.length < 3) throw new MalformedCheckpointError('checkpoint must have at least three lines')
  const [origin, sizeLine, rootLine] = lines as [string, string, string]
  if (origin === '') throw new MalformedCheckpointError('checkpoint origin is empty')
  if (!SIZE.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) {
    throw new MalformedCheckpointError('checkpoint size is not a canonical decimal ≤ 2^53−1')
  }
  let rootHash: Uint8Array
  try {
    rootHash = decodeHash(rootLine)
  } catch {
    throw new MalformedCheckpointError('checkpoint root hash is not canonical base64 of 32 bytes')
  }
  const ext = lines.slice(3)
  if (ext.some((l) => l === '')) throw new MalformedCheckpointError('checkpoint extension lines must be non-empty')
  return { origin, size: Number(sizeLine), rootHash, extension: ext.map((l) => l + '\n').join('') }
}

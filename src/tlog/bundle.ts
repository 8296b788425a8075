/**
 * c2sp.org/tlog-tiles entry bundles: the entries of one level-0 tile, each as
 * `uint16 big-endian length || entry bytes`, concatenated. Entry i of the log is entry i mod 256 of
 * bundle ⌊i/256⌋ (served at `tile/entries/<N>[.p/<W>]`, see tile.ts), and hashes to
 * SHA-256(0x00 || entry), hash i mod 256 of level-0 tile ⌊i/256⌋.
 */
import { TILE_WIDTH } from './tile.js'

/** The largest entry a bundle can hold, in bytes: 2^16 − 1 (the uint16 length prefix). */
export const MAX_ENTRY_SIZE = 65535

/** An entry longer than {@link MAX_ENTRY_SIZE} bytes. */
export class EntryTooLargeError extends Error {
  override name = 'EntryTooLargeError'
}

/** Bytes that are not a well-formed entry bundle of 1..256 entries. */
export class MalformedBundleError extends Error {
  override name = 'MalformedBundleError'
}

/**
 * Encodes 1..256 entries as an entry bundle (c2sp.org/tlog-tiles), e.g. `["a", "bc"]` →
 * `00 01 61 00 02 62 63`. A full bundle has 256 entries; a partial one (the log's last) fewer.
 * @throws EntryTooLargeError if an entry is longer than 65535 bytes.
 * @throws RangeError on zero or more than 256 entries.
 */
export function formatEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  if (entries.length < 1 || entries.length > TILE_WIDTH) throw new RangeError(`a bundle holds 1..${TILE_WIDTH} entries, got ${entries.length}`)
  let total = 0
  for (const [i, e] of entries.entries()) {
    if (e.length > MAX_ENTRY_SIZE) throw new EntryTooLargeError(`entry ${i} is ${e.length} bytes, max ${MAX_ENTRY_SIZE}`)
    total += 2 + e.length
  }
  const out = new Uint8Array(total)
  let at = 0
  for (const e of entries) {
    out[at] = e.length >>> 8
    out[at + 1] = e.length & 0xff
    out.set(e, at + 2)
    at += 2 + e.length
  }
  return out
}

/**
 * Decodes an entry bundle (c2sp.org/tlog-tiles) into its entries (copies, in order). The caller
 * checks the count against the width it asked for (256, or W for `.p/<W>`).
 * @throws MalformedBundleError if the data is empty, a length prefix or entry is truncated, or it
 *   holds more than 256 entries.
 */
export function parseEntryBundle(data: Uint8Array): Uint8Array[] {
  if (data.length === 0) throw new MalformedBundleError('empty entry bundle')
  const entries: Uint8Array[] = []
  let at = 0
  while (at < data.length) {
    if (entries.length === TILE_WIDTH) throw new MalformedBundleError(`entry bundle holds more than ${TILE_WIDTH} entries`)
    if (data.length - at < 2) throw new MalformedBundleError(`truncated length prefix at byte ${at}`)
    const len = (data[at]! << 8) | data[at + 1]!
    at += 2
    if (data.length - at < len) throw new MalformedBundleError(`entry ${entries.length} truncated: ${data.length - at} of ${len} bytes`)
    entries.push(data.slice(at, at + len))
    at += len
  }
  return entries
}

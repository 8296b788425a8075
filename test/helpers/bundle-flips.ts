/**
 * Every single-byte change of a proof bundle (src/client/proof-bundle.ts), for the tests that
 * require each to fail with a named check: each byte of each decoded field (format, origin,
 * leafHash, entry, every proof hash, checkpoint) flipped, each bit of the index flipped, and each
 * byte of the JSON text flipped.
 */
import { parseProofBundle, verifyProofBundle } from '../../src/client/proof-bundle.js'
import type { CheckpointAnchors } from '../../src/client/verify-checkpoint.js'
import { VerificationError } from '../../src/client/verify-errors.js'
import { encodeBase64 } from '../../src/tlog/index.js'

/** One changed bundle: what was flipped, and the JSON text with the change. */
export interface Flip {
  what: string
  text: string
}

/** Every flip of `bundleText` (see the module comment); the caller checks each fails. */
export function* bundleFlips(bundleText: string): Generator<Flip> {
  const b = parseProofBundle(bundleText)
  const utf8 = (s: string) => new TextEncoder().encode(s)
  const str = (x: Uint8Array) => new TextDecoder().decode(x)
  const base = JSON.parse(bundleText) as Record<string, unknown>
  const fields: [string, Uint8Array, (x: Uint8Array) => object][] = [
    ['format', utf8(b.format), (x) => ({ format: str(x) })],
    ['origin', utf8(b.origin), (x) => ({ origin: str(x) })],
    ['leafHash', b.leafHash, (x) => ({ leafHash: encodeBase64(x) })],
    ['entry', b.entry, (x) => ({ entry: encodeBase64(x) })],
    ...b.inclusionProof.map((_, k): [string, Uint8Array, (x: Uint8Array) => object] => [
      `inclusionProof[${k}]`,
      b.inclusionProof[k]!,
      (x) => ({ inclusionProof: b.inclusionProof.map((y, j) => encodeBase64(j === k ? x : y)) }),
    ]),
    ['checkpoint', utf8(b.checkpoint), (x) => ({ checkpoint: str(x) })],
  ]
  for (const [field, bytes, put] of fields) {
    for (let at = 0; at < bytes.length; at++) {
      const x = new Uint8Array(bytes)
      x[at]! ^= 1
      yield { what: `${field} byte ${at}`, text: JSON.stringify({ ...base, ...put(x) }) }
    }
  }
  for (let bit = 0; bit < 31; bit++) yield { what: `index bit ${bit}`, text: JSON.stringify({ ...base, index: b.index ^ (1 << bit) }) }
  const raw = utf8(bundleText)
  for (let at = 0; at < raw.length; at++) {
    const x = new Uint8Array(raw)
    x[at]! ^= 1
    yield { what: `JSON byte ${at} (${JSON.stringify(String.fromCharCode(raw[at]!))})`, text: str(x) }
  }
}

/** The named checks a changed bundle may fail (src/client/proof-bundle.ts verifyProofBundle). */
export const BUNDLE_CHECKS = new Set(['MalformedProofBundle', 'OriginMismatch', 'LogSignatureInvalid', 'MalformedFile', 'CosignatureInvalid', 'WitnessPolicyNotMet', 'LeafHashMismatch', 'InclusionProofInvalid'])

/** What parsing and verifying `text` gives: `verified`, the name of a check in {@link BUNDLE_CHECKS}, or `unnamed …` for any other error. */
export function outcome(text: string, anchors: CheckpointAnchors): string {
  try {
    verifyProofBundle(parseProofBundle(text), anchors)
  } catch (err) {
    if (err instanceof VerificationError && BUNDLE_CHECKS.has(err.name)) return err.name
    return `unnamed ${(err as Error).name}: ${(err as Error).message}`
  }
  return 'verified'
}

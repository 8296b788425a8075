/**
 * Proof bundles in process (src/client/proof-bundle.ts), over honest and tampered logs built with the
 * real engine and real keys (test/auditor/fixtures.ts): proveEntry builds a bundle that verifies, and
 * refuses what the files do not support (a forked or rolled-back log, a lying tile, an index past the
 * tree); every single-byte change of a bundle fails verifyProofBundle with a named check. The same
 * against a real service and the built CLI: test/e2e/prove-verify.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { EntryNotFoundError, MAX_PROOF_HASHES, PROOF_BUNDLE_FORMAT, formatProofBundle, parseProofBundle, proveEntry, verifyProofBundle } from '../../src/client/proof-bundle.js'
import type { CheckpointAnchors } from '../../src/client/verify-checkpoint.js'
import { encodeBase64, leafHash, parseCheckpoint, parseNote } from '../../src/tlog/index.js'
import { BUNDLE_CHECKS, bundleFlips, outcome } from '../helpers/bundle-flips.js'
import { LOG_SIGNER, OTHER_SIGNER, ORIGIN, POLICY, type LogFilesMap, checkpointOf, entry, flipByte, logAndFork } from '../auditor/fixtures.js'

let small10: LogFilesMap
let small12: LogFilesMap
let forked12: LogFilesMap
beforeAll(async () => {
  ;({ small10, small12, forked12 } = await logAndFork())
})

const anchors = (logVkey = LOG_SIGNER.vkey): CheckpointAnchors => ({ origin: ORIGIN, logVkey, policy: POLICY, now: Math.floor(Date.now() / 1000) })
const from = (files: LogFilesMap) => async (path: string) => files.get(path)
const rootOf = (files: LogFilesMap) => parseCheckpoint(parseNote(checkpointOf(files)).text)

describe('proveEntry', () => {
  it('builds a bundle of the entry at the index, which verifies and round-trips through its JSON', async () => {
    const { bundle, checkpoint } = await proveEntry({ fetchFile: from(small10), anchors: anchors(), index: 6 })
    expect(bundle).toMatchObject({ format: PROOF_BUNDLE_FORMAT, origin: ORIGIN, index: 6, entry: entry(6), leafHash: leafHash(entry(6)), checkpoint: checkpointOf(small10) })
    expect(checkpoint.checkpoint.size).toBe(10)
    const text = formatProofBundle(bundle)
    expect(parseProofBundle(text)).toEqual(bundle)
    expect(outcome(text, anchors())).toBe('verified')
    expect(JSON.parse(text).leafHash).toBe(encodeBase64(leafHash(entry(6))))
  })

  it('consistent with the checkpoint seen before; a fork is LogForked, a rollback LogRolledBack', async () => {
    const cp10 = rootOf(small10)
    await expect(proveEntry({ fetchFile: from(small12), anchors: anchors(), index: 11, previous: cp10 })).resolves.toMatchObject({ bundle: { index: 11 } })
    await expect(proveEntry({ fetchFile: from(forked12), anchors: anchors(), index: 11, previous: cp10 })).rejects.toMatchObject({ name: 'LogForked' })
    await expect(proveEntry({ fetchFile: from(small10), anchors: anchors(), index: 1, previous: rootOf(small12) })).rejects.toMatchObject({ name: 'LogRolledBack' })
  })

  it('an index past the tree is EntryNotFound; another log key LogSignatureInvalid; a tampered tile or bundle a named check', async () => {
    await expect(proveEntry({ fetchFile: from(small10), anchors: anchors(), index: 10 })).rejects.toBeInstanceOf(EntryNotFoundError)
    await expect(proveEntry({ fetchFile: from(small10), anchors: anchors(OTHER_SIGNER.vkey), index: 1 })).rejects.toMatchObject({ name: 'LogSignatureInvalid' })
    const tile = small10.get('tile/0/000.p/10')!
    for (let at = 0; at < tile.length; at += 37) {
      const err = await proveEntry({ fetchFile: from(flipByte(small10, 'tile/0/000.p/10', at)), anchors: anchors(), index: 3 }).catch((e: unknown) => e as Error)
      expect({ at, name: err instanceof Error ? err.name : 'proved' }).toEqual({ at, name: 'InclusionProofInvalid' })
    }
    const bundle = small10.get('tile/entries/000.p/10')!
    const last = await proveEntry({ fetchFile: from(flipByte(small10, 'tile/entries/000.p/10', bundle.length - 1)), anchors: anchors(), index: 9 }).catch((e: unknown) => e as Error)
    expect(last).toMatchObject({ name: 'InclusionProofInvalid' })
  })
})

describe('parseProofBundle and verifyProofBundle', () => {
  let text: string
  beforeAll(async () => {
    text = formatProofBundle((await proveEntry({ fetchFile: from(small12), anchors: anchors(), index: 5 })).bundle)
  })

  it('every single-byte change fails with a named check (test/helpers/bundle-flips.ts)', () => {
    expect(outcome(text, anchors())).toBe('verified')
    let tried = 0
    for (const f of bundleFlips(text)) {
      const r = outcome(f.text, anchors())
      if (!BUNDLE_CHECKS.has(r)) expect.fail(`${f.what} flipped: ${r}`)
      tried++
    }
    expect(tried).toBeGreaterThan(1000)
  })

  it('a key missing or extra, a wrong type, non-canonical base64, an empty entry, too long a proof: MalformedProofBundle', () => {
    const j = JSON.parse(text) as Record<string, unknown>
    const bad: Record<string, unknown>[] = [
      { ...j, extra: 1 },
      (({ entry: _, ...rest }) => rest)(j),
      { ...j, index: '5' },
      { ...j, index: -1 },
      { ...j, index: 1.5 },
      { ...j, entry: '' },
      { ...j, entry: (j.entry as string).replace(/=+$/, '') }, // padding dropped: not canonical
      { ...j, leafHash: 'AAAA' },
      { ...j, inclusionProof: 'x' },
      { ...j, inclusionProof: Array.from({ length: MAX_PROOF_HASHES + 1 }, () => encodeBase64(new Uint8Array(32))) },
      { ...j, checkpoint: 5 },
    ]
    for (const b of bad) expect(() => parseProofBundle(JSON.stringify(b))).toThrow(expect.objectContaining({ name: 'MalformedProofBundle', exitCode: 3 }))
    expect(() => parseProofBundle('[]')).toThrow(expect.objectContaining({ name: 'MalformedProofBundle' }))
  })

  it('a bundle of another log (pinned origin differs) is OriginMismatch even when its own parts agree', () => {
    const b = parseProofBundle(text)
    expect(() => verifyProofBundle(b, { ...anchors(), origin: `${ORIGIN}x` })).toThrow(expect.objectContaining({ name: 'OriginMismatch' }))
  })
})

/**
 * The explorer's in-page verification core (explorer/tlog.js) run under Node's WebCrypto (the
 * same crypto.subtle API the browser has) against logs built by the real engine and served over
 * loopback HTTP: proofs built from the tiles verify, agree with src/tlog's checks, and any flipped
 * byte of a tile, bundle or checkpoint signature makes them fail. The browser test
 * (explorer.test.ts) runs the same module in Chromium through the page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkRecord,
  checkTree,
  decodeBase64,
  leafHash as nodeLeafHash,
  MemoryHashStore,
  newTiles,
  parseCheckpoint as nodeParseCheckpoint,
  parseNote as nodeParseNote,
  proveRecord,
  proveTree,
  readTileData,
  tilePath,
  treeHash,
} from '../../src/tlog/index.js'
import { buildLog, checkpointOf, entry, flipByte, LOG_SIGNER, type LogFilesMap, POLICY_TEXT, SPACE, startLogServer, type LogServer } from '../auditor/fixtures.js'
// @ts-expect-error plain ES module without types (served as is to the browser)
import * as core from '../../explorer/tlog.js'

let server: LogServer
let at300: LogFilesMap
let at100: LogFilesMap
const base = () => `${server.url}/logs/${SPACE}/`

beforeAll(async () => {
  const entries = Array.from({ length: 300 }, (_, i) => entry(i))
  ;[at100, at300] = (await buildLog(entries, [100, 300])) as [LogFilesMap, LogFilesMap]
  server = await startLogServer(at300)
})
afterAll(async () => {
  await server?.close()
})

const rootOf = (files: LogFilesMap) => decodeBase64(checkpointOf(files).split('\n')[2]!)

describe('explorer/tlog.js (the page verification core)', () => {
  it('every inclusion proof built from the tiles reproduces the signed root, and src/tlog accepts it', async () => {
    server.serve(at300)
    const src = new core.TileSource(base())
    const root = rootOf(at300)
    for (const i of [0, 1, 2, 99, 127, 128, 255, 256, 257, 298, 299]) {
      const entries = await src.bundle(Math.floor(i / 256), 300)
      const leaf = await core.leafHash(entries[i % 256])
      expect(leaf).toEqual(nodeLeafHash(entry(i)))
      const proof = await core.inclusionProof(src, i, 300)
      expect(await core.rootFromInclusionProof(proof, i, 300, leaf)).toEqual(root)
      expect(() => checkRecord(proof, 300, root, i, leaf)).not.toThrow()
    }
    // A proof one hash short or long, or for another index, does not give the root.
    const src2 = new core.TileSource(base())
    const leaf5 = await core.leafHash(entry(5))
    const proof5 = await core.inclusionProof(src2, 5, 300)
    await expect(core.rootFromInclusionProof(proof5.slice(0, -1), 5, 300, leaf5)).rejects.toThrow(/too short/)
    await expect(core.rootFromInclusionProof([...proof5, proof5[0]], 5, 300, leaf5)).rejects.toThrow(/too long/)
    expect(core.equalBytes(await core.rootFromInclusionProof(proof5, 4, 300, leaf5), root)).toBe(false)
  })

  it('consistency proofs between sizes verify against both roots (and src/tlog agrees); a wrong old root fails', async () => {
    const src = new core.TileSource(base())
    const root300 = rootOf(at300)
    for (const m of [1, 2, 3, 64, 100, 255, 256, 257, 299, 300]) {
      const proof = await core.consistencyProof(src, m, 300)
      const oldRoot = await src.subtreeHash(0, m, 300)
      await core.checkConsistency(proof, m, oldRoot, 300, root300)
      expect(() => checkTree(proof, 300, root300, m, oldRoot)).not.toThrow()
    }
    const proof = await core.consistencyProof(src, 100, 300)
    await core.checkConsistency(proof, 100, rootOf(at100), 300, root300)
    const bad = rootOf(at100)
    bad[0] ^= 1
    await expect(core.checkConsistency(proof, 100, bad, 300, root300)).rejects.toThrow(/root of size 100/)
    const bad300 = new Uint8Array(root300)
    bad300[31] ^= 1
    await expect(core.checkConsistency(proof, 100, rootOf(at100), 300, bad300)).rejects.toThrow(/root of size 300/)
    await expect(core.checkConsistency(proof.slice(1), 100, rootOf(at100), 300, root300)).rejects.toThrow()
  })

  it('a tree with level-2 tiles (65,836 entries, hash tiles only): proofs from the tiles equal src/tlog\'s, byte for byte', async () => {
    const N = 65_536 + 300
    const store = new MemoryHashStore()
    for (let i = 0; i < N; i++) store.append(nodeLeafHash(entry(i)))
    const files: LogFilesMap = new Map()
    for (const t of newTiles(0, N)) files.set(tilePath(t), await readTileData(t, store))
    expect(files.has('tile/2/000.p/1')).toBe(true)
    server.serve(files)
    const src = new core.TileSource(base())
    const root = await treeHash(N, store)
    for (const i of [0, 255, 40_000, 65_535, 65_536, 65_835]) {
      const proof = await core.inclusionProof(src, i, N)
      expect(proof).toEqual(await proveRecord(N, i, store))
      expect(await core.rootFromInclusionProof(proof, i, N, nodeLeafHash(entry(i)))).toEqual(root)
    }
    for (const m of [1, 1000, 65_535, 65_536, 65_537, N]) {
      const proof = await core.consistencyProof(src, m, N)
      expect(proof).toEqual(await proveTree(N, m, store))
      await core.checkConsistency(proof, m, await treeHash(m, store), N, root)
    }
    server.serve(at300)
  })

  it('a flipped byte in a hash tile on the proof path, or in the entry bundle, fails the inclusion check', async () => {
    const root = rootOf(at300)
    for (const [path, at] of [['tile/0/000', 11 * 32 + 5], ['tile/entries/000', 9 * 10 + 2 + 3]] as const) {
      server.serve(flipByte(at300, path, at))
      const src = new core.TileSource(base())
      const e = (await src.bundle(0, 300))[10]
      const leaf = await core.leafHash(e)
      const proof = await core.inclusionProof(src, 10, 300)
      expect(core.equalBytes(await core.rootFromInclusionProof(proof, 10, 300, leaf), root)).toBe(false)
    }
    server.serve(at300)
  })

  it('checkpoint: the log signature and each cosignature verify with WebCrypto Ed25519; a flipped signature byte or another key fails', async () => {
    const note = checkpointOf(at300)
    const policy = core.parsePolicy(POLICY_TEXT)
    const ok = await core.verifyCheckpointNote(note, LOG_SIGNER.vkey, policy)
    expect(ok.logSignature).toBe(true)
    expect(ok.quorum).toBe(true)
    expect(ok.checkpoint.size).toBe(nodeParseCheckpoint(nodeParseNote(note).text).size)
    expect(ok.cosignatures.map((c: { name: string; valid: boolean; time: number }) => [c.name, c.valid, c.time])).toEqual([
      ['w1', true, 1_700_000_000],
      ['w2', true, 1_700_000_000],
    ])
    // Flip one bit inside the log signature (its line's base64 → a different signature, same key ID).
    const lines = note.split('\n')
    const sigLine = lines.findIndex((l) => l.startsWith('\u2014 ' + LOG_SIGNER.vkey.split('+')[0]))
    const raw = decodeBase64(lines[sigLine]!.split(' ')[2]!)
    raw[20]! ^= 1
    lines[sigLine] = `\u2014 ${lines[sigLine]!.split(' ')[1]} ${Buffer.from(raw).toString('base64')}`
    const bad = await core.verifyCheckpointNote(lines.join('\n'), LOG_SIGNER.vkey, policy)
    expect(bad.logSignature).toBe(false)
    // A different size in the text: neither the log's signature nor the cosignatures hold.
    const moved = await core.verifyCheckpointNote(note.replace('\n300\n', '\n301\n'), LOG_SIGNER.vkey, policy)
    expect([moved.logSignature, moved.quorum]).toEqual([false, false])
  })
})

/**
 * Interop of the running service with Go's reference golang.org/x/mod/sumdb/{note,tlog}: entries are
 * appended through UCAN RPC on loopback, then Go
 *  - verifies the served checkpoint's log signature (note.Open with the log's vkey; the bundled
 *    witness's cosignature line is an unknown key to it and is ignored, as signed-note requires),
 *  - recomputes the tree from the tiles and entry bundles as served over HTTP (tlog.TileHashReader,
 *    TreeHash, and every bundle re-hashed against the level-0 tiles),
 *  - checks the inclusion proofs the service returned in its receipts and consistency proofs
 *    between checkpoints the clients saw (tlog.CheckRecord, tlog.CheckTree).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AppendResult } from '../../src/ucan/wire.js'
import { TILE_WIDTH, encodeBase64, entryBundlePath, leafHash, newTiles, parseCheckpoint, parseNote, tilePath } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { startTestService } from '../e2e/helpers.js'
import { goTool } from './go.js'

let svc: Awaited<ReturnType<typeof startTestService>>
const results: { entry: Uint8Array; r: AppendResult }[] = []
let space: `did:key:${string}`

beforeAll(async () => {
  svc = await startTestService({ batchMaxSize: 64 })
  const spaceKey = await generateKey()
  const agent = await generateKey()
  space = spaceKey.did()
  const spaceToAgent = await delegateSpaceToAgent({ space: spaceKey, agent })
  const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
  // 300 entries in several rounds, so there are many checkpoints and a partial second tile.
  for (let round = 0; round < 5; round++) {
    await Promise.all(
      Array.from({ length: 60 }, async (_, k) => {
        const entry = new TextEncoder().encode(`go interop ${round}/${k}`)
        const [receipt] = await conn.execute(await appendInvocation({ agent, service: svc.did as API.DID, space, entry, spaceToAgent }))
        const out = receipt!.out as { ok?: AppendResult }
        if (!out.ok) throw new Error(JSON.stringify(receipt!.out))
        results.push({ entry, r: out.ok })
      }),
    )
  }
})
afterAll(async () => {
  await svc?.stop()
})

async function get(path: string): Promise<Uint8Array> {
  const res = await fetch(`${svc.url}/logs/${space}/${path}`)
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`)
  return new Uint8Array(await res.arrayBuffer())
}

describe('the running service, checked by Go x/mod', () => {
  it('Go verifies the checkpoint signature with the log vkey', async () => {
    const head = (await (await fetch(`${svc.url}/logs/${space}/head`)).json()) as { vkey: string; checkpoint: string }
    const note = Buffer.from(await get('checkpoint')).toString()
    expect(parseNote(note).signatures).toHaveLength(2) // log + bundled witness
    const ok = await goTool(['verify-note', head.vkey], note)
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toBe(parseNote(note).text)
    // A flipped signature byte fails in Go too.
    const lines = note.split('\n')
    const sigLine = lines.findIndex((l) => l.startsWith('— ucanlog/logs/'))
    const b64 = lines[sigLine]!.split(' ').pop()!
    const sig = Buffer.from(b64, 'base64')
    sig[10] = sig[10]! ^ 1
    lines[sigLine] = lines[sigLine]!.replace(b64, sig.toString('base64'))
    const bad = await goTool(['verify-note', head.vkey], lines.join('\n'))
    expect(bad.code).not.toBe(0)
  })

  it('Go recomputes the tree from the served tiles and entry bundles', async () => {
    const note = Buffer.from(await get('checkpoint')).toString()
    const cp = parseCheckpoint(parseNote(note).text)
    expect(cp.size).toBe(300)
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-go-tiles-'))
    try {
      const paths = newTiles(0, cp.size).map(tilePath)
      for (let n = 0; n * TILE_WIDTH < cp.size; n++) paths.push(entryBundlePath(n, Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH)))
      for (let n = 0; (n + 1) * TILE_WIDTH <= cp.size; n++) paths.push(tilePath({ level: 0, index: n, width: TILE_WIDTH }))
      for (const p of new Set(paths)) {
        await mkdir(dirname(join(dir, p)), { recursive: true })
        await writeFile(join(dir, p), await get(p))
      }
      const r = await goTool(['verify-tiles', dir, String(cp.size), encodeBase64(cp.rootHash)])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout.trim()).toBe(`ok ${cp.size} ${encodeBase64(cp.rootHash)}`)
      const wrong = await goTool(['verify-tiles', dir, String(cp.size), encodeBase64(leafHash(new Uint8Array([1])))])
      expect(wrong.code).not.toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('Go checks every inclusion proof the service returned, and consistency proofs between the checkpoints seen', async () => {
    const inclusion = results.map(({ entry, r }) => ({ size: r.treeSize, index: r.index, root: r.rootHash, leaf: encodeBase64(leafHash(entry)), proof: r.inclusionProof }))
    const log = (await svc.logs.get(space))!
    const seen = [...new Map(results.map(({ r }) => [r.treeSize, r.rootHash])).entries()].sort((a, b) => a[0] - b[0])
    expect(seen.length).toBeGreaterThan(3)
    const consistency = []
    for (const [oldSize, oldRoot] of seen) {
      for (const [newSize, newRoot] of seen) {
        if (newSize < oldSize) continue
        consistency.push({ new: newSize, newRoot, old: oldSize, oldRoot, proof: (await log.proveConsistency(newSize, oldSize)).map(encodeBase64) })
      }
    }
    const r = await goTool(['check-proofs'], JSON.stringify({ inclusion, consistency }))
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { inclusion: { ok: boolean }[]; consistency: { ok: boolean }[] }
    expect(out.inclusion).toHaveLength(300)
    expect(out.inclusion.every((x) => x.ok)).toBe(true)
    expect(out.consistency.every((x) => x.ok)).toBe(true)
    // And a tampered proof is rejected by Go.
    const tampered = { ...inclusion[7]!, proof: [...inclusion[7]!.proof] }
    tampered.proof[0] = encodeBase64(leafHash(new Uint8Array([9])))
    const bad = await goTool(['check-proofs'], JSON.stringify({ inclusion: [tampered], consistency: [] }))
    expect(bad.code).toBe(1)
  })
})

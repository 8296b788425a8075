/**
 * Witness interop with the Go reference implementation (golang.org/x/mod/sumdb/tlog and sumdb/note,
 * run through test/interop/go/tlogtool):
 * - Go computes the tree roots and consistency proofs (`tlog.ProveTree`) and signs the checkpoints
 *   (`note.Sign`); our witness, over HTTP on loopback, checks them and cosigns;
 * - Go verifies our cosignatures with an independent cosignature/v1 verifier (crypto/ed25519 under
 *   `note.Open`), together with the log's signature.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ed25519Signer } from '../../src/tlog/note.js'
import { SqliteWitnessStore, Witness } from '../../witness/index.js'
import { expectResponse, request, startWitness, type Running } from '../witness/helpers.js'
import { WITNESS } from '../vectors/litewitness.js'
import { goTool } from './go.js'

const ORIGIN = 'interop.ucanlog.test/go-log'
const log = ed25519Signer(ORIGIN, new Uint8Array(32).fill(0x42))
const NOW = 1763770000 // the witness clock, Unix seconds
const TEXT = 'text/plain; charset=utf-8'

interface GoTreeProof {
  newSize: number
  newRoot: string
  oldSize: number
  oldRoot: string
  proof: string[]
}

async function goJSON<T>(args: string[], stdin?: string): Promise<T> {
  const r = await goTool(args, stdin)
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as T
}

/** The checkpoint of size `size` for "leaf i" entries, root from Go, signed by Go's note.Sign. */
async function goCheckpoint(size: number, root: string): Promise<string> {
  const r = await goTool(['sign-note', log.skey], `${ORIGIN}\n${size}\n${root}\n`)
  expect(r.code, r.stderr).toBe(0)
  return r.stdout
}

describe('our witness and Go x/mod', () => {
  // A fresh witness per test; a test that needs it at some size puts it there first (at).
  let w: Running
  let store: SqliteWitnessStore
  beforeEach(async () => {
    store = new SqliteWitnessStore(':memory:')
    store.addLog(ORIGIN)
    store.addKey(ORIGIN, log.vkey)
    w = await startWitness(store, { now: () => NOW })
  })
  afterEach(async () => {
    await w?.close()
    store?.close()
  })

  /** Brings the fresh witness to tree size `size`: trust on first use (old 0, no proof) of Go's tree of that size. */
  const at = async (size: number) => {
    const root = (await goJSON<GoTreeProof>(['prove-tree', String(size), String(size)])).newRoot
    await expectResponse(await w.post(request(0, [], await goCheckpoint(size, root))), 200, TEXT)
    expect(store.getLog(ORIGIN)?.treeSize).toBe(size)
  }

  it('cosigns a growing tree whose consistency proofs Go computed, and Go verifies every cosignature', async () => {
    // Sizes across tile and power-of-two boundaries; each step proves old → new.
    const sizes = [1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300, 513]
    let old = 0
    for (const size of sizes) {
      const p = old === 0 ? undefined : await goJSON<GoTreeProof>(['prove-tree', String(size), String(old)])
      const root = p?.newRoot ?? (await goJSON<GoTreeProof>(['prove-tree', String(size), String(size)])).newRoot
      const cp = await goCheckpoint(size, root)
      const body = await expectResponse(await w.post(request(old, p?.proof ?? [], cp)), 200, TEXT)
      expect(body).toMatch(new RegExp(`^— ${WITNESS.name.replace('.', '\\.')} [A-Za-z0-9+/]{102}==\\n$`))

      const verified = await goJSON<{ text: string; verified: string[]; timestamp: number }>(['verify-cosignature', log.vkey, WITNESS.vkey], cp + body)
      expect(verified).toEqual({ text: `${ORIGIN}\n${size}\n${root}\n`, verified: [ORIGIN, WITNESS.name], timestamp: NOW })
      expect(store.getLog(ORIGIN)).toMatchObject({ treeSize: size, checkpoint: cp })
      old = size
    }
  })

  it('refuses (422) a Go proof for another old size, and keeps its state', async () => {
    await at(513)
    const size = 600
    const wrong = await goJSON<GoTreeProof>(['prove-tree', String(size), '300'])
    const cp = await goCheckpoint(size, wrong.newRoot)
    await expectResponse(await w.post(request(513, wrong.proof, cp)), 422, TEXT, /bad consistency proof/)
    expect(store.getLog(ORIGIN)?.treeSize).toBe(513)
    const right = await goJSON<GoTreeProof>(['prove-tree', String(size), '513'])
    await expectResponse(await w.post(request(513, right.proof, cp)), 200, TEXT)
  })

  it('Go rejects a cosignature with a changed timestamp, a changed text, or the wrong witness key', async () => {
    await at(600)
    const p = await goJSON<GoTreeProof>(['prove-tree', '601', '600'])
    const cp = await goCheckpoint(601, p.newRoot)
    const line = await expectResponse(await w.post(request(600, p.proof, cp)), 200, TEXT)
    const ok = await goTool(['verify-cosignature', log.vkey, WITNESS.vkey], cp + line)
    expect(ok.code, ok.stderr).toBe(0)

    const sig = Buffer.from(line.trim().split(' ').pop()!, 'base64')
    sig[4 + 7]! ^= 1 // last byte of the big-endian timestamp
    const badTime = line.replace(/ \S+\n$/, ` ${sig.toString('base64')}\n`)
    const r1 = await goTool(['verify-cosignature', log.vkey, WITNESS.vkey], cp + badTime)
    expect(r1.code).toBe(1)
    expect(r1.stderr).toMatch(/invalid signature/)

    // The same signatures over another text: the log signature fails first, so sign the new text
    // with the log and keep the cosignature.
    const other = await goCheckpoint(601, p.oldRoot)
    const r2 = await goTool(['verify-cosignature', log.vkey, WITNESS.vkey], other + line)
    expect(r2.code).toBe(1)

    const stranger = new SqliteWitnessStore(':memory:')
    const otherVkey = new Witness({ name: WITNESS.name, seed: new Uint8Array(32).fill(9), store: stranger }).vkey
    stranger.close()
    const r3 = await goTool(['verify-cosignature', log.vkey, otherVkey], cp + line)
    expect(r3.code).toBe(1)
    expect(r3.stderr).toMatch(/want both the log signature and the cosignature/)
  })
})

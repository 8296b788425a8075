/** Helpers of the Storacha end-to-end tests: /head polling, local CARs, appends over HTTP. */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import type * as API from '@ucanto/interface'
import { expect } from 'vitest'
import { appendInvocation, connect, delegateAgentToService } from '../../src/ucan/index.js'
import type { LocalStoracha } from '../helpers/local-storacha.js'

export interface Head {
  treeSize: number
  vkey: string
  origin: string
  rootHash: string
  checkpoint: string
  upload?: { state: string; uploadedTreeSize: number; latestTreeSize: number; lagEntries: number; latestRoot?: string; error?: { name: string; message: string } }
}

export async function head(url: string, space: string): Promise<Head> {
  const res = await fetch(`${url}/logs/${space}/head`)
  expect(res.status).toBe(200)
  return (await res.json()) as Head
}

/** Polls /head until `done` holds (the uploader works in the background). */
export async function waitForHead(url: string, space: string, done: (h: Head) => boolean): Promise<Head> {
  for (;;) {
    const h = await head(url, space)
    if (done(h)) return h
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The root CID of every CAR in a log's local CAR directory, by tree size. */
export async function localCars(dataDir: string, space: string): Promise<{ treeSize: number; root: string; blocks: Map<string, Uint8Array> }[]> {
  const dir = join(dataDir, 'cars', space)
  const out = []
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.car')).sort()) {
    const it = await CarBlockIterator.fromBytes(await readFile(join(dir, name)))
    const blocks = new Map<string, Uint8Array>()
    for await (const b of it) blocks.set(b.cid.toString(), b.bytes)
    out.push({ treeSize: Number(name.slice(0, 16)), root: (await it.getRoots())[0]!.toString(), blocks })
  }
  return out
}

export async function appendAll(url: string, did: string, space: API.Signer<API.DIDKey>, agent: API.Signer, spaceToAgent: API.Delegation, entries: string[]) {
  const conn = connect(`${url}/rpc`, did as API.DID)
  // One Agent→Service delegation per run, as `ucanlog append` does.
  const agentToService = await delegateAgentToService({ agent, service: did as API.DID, proofs: [spaceToAgent] })
  const out = []
  for (const group of [entries.slice(0, entries.length / 2), entries.slice(entries.length / 2)]) {
    // Two rounds: at least two checkpoints, so two CARs.
    const rs = await Promise.all(
      group.map(async (e) => {
        const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(e), agentToService })
        return (await conn.execute(inv))[0]!.out as { ok?: { index: number; published: boolean }; error?: unknown }
      }),
    )
    out.push(...rs)
  }
  return out
}

/**
 * Asserts that every CAR in the log's local CAR directory is an upload of `space` in `storacha`
 * (its root registered) with every block stored byte for byte; returns the local CARs and the
 * space's uploads.
 */
export async function expectEveryCarInSpace(dataDir: string, space: string, storacha: LocalStoracha) {
  const cars = await localCars(dataDir, space)
  const uploads = await storacha.uploads(space)
  const roots = new Set(uploads.map((u) => u.root))
  const stored = await storacha.blocks(space)
  for (const car of cars) {
    expect(roots.has(car.root), `upload of the CAR of tree size ${car.treeSize}`).toBe(true)
    for (const [cid, bytes] of car.blocks) expect(new Uint8Array(stored.get(cid) ?? []), cid).toEqual(new Uint8Array(bytes))
  }
  return { cars, uploads }
}

/** Reads a log's files from the space alone: the local Storacha gateway at upload root `root` (undefined = 404). */
export function spaceReader(storacha: LocalStoracha, root: string | undefined): (path: string) => Promise<Uint8Array | undefined> {
  return async (path) => {
    const res = await fetch(`${storacha.gateway}/ipfs/${root}/${path}`)
    return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
  }
}

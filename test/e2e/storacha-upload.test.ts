/**
 * The log lives in the customer's space: appends through the real service land, one CAR per
 * published checkpoint, in a local Storacha (upload-api's real service on loopback) — asserted from
 * its upload table and the blobs its storage nodes hold; the tlog-tiles layout is served from those
 * blocks by a gateway; and an audit reading only the space's content verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { parsePolicy } from '../../src/tlog/index.js'
import { delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { startTestService } from './helpers.js'
import { appendAll, localCars, waitForHead } from './storacha-helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let storacha: LocalStoracha
let svc: Svc

beforeAll(async () => {
  storacha = await startLocalStoracha()
  svc = await startTestService({ storachaUrl: storacha.url, storachaDid: storacha.did, storachaReceipts: storacha.receiptsEndpoint, uploadRetryMaxMs: 200 })
})
afterAll(async () => {
  await svc?.stop()
  await storacha?.close()
})

describe('checkpoint CARs in the Storacha space', () => {
  it('every published checkpoint is uploaded (upload table + blobs), the gateway serves the tlog-tiles layout, and an audit of the space alone verifies', async () => {
    const space = await generateKey()
    const agent = await generateKey()
    await storacha.provision(space.did())
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const entries = Array.from({ length: 300 }, (_, i) => `space entry ${i}`)
    const results = await appendAll(svc.url, svc.did, space, agent, spaceToAgent, entries)
    for (const r of results) expect(r.ok?.published).toBe(true)

    const h = await waitForHead(svc.url, space.did(), (x) => x.upload?.state === 'uploaded' && x.upload.uploadedTreeSize === x.treeSize)
    expect(h.treeSize).toBe(300)
    expect(h.upload).toMatchObject({ state: 'uploaded', uploadedTreeSize: 300, latestTreeSize: 300, lagEntries: 0 })

    // One upload per local CAR, with the same root; every block of every CAR is in the space's blobs.
    const cars = await localCars(svc.dataDir, space.did())
    expect(cars.length).toBeGreaterThanOrEqual(2)
    expect(cars.at(-1)!.treeSize).toBe(300)
    const uploads = await storacha.uploads(space.did())
    expect(new Set(uploads.map((u) => u.root))).toEqual(new Set(cars.map((c) => c.root)))
    for (const u of uploads) expect(u.shards).toHaveLength(1)
    expect(h.upload!.latestRoot).toBe(cars.at(-1)!.root)
    const stored = await storacha.blocks(space.did())
    for (const car of cars) for (const [cid, bytes] of car.blocks) expect(new Uint8Array(stored.get(cid) ?? []), cid).toEqual(new Uint8Array(bytes))
    // Shards are CAR blobs registered in the space (plus one index blob per upload).
    const blobs = await storacha.blobs(space.did())
    expect(blobs.length).toBe(2 * cars.length)

    // The gateway serves the log's files from those blocks under the newest root.
    const root = h.upload!.latestRoot!
    const gw = async (path: string) => {
      const res = await fetch(`${storacha.gateway}/ipfs/${root}/${path}`)
      return res.status === 200 ? new Uint8Array(await res.arrayBuffer()) : undefined
    }
    expect(Buffer.from((await gw('checkpoint'))!).toString('utf8')).toBe(h.checkpoint)
    const served = async (path: string) => new Uint8Array(await (await fetch(`${svc.url}/logs/${space.did()}/${path}`)).arrayBuffer())
    for (const path of ['tile/0/000', 'tile/0/001.p/44', 'tile/1/000.p/1', 'tile/entries/000', 'tile/entries/001.p/44']) {
      expect(await gw(path), path).toEqual(await served(path))
    }

    // Audit from the space's content alone (the gateway), not the service.
    const report = await auditLog({ fetchFile: gw, origin: h.origin, logVkey: h.vkey, policy: parsePolicy(svc.policy) })
    expect(report.size).toBe(300)
    expect(report.entriesChecked).toBe(300)

    // /info lists the log's upload status and the Storacha target.
    const info = (await (await fetch(`${svc.url}/info`)).json()) as { storacha: { url: string; did: string; logs: Record<string, { state: string }> } }
    expect(info.storacha.url).toBe(`${storacha.url}/`)
    expect(info.storacha.did).toBe(storacha.did)
    expect(info.storacha.logs[space.did()]!.state).toBe('uploaded')
  })

  it('a space without a storage provider gets a clear per-log status, and uploads land once it is provisioned', async () => {
    const space = await generateKey()
    const agent = await generateKey()
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const [r] = await appendAll(svc.url, svc.did, space, agent, spaceToAgent, ['a', 'b'])
    expect(r!.ok?.published).toBe(true)
    const failing = await waitForHead(svc.url, space.did(), (x) => x.upload?.state === 'failing')
    expect(failing.upload!.error!.name).toBe('SpaceNotProvisioned')
    expect(failing.upload!.error!.message).toMatch(/no storage provider/)
    expect(failing.upload!.uploadedTreeSize).toBe(0)

    await storacha.provision(space.did())
    const ok = await waitForHead(svc.url, space.did(), (x) => x.upload?.state === 'uploaded')
    expect(ok.upload!.uploadedTreeSize).toBe(2)
    expect((await storacha.uploads(space.did())).length).toBeGreaterThanOrEqual(1)
  })
})

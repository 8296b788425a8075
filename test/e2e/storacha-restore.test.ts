/**
 * Taking the log elsewhere: a service's data directory is wiped, the log is restored from its
 * Storacha space (through the gateway, and from a directory of CARs), another instance — with its
 * own new key — keeps appending, and the new checkpoints are consistent with the old ones
 * (RFC 6962 consistency proof from the restored instance's tiles).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { RestoreError, gatewayBlocks, loadCars, restoreLog } from '../../src/client/restore.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { checkTree, decodeBase64, ed25519Signer, ed25519Verifier, openNote, parseCheckpoint, parsePolicy, proveTree, tileHashReader, tilePath } from '../../src/tlog/index.js'
import { delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, startTestService } from './helpers.js'
import { appendAll, localCars, waitForHead } from './storacha-helpers.js'

const exec = promisify(execFile)
let storacha: LocalStoracha
const dirs: string[] = []
const tmp = async (p: string) => {
  const d = await mkdtemp(join(tmpdir(), p))
  dirs.push(d)
  return d
}
beforeAll(async () => {
  storacha = await startLocalStoracha()
})
afterAll(async () => {
  await storacha?.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const storachaConfig = () => ({ storachaUrl: storacha.url, storachaDid: storacha.did, storachaReceipts: storacha.receiptsEndpoint, uploadRetryMaxMs: 200 })

describe('restore from the space', () => {
  it('wipe the data dir, restore from the space, append more: the new checkpoints are consistent with the old ones', async () => {
    const space = await generateKey()
    const agent = await generateKey()
    await storacha.provision(space.did())
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })

    // Instance A appends 300 entries; every CAR lands in the space.
    const dataA = await tmp('ucanlog-restore-a-')
    const a = await startTestService({ dataDir: dataA, ...storachaConfig() })
    await appendAll(a.url, a.did, space, agent, spaceToAgent, Array.from({ length: 300 }, (_, i) => `before ${i}`))
    const old = await waitForHead(a.url, space.did(), (h) => h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize)
    const oldCars = await localCars(dataA, space.did())
    const carsCopy = await tmp('ucanlog-restore-cars-')
    await cp(join(dataA, 'cars', space.did()), carsCopy, { recursive: true })
    await a.close()
    await rm(dataA, { recursive: true, force: true })

    // Restore through the gateway with the CLI, into a fresh data directory.
    const dataB = await tmp('ucanlog-restore-b-')
    const root = old.upload!.latestRoot!
    const out = await exec(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), 'restore', '--space', space.did(), '--root', root, '--gateway', storacha.gateway, '--data', dataB, '--log-vkey', old.vkey])
    expect(out.stdout).toContain(`tree size        300`)
    expect(out.stdout).toContain(root)

    // Instance B — new service key, new witness — takes the log over and appends 50 more.
    const b = await startTestService({ dataDir: dataB, ...storachaConfig() })
    try {
      expect(b.did).not.toBe(a.did)
      const restored = await waitForHead(b.url, space.did(), () => true)
      expect(restored.treeSize).toBe(300)
      expect(restored.checkpoint).toBe(old.checkpoint)
      const results = await appendAll(b.url, b.did, space, agent, spaceToAgent, Array.from({ length: 50 }, (_, i) => `after ${i}`))
      expect(results.map((r) => r.ok?.index).sort((x, y) => x! - y!)).toEqual(Array.from({ length: 50 }, (_, i) => 300 + i))
      const now = await waitForHead(b.url, space.did(), (h) => h.treeSize === 350 && h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === 350)

      // The new checkpoint is signed by B and consistent with A's old one.
      const cp = parseCheckpoint(openNote(now.checkpoint, [ed25519Verifier(now.vkey)]).text)
      expect(cp.size).toBe(350)
      const oldCp = parseCheckpoint(openNote(old.checkpoint, [ed25519Verifier(old.vkey)]).text)
      const reader = tileHashReader(cp.size, cp.rootHash, {
        readTiles: (tiles) => Promise.all(tiles.map(async (t) => new Uint8Array(await (await fetch(`${b.url}/logs/${space.did()}/${tilePath(t)}`)).arrayBuffer()))),
      })
      const proof = await proveTree(cp.size, oldCp.size, reader)
      expect(() => checkTree(proof, cp.size, cp.rootHash, oldCp.size, oldCp.rootHash)).not.toThrow()
      expect(decodeBase64(now.rootHash)).toEqual(cp.rootHash)

      // B's newest upload builds on the restored directory: the space alone audits at size 350.
      const newRoot = now.upload!.latestRoot!
      expect(newRoot).not.toBe(root)
      const gw = async (path: string) => {
        const res = await fetch(`${storacha.gateway}/ipfs/${newRoot}/${path}`)
        return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
      }
      const report = await auditLog({ fetchFile: gw, origin: now.origin, logVkey: now.vkey, policy: parsePolicy('quorum none\n'), previous: { size: oldCp.size, rootHash: oldCp.rootHash } })
      expect(report).toMatchObject({ size: 350, consistentWith: 300 })
    } finally {
      await b.stop()
    }

    // From a directory of CARs: the newest checkpoint is found, and every CAR's checkpoint verifies.
    const dataC = await tmp('ucanlog-restore-c-')
    const cars = await loadCars(carsCopy)
    const r = await restoreLog({
      space: space.did(),
      getBlock: async (cid) => cars.blocks.get(cid.toString()),
      carRoots: cars.roots,
      dataDir: dataC,
      origin: old.origin,
      logVkey: old.vkey,
      policy: parsePolicy('quorum none\n'),
    })
    expect(r).toMatchObject({ root, size: 300, checkpointsVerified: oldCars.length })

    // Refusals: a checkpoint that does not verify with the given log key, and restoring over an existing log.
    const bad = restoreLog({
      space: space.did(),
      root: CID.parse(root),
      getBlock: gatewayBlocks(storacha.gateway),
      dataDir: await tmp('ucanlog-restore-e-'),
      origin: old.origin,
      logVkey: ed25519Signer(old.origin, randomBytes(32)).vkey,
      policy: parsePolicy('quorum none\n'),
    })
    await expect(bad).rejects.toThrow(/does not verify/)
    await expect(
      restoreLog({ space: space.did(), root: CID.parse(root), getBlock: gatewayBlocks(storacha.gateway), dataDir: dataC, origin: old.origin, logVkey: old.vkey, policy: parsePolicy('quorum none\n') }),
    ).rejects.toBeInstanceOf(RestoreError)
  })
})

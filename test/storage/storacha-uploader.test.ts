/**
 * StorachaUploader and UploadQueue against a local Storacha (upload-api's real service on
 * loopback): named per-log failures (no delegation, a delegation missing a capability, an expired
 * delegation), orphan blobs from a half-done upload tolerated on retry, a queue that survives
 * being closed and reopened, and the queue's writes failing on a full disk (no unhandled rejection).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CarPacker, type PackResult, encodeCar } from '../../src/storage/car-packer.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { StorachaUploader, UploadBacklogFullError, classifyUploadError } from '../../src/storage/storacha-uploader.js'
import { UploadQueue, type UploadStatus } from '../../src/storage/upload-queue.js'
import { type Key, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'

let storacha: LocalStoracha
let dir: string
let service: Key
beforeAll(async () => {
  storacha = await startLocalStoracha()
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-uploader-'))
  service = await generateKey()
})
afterAll(async () => {
  await storacha?.close()
  await rm(dir, { recursive: true, force: true })
})

let n = 0
/** A space with one packed checkpoint CAR. */
async function spaceWithCar(provision = true): Promise<{ space: Key; agent: Key; pack: PackResult }> {
  const space = await generateKey()
  const agent = await generateKey()
  if (provision) await storacha.provision(space.did())
  const packer = await CarPacker.open(join(dir, `cars-${n++}`))
  const pack = await packer.pack(3, new Map([['checkpoint', new TextEncoder().encode(`cp ${n}\n`)], ['tile/entries/000.p/3', new Uint8Array([0, 1, 65, 0, 1, 66, 0, 1, 67])]]))
  await packer.close()
  return { space, agent, pack }
}

async function delegation(space: Key, agent: Key, capabilities?: string[]) {
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  return delegateAgentToService({ agent, service, proofs: [spaceToAgent], ...(capabilities ? { capabilities: capabilities as never } : {}) })
}

function uploader(queue: UploadQueue, now?: () => number, backlogMax?: number) {
  return new StorachaUploader({
    ...(backlogMax ? { backlogMax } : {}),
    queue,
    signer: service,
    target: { url: storacha.url, did: storacha.did, receiptsEndpoint: storacha.receiptsEndpoint },
    retryMinMs: 20,
    retryMaxMs: 100,
    clientRetries: 0,
    ...(now ? { now } : {}),
  })
}

async function until(u: StorachaUploader, space: string, done: (s: UploadStatus) => boolean): Promise<UploadStatus> {
  for (;;) {
    const s = await u.status(space)
    if (s && done(s)) return s
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('StorachaUploader', () => {
  it('NoDelegation, then DelegationMissingCapability (orphan blobs left), then a full delegation uploads', async () => {
    const queue = new UploadQueue(join(dir, 'q1.sqlite'))
    const u = uploader(queue)
    try {
      const { space, agent, pack } = await spaceWithCar()
      u.start()
      u.enqueue(space.did(), pack)
      const none = await until(u, space.did(), (s) => s.state === 'failing')
      expect(none.error!.name).toBe('NoDelegation')
      expect(none).toMatchObject({ uploadedTreeSize: 0, latestTreeSize: 3, lagEntries: 3, pendingCheckpoints: 1 })

      await u.rememberDelegation(space.did(), await delegation(space, agent, ['space/blob/add', 'space/index/add']))
      const missing = await until(u, space.did(), (s) => s.error?.name === 'DelegationMissingCapability')
      expect(missing.error!.message).toMatch(/does not grant upload\/add/)
      // blob/add and index/add went through before upload/add failed: orphan blobs, no upload.
      expect((await storacha.blobs(space.did())).length).toBe(2)
      expect(await storacha.uploads(space.did())).toEqual([])

      await u.rememberDelegation(space.did(), await delegation(space, agent))
      const ok = await until(u, space.did(), (s) => s.state === 'uploaded')
      expect(ok).toMatchObject({ uploadedTreeSize: 3, lagEntries: 0, pendingCheckpoints: 0, latestRoot: pack.root.toString() })
      expect((await storacha.uploads(space.did())).map((x) => x.root)).toEqual([pack.root.toString()])
      // The retry reused the orphans: still one CAR blob and one index blob.
      expect((await storacha.blobs(space.did())).length).toBe(2)
    } finally {
      await u.close()
      queue.close()
    }
  })

  it('an expired delegation is DelegationExpired, without calling Storacha', async () => {
    const queue = new UploadQueue(join(dir, 'q2.sqlite'))
    const twoYears = 2 * 365 * 86_400_000
    const u = uploader(queue, () => Date.now() + twoYears)
    try {
      const { space, agent, pack } = await spaceWithCar()
      await u.rememberDelegation(space.did(), await delegation(space, agent))
      u.start()
      u.enqueue(space.did(), pack)
      const s = await until(u, space.did(), (x) => x.state === 'failing')
      expect(s.error!.name).toBe('DelegationExpired')
      expect(s.error!.message).toMatch(/expired at \d{4}-/)
      expect(await storacha.blobs(space.did())).toEqual([])
    } finally {
      await u.close()
      queue.close()
    }
  })

  it('the queue is durable: a pending job, its failure and the delegation survive a reopen, and the upload then lands', async () => {
    const file = join(dir, 'q3.sqlite')
    const { space, agent, pack } = await spaceWithCar(false)
    let queue = new UploadQueue(file)
    let u = uploader(queue)
    await u.rememberDelegation(space.did(), await delegation(space, agent))
    u.start()
    u.enqueue(space.did(), pack)
    u.enqueue(space.did(), pack) // idempotent
    const failing = await until(u, space.did(), (s) => s.state === 'failing')
    expect(failing.error!.name).toBe('SpaceNotProvisioned')
    await u.close()
    queue.close()

    await storacha.provision(space.did())
    queue = new UploadQueue(file)
    expect(queue.status(space.did())).toMatchObject({ state: 'failing', pendingCheckpoints: 1, latestTreeSize: 3 })
    expect((await queue.delegation(space.did()))!.issuer.did()).toBe(agent.did())
    u = uploader(queue)
    try {
      u.start()
      expect(await until(u, space.did(), (s) => s.state === 'uploaded')).toMatchObject({ uploadedTreeSize: 3, pendingCheckpoints: 0 })
    } finally {
      await u.close()
      queue.close()
    }
  })

  it('retries are scheduled on a monotonic clock: the wall clock jumping back an hour does not stall them', { timeout: 30_000 }, async () => {
    const queue = new UploadQueue(join(dir, 'q5.sqlite'))
    let offset = 0
    const u = uploader(queue, () => Date.now() + offset)
    try {
      const { space, agent, pack } = await spaceWithCar()
      await u.rememberDelegation(space.did(), await delegation(space, agent))
      await storacha.stop()
      u.start()
      u.enqueue(space.did(), pack)
      expect((await until(u, space.did(), (s) => s.state === 'failing')).error!.name).toBe('StorachaUnavailable')
      // The wall clock goes back an hour, then Storacha returns: the next retry (≤ 100 ms of backoff) still runs.
      offset = -3_600_000
      await storacha.start()
      expect(await until(u, space.did(), (s) => s.state === 'uploaded')).toMatchObject({ uploadedTreeSize: 3, pendingCheckpoints: 0 })
    } finally {
      await storacha.start()
      await u.close()
      queue.close()
    }
  })

  it('an append refused UploadBacklogFull still brings its delegation: a backlog stuck for want of one drains, and the log is admitted again', async () => {
    const queue = new UploadQueue(join(dir, 'q6.sqlite'))
    const u = uploader(queue, undefined, 1)
    try {
      const { space, agent, pack } = await spaceWithCar()
      const other = await generateKey()
      u.start()
      u.enqueue(space.did(), pack)
      expect((await until(u, space.did(), (s) => s.state === 'failing')).error!.name).toBe('NoDelegation')
      const refusal = await u.admit(space.did(), await delegation(space, agent)).catch((e: Error) => e)
      expect(refusal).toBeInstanceOf(UploadBacklogFullError)
      expect((refusal as UploadBacklogFullError).message).toMatch(/^1 checkpoints wait for upload to the space \(NoDelegation\); retry after \d+ s$/)
      await u.admit(other.did(), undefined) // another log is not refused
      await until(u, space.did(), (s) => s.state === 'uploaded')
      await u.admit(space.did(), undefined)
    } finally {
      await u.close()
      queue.close()
    }
  })

  it("keeps the delegation of the log's most recent append, durably", async () => {
    const file = join(dir, 'q4.sqlite')
    const space = await generateKey()
    const agent = await generateKey()
    const first = await delegation(space, agent)
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const second = await delegateAgentToService({ agent, service, proofs: [spaceToAgent], expiration: Math.floor(Date.now() / 1000) + 600 })
    let queue = new UploadQueue(file)
    expect(await queue.setDelegation(space.did(), first)).toBe(true)
    expect(await queue.setDelegation(space.did(), first)).toBe(false)
    expect(await queue.setDelegation(space.did(), second)).toBe(true) // newer wins, even with an earlier expiry
    queue.close()
    queue = new UploadQueue(file)
    try {
      expect((await queue.delegation(space.did()))!.cid.toString()).toBe(second.cid.toString())
      expect(await queue.delegation((await generateKey()).did())).toBeUndefined()
    } finally {
      queue.close()
    }
  })

  it('classifies upload-client errors by the receipt error in their cause', () => {
    const at = 1
    const err = (message: string, cause?: object) => Object.assign(new Error(message), cause ? { cause } : {})
    expect(classifyUploadError(err('failed space/blob/add invocation', { name: 'InsufficientStorage', message: 'did:key:z6Mk… has no storage provider' }), at).name).toBe('SpaceNotProvisioned')
    expect(classifyUploadError(err('failed upload/add invocation', { name: 'Unauthorized', message: 'Claim {"can":"upload/add"} is not authorized' }), at).name).toBe('DelegationMissingCapability')
    expect(classifyUploadError(err('failed space/blob/add invocation', { name: 'Unauthorized', message: 'Claim {"can":"space/blob/add"} is not authorized\n - Proof bafy… has expired on 2026-01-01' }), at).name).toBe('DelegationExpired')
    // Storacha's own internal delegation failing is not the customer's delegation.
    expect(classifyUploadError(err('failed space/index/add invocation', { name: 'Unauthorized', message: 'Claim {"can":"assert/index"} is not authorized - has expired' }), at).name).toBe('UploadFailed')
    expect(classifyUploadError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' } }), at).name).toBe('StorachaUnavailable')
  })
})

describe('the local Storacha harness', () => {
  /** Whether a TCP connection to host:port is accepted. */
  const accepts = (host: string, port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host, port })
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })

  it('listens on 127.0.0.1 only (an ephemeral port), not on every interface', async () => {
    const url = new URL(storacha.url)
    expect(url.hostname).toBe('127.0.0.1')
    const port = Number(url.port)
    expect(port).toBeGreaterThan(0)
    expect(await accepts('127.0.0.1', port)).toBe(true)
    // Linux routes all of 127/8 to lo: a socket bound to :: or 0.0.0.0 would accept on 127.0.0.2 too.
    expect(await accepts('127.0.0.2', port)).toBe(false)
  })

  // What the soak's closing check (bench/soak.js) relies on: it must be able to say "missing".
  it('missingCars: an uploaded CAR is in the space; a root never uploaded, a block in no shard, or other bytes under a CID are missing', async () => {
    const queue = new UploadQueue(join(dir, 'q-harness.sqlite'))
    const u = uploader(queue)
    try {
      const { space, agent, pack } = await spaceWithCar()
      await u.rememberDelegation(space.did(), await delegation(space, agent))
      u.start()
      u.enqueue(space.did(), pack)
      await until(u, space.did(), (s) => s.state === 'uploaded')
      const uploaded = new Uint8Array(await readFile(pack.file))
      const notUploaded = new Uint8Array(await readFile((await spaceWithCar(false)).pack.file))
      const blocks: { cid: CID; bytes: Uint8Array }[] = []
      for await (const b of await CarBlockIterator.fromBytes(uploaded)) blocks.push({ cid: CID.asCID(b.cid)!, bytes: b.bytes })
      const extraBytes = new TextEncoder().encode('a block no shard of the space holds')
      const extraBlock = await encodeCar(pack.root, [...blocks, { cid: CID.create(1, 0x55, await sha256.digest(extraBytes)), bytes: extraBytes }])
      const other = blocks.map((b, i) => (i === blocks.length - 1 ? { cid: b.cid, bytes: Uint8Array.from(b.bytes, (x, j) => (j === 0 ? x ^ 1 : x)) } : b))
      const otherBytes = await encodeCar(pack.root, other)
      const car = (name: string, bytes: Uint8Array) => ({ name, read: async () => bytes })
      const lines: string[] = []

      const missing = await storacha.missingCars(space.did(), [car('uploaded', uploaded), car('not uploaded', notUploaded), car('extra block', extraBlock)], (l) => lines.push(l))
      expect(missing.map((m) => m.name)).toEqual(['not uploaded', 'extra block'])
      expect(missing[0]!.reason).toMatch(/^root \S+ is not an upload of the space$/)
      expect(missing[1]!.reason).toMatch(/^1 of its \d+ blocks are not in the space's CAR blobs/)
      expect(lines.at(-1)).toMatch(/^blobs read 2\/2, needed blocks found \d+\/\d+$/) // the CAR shard and its index
      expect(await storacha.missingCars(space.did(), [car('other bytes', otherBytes)])).toEqual([{ name: 'other bytes', reason: expect.stringMatching(/^1 of its/) }])
      expect(await storacha.missingCars(space.did(), [car('uploaded', uploaded)])).toEqual([])
    } finally {
      await u.close()
      queue.close()
    }
  })
})

/** An error as better-sqlite3 throws it when the disk is full. */
function sqliteFull(): Error {
  return Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' })
}

// Found by the soak (bench/soak.js, issue 15): `ucanlog serve` exited with an uncaught SQLITE_FULL
// from `UploadQueue.markFailed` in `StorachaUploader.attempt` while the data directory was full:
// `markDone` after a successful upload fails, the catch's `markFailed` fails too and escapes,
// `work()` rejected and nothing handled it (fixed). Here the queue's two writes fail as a full disk makes
// them fail (a fault injected on the real queue, against the real local Storacha).
describe('StorachaUploader when the upload queue cannot be written (disk full)', () => {
  // The uploader now pauses its attempts for the retry delay while the queue cannot be written.
  it('rejects nothing unhandled, keeps the job pending, and uploads it once the queue can be written again', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown) => void unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    const queue = new UploadQueue(join(dir, 'q-full.sqlite'))
    const u = uploader(queue)
    try {
      const { space, agent, pack } = await spaceWithCar()
      await u.rememberDelegation(space.did(), await delegation(space, agent))
      const { markDone, markFailed } = queue
      let failedWrites = 0
      queue.markDone = () => {
        failedWrites++
        throw sqliteFull()
      }
      queue.markFailed = () => {
        failedWrites++
        throw sqliteFull()
      }
      u.start()
      u.enqueue(space.did(), pack)
      const t = Date.now()
      while (failedWrites < 2 && Date.now() - t < 30_000) await new Promise((r) => setTimeout(r, 20))
      expect(failedWrites).toBeGreaterThanOrEqual(2)
      await new Promise((r) => setTimeout(r, 200))
      expect(unhandled, 'promises rejected with nobody to handle them (the process would exit)').toEqual([])
      expect(await u.status(space.did())).toMatchObject({ pendingCheckpoints: 1 })

      // Space freed: the job is uploaded.
      queue.markDone = markDone
      queue.markFailed = markFailed
      await until(u, space.did(), (s) => s.state === 'uploaded')
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await u.close().catch(() => {}) // what it rethrows is the failure asserted above
      queue.close()
    }
  }, 90_000)
})

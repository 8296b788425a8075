/**
 * Found by the soak (bench/soak.js, issue 15): `ucanlog serve` exited with an uncaught
 * `SqliteError: database or disk is full` (SQLITE_FULL) from `UploadQueue.markFailed`, called by
 * `StorachaUploader.attempt`, while the data directory was full and uploads were being attempted.
 * The upload queue's own writes (`markDone` after a successful upload, then `markFailed` in the
 * catch) fail on a full disk; the second one escapes `attempt`, rejects `work()`, and nothing
 * handles that promise.
 *
 * Here the queue's two writes are made to fail as a full disk makes them fail (a fault injected on
 * the real UploadQueue, against the real local Storacha): the uploader must not reject anything
 * unhandled, the job must stay pending (not lost, not marked done), and once the writes succeed
 * again the job is uploaded. Marked `it.fails` while the defect stands (see the test).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CarPacker } from '../../src/storage/car-packer.js'
import { StorachaUploader } from '../../src/storage/storacha-uploader.js'
import { UploadQueue } from '../../src/storage/upload-queue.js'
import { type Key, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'

let storacha: LocalStoracha
let dir: string
let service: Key
beforeAll(async () => {
  storacha = await startLocalStoracha()
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-uploader-full-'))
  service = await generateKey()
})
afterAll(async () => {
  await storacha?.close()
  await rm(dir, { recursive: true, force: true })
})

/** An error as better-sqlite3 throws it when the disk is full. */
function sqliteFull(): Error {
  return Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' })
}

describe('StorachaUploader when the upload queue cannot be written (disk full)', () => {
  // Fails on the current code (an unhandled SqliteError: `ucanlog serve` exits): `it.fails` until
  // the uploader handles its queue's write failures; the fix turns this into `it`.
  it.fails('rejects nothing unhandled, keeps the job pending, and uploads it once the queue can be written again', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown) => void unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    const queue = new UploadQueue(join(dir, 'q.sqlite'))
    const u = new StorachaUploader({
      queue,
      signer: service,
      target: { url: storacha.url, did: storacha.did, receiptsEndpoint: storacha.receiptsEndpoint },
      retryMinMs: 20,
      retryMaxMs: 100,
      clientRetries: 0,
    })
    try {
      const space = await generateKey()
      const agent = await generateKey()
      await storacha.provision(space.did())
      const packer = await CarPacker.open(join(dir, 'cars'))
      const pack = await packer.pack(3, new Map([['checkpoint', new TextEncoder().encode('cp\n')], ['tile/entries/000.p/3', new Uint8Array([0, 1, 65, 0, 1, 66, 0, 1, 67])]]))
      await packer.close()
      await u.rememberDelegation(space.did(), await delegateAgentToService({ agent, service, proofs: [await delegateSpaceToAgent({ space, agent })] }))

      // The disk is full: the queue's writes after an attempt fail as SQLite fails them.
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
      expect(u.status(space.did())).toMatchObject({ pendingCheckpoints: 1 })

      // Space freed: the job is uploaded.
      queue.markDone = markDone
      queue.markFailed = markFailed
      for (;;) {
        const s = u.status(space.did())
        if (s?.state === 'uploaded') break
        if (Date.now() - t > 60_000) throw new Error(`not uploaded once the queue could be written again: ${JSON.stringify(s)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await u.close().catch(() => {}) // what it rethrows is the failure asserted above
      queue.close()
    }
  }, 90_000)
})

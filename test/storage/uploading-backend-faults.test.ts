/**
 * Issue 15 item 2, the upload queue: a CAR whose queue entry could not be written (the queue's
 * SQLite write failed: a full or failing disk) is never lost. The pack itself is durable (the CAR
 * and the packer's index); the next pack queues every pack the queue lacks, oldest first, as the
 * next open of the log would, so every checkpoint's CAR still reaches the space.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { LocalBackend } from '../../src/storage/local-backend.js'
import { UploadingBackend } from '../../src/storage/uploading-backend.js'
import { generateKey } from '../../src/ucan/index.js'

let dir: string | undefined
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

describe('a failed upload-queue write never loses a CAR (issue 15 item 2)', () => {
  it('the pack whose enqueue failed is queued with the next pack, in order', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ucanlog-uploading-'))
    const queued: number[] = []
    let failNext = false
    // The queue and uploader seen by the backend: what was queued, and an enqueue that can fail once.
    const queue = { latestTreeSize: () => Math.max(0, ...queued) }
    const uploader = {
      enqueue(_space: string, p: { treeSize: number }) {
        if (failNext) {
          failNext = false
          throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' })
        }
        queued.push(p.treeSize)
      },
    }
    const backend = new UploadingBackend(new LocalBackend(dir), uploader as never, queue as never)
    const id = (await generateKey()).did()
    const { archive } = (await backend.open(id, true))!
    const files = (n: number) => new Map([[`tile/entries/000.p/${n}`, new Uint8Array([n])], ['checkpoint', new TextEncoder().encode(`cp ${n}\n`)]])
    await archive.pack(1, files(1))
    failNext = true
    await expect(archive.pack(2, files(2))).rejects.toMatchObject({ code: 'SQLITE_IOERR_FSYNC' })
    expect(archive.lastTreeSize).toBe(2) // the CAR is durable, only its queue entry is missing
    await archive.pack(3, files(3))
    expect(queued).toEqual([1, 2, 3])
    await archive.close()
  })
})

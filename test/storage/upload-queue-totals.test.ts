/**
 * UploadQueue.totals (the upload backlog in /metrics, issue 15 item 5): pending checkpoints and lag
 * summed over every log, each log's lag equal to its status's `lagEntries`, failing logs counted.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { UploadQueue } from '../../src/storage/upload-queue.js'

describe('UploadQueue.totals', () => {
  it('sums pending checkpoints and lag over the logs, agrees with each status, counts failing logs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-upload-totals-'))
    const q = new UploadQueue(join(dir, 'q.sqlite'))
    try {
      expect(q.totals()).toEqual({ pendingCheckpoints: 0, lagEntries: 0, failingLogs: 0 })
      const job = (space: string, treeSize: number) => q.enqueue({ space, treeSize, root: `r${treeSize}`, carFile: `/c/${treeSize}.car`, carCid: `c${treeSize}` }, 0)
      // a: 2 and 5 uploaded, 9 and 14 pending (lag 14 − 5), the oldest pending failing.
      for (const t of [2, 5, 9, 14]) job('a', t)
      q.markDone('a', 2, 1)
      q.markDone('a', 5, 1)
      q.markFailed('a', 9, { name: 'StorachaUnavailable', message: 'down', at: 2 }, 10)
      // b: nothing uploaded, 3 pending (lag 3).
      job('b', 3)
      // c: everything uploaded.
      job('c', 7)
      q.markDone('c', 7, 1)
      expect(q.totals()).toEqual({ pendingCheckpoints: 3, lagEntries: 9 + 3, failingLogs: 1 })
      expect(q.status('a')!.lagEntries + q.status('b')!.lagEntries + q.status('c')!.lagEntries).toBe(q.totals().lagEntries)
      q.markDone('a', 9, 3)
      q.markDone('a', 14, 3)
      q.markDone('b', 3, 3)
      expect(q.totals()).toEqual({ pendingCheckpoints: 0, lagEntries: 0, failingLogs: 0 })
    } finally {
      q.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

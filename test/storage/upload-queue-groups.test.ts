/**
 * UploadQueue's groups and bounds (issue 15 item 5): a log is due when its oldest pending job is
 * (newer jobs, enqueued due at once, do not make it due), its group is its oldest pending jobs, at
 * most `maxLogs` logs per round; done rows beyond the newest `keepDone` of a log are deleted without
 * changing its status; a schedule further ahead than a bound is brought back to it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UploadQueue } from '../../src/storage/upload-queue.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-upload-groups-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const job = (q: UploadQueue, space: string, treeSize: number, now = 0) => q.enqueue({ space, treeSize, root: `r${treeSize}`, carFile: `/c/${treeSize}.car`, carCid: `c${treeSize}` }, now)
const sizes = (groups: { space: string; treeSize: number }[][]) => groups.map((g) => `${g[0]!.space}:${g.map((j) => j.treeSize).join(',')}`)
const down = { name: 'StorachaUnavailable', message: 'down', at: 0 }

describe('UploadQueue groups', () => {
  it("a log is due when its oldest pending job is; its group is its oldest pending jobs, at most perLog; at most maxLogs logs", () => {
    const q = new UploadQueue(join(dir, 'g1.sqlite'))
    try {
      for (const t of [2, 4, 6, 8, 10]) job(q, 'a', t)
      job(q, 'b', 3)
      expect(sizes(q.dueGroups(0, 3, 10))).toEqual(['a:2,4,6', 'b:3'])
      expect(q.dueGroups(0, 3, 1)).toHaveLength(1)
      // a's oldest three fail (due again at 1000); a new checkpoint is enqueued due at once.
      q.markFailed('a', [2, 4, 6], down, 1000)
      job(q, 'a', 12, 50)
      expect(sizes(q.dueGroups(100, 3, 10))).toEqual(['b:3'])
      q.markDone('b', 3, 100)
      // nextDue is the oldest pending job's, not the newest one's (no busy loop while a log backs off).
      expect(q.nextDue()).toBe(1000)
      expect(q.status('a')!.nextAttemptAt).toBe(1000)
      expect(q.dueGroups(999, 3, 10)).toEqual([])
      expect(sizes(q.dueGroups(1000, 10, 10))).toEqual(['a:2,4,6,8,10,12'])
      expect(q.pendingCount('a')).toBe(6)
      expect(q.pendingCount('b')).toBe(0)
      // A group is marked done at once; the log's uploaded size is its newest job.
      q.markDone('a', [2, 4, 6, 8, 10, 12], 1001)
      expect(q.status('a')).toMatchObject({ state: 'uploaded', uploadedTreeSize: 12, latestTreeSize: 12, pendingCheckpoints: 0, latestRoot: 'r12' })
      expect(q.nextDue()).toBeUndefined()
    } finally {
      q.close()
    }
  })

  it('keeps only the newest keepDone done rows of each log, and the status is unchanged by the pruning', () => {
    const file = join(dir, 'g2.sqlite')
    const q = new UploadQueue(file, { keepDone: 3 })
    try {
      for (let t = 1; t <= 50; t++) job(q, 'a', t)
      for (let t = 1; t <= 40; t++) q.markDone('a', t, t)
      job(q, 'b', 7)
      q.markDone('b', 7, 1)
      const rows = new Database(file, { readonly: true })
      try {
        const count = (space: string, done: boolean) => (rows.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE space = ? AND done_at IS ${done ? 'NOT ' : ''}NULL`).get(space) as { n: number }).n
        expect(count('a', true)).toBe(3)
        expect(count('a', false)).toBe(10)
        expect(count('b', true)).toBe(1)
      } finally {
        rows.close()
      }
      expect(q.status('a')).toMatchObject({ state: 'pending', uploadedTreeSize: 40, latestTreeSize: 50, lagEntries: 10, pendingCheckpoints: 10, latestRoot: 'r40' })
      expect(q.latestTreeSize('a')).toBe(50)
      // The newest row is kept (UploadingBackend.open queues packs newer than it), and the totals agree.
      expect(q.totals()).toEqual({ pendingCheckpoints: 10, lagEntries: 10, failingLogs: 0 })
    } finally {
      q.close()
    }
  })

  it('clampNextAt brings a schedule written far ahead (a clock that was ahead) back to the bound', () => {
    const q = new UploadQueue(join(dir, 'g3.sqlite'))
    try {
      job(q, 'a', 1)
      q.markFailed('a', 1, down, 3_600_000)
      expect(q.dueGroups(1000, 4, 4)).toEqual([])
      q.clampNextAt(500)
      expect(q.nextDue()).toBe(500)
      expect(sizes(q.dueGroups(1000, 4, 4))).toEqual(['a:1'])
    } finally {
      q.close()
    }
  })
})

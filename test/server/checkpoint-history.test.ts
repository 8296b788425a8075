/**
 * The checkpoint history (src/server/checkpoint-history.ts) on its own, on a real SQLite file:
 * bounded by maxPoints with thinning that keeps the first and the newest point and spans the whole
 * log, even sampling, the `size ≤` filter, no repeated point, and persistence across a reopen.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CheckpointHistory } from '../../src/server/checkpoint-history.js'

let dir: string
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'ucanlog-history-'))))
afterAll(() => rm(dir, { recursive: true, force: true }))

const root = (size: number) => new Uint8Array(32).fill(size % 251)
/** The point published at step i: size 10·(i+1), time 1000 + i. */
const point = (i: number) => ({ size: 10 * (i + 1), rootHash: root(10 * (i + 1)), time: 1000 + i })
const open = (file: string, max?: number) => {
  const db = new Database(join(dir, file))
  return { db, h: new CheckpointHistory(db, max) }
}

describe('CheckpointHistory', () => {
  it('keeps every point while under maxPoints, oldest first, per log', () => {
    const { db, h } = open('a.db', 100)
    for (let i = 0; i < 5; i++) h.record('x', point(i))
    h.record('y', point(7))
    expect(h.sample('x', 1000)).toEqual([0, 1, 2, 3, 4].map(point))
    expect(h.sample('y', 1000)).toEqual([point(7)])
    expect(h.sample('z', 1000)).toEqual([])
    db.close()
  })

  it('a publication equal to the newest point (same size and root) is not repeated; a different root at the same size is', () => {
    const { db, h } = open('b.db', 100)
    h.record('x', point(0))
    h.record('x', { ...point(0), time: 5000 })
    expect(h.count('x')).toBe(1)
    h.record('x', { ...point(0), rootHash: root(1), time: 5001 })
    expect(h.count('x')).toBe(2)
    db.close()
  })

  it('full: thins to every other point, never above maxPoints, the first and the newest point always kept, spanning the whole log', () => {
    const max = 64
    const { db, h } = open('c.db', max)
    for (let i = 0; i < 2000; i++) {
      h.record('x', point(i))
      const n = h.count('x')
      expect(n).toBeLessThanOrEqual(max)
      if (i % 97 === 0 || i === 1999) {
        const all = h.sample('x', max)
        expect(all).toHaveLength(n)
        expect(all[0]).toEqual(point(0))
        expect(all[all.length - 1]).toEqual(point(i))
        // Oldest first, strictly increasing.
        for (let k = 1; k < all.length; k++) expect(all[k]!.time).toBeGreaterThan(all[k - 1]!.time)
      }
    }
    // At least half full, and evenly spread over the whole life: one stride between the kept
    // points but the newest (2000 publications, 64 points: every 32nd).
    const all = h.sample('x', max)
    expect(all.length).toBeGreaterThanOrEqual(max / 2)
    const gaps = new Set(all.slice(1, -1).map((p, k) => p.time - all[k]!.time))
    expect([...gaps]).toEqual([32])
    db.close()
  })

  it('the smallest bound (2) still thins to ≤ 2 keeping the first and the newest', () => {
    const { db, h } = open('d.db', 2)
    for (let i = 0; i < 10; i++) h.record('x', point(i))
    expect(h.sample('x', 10)).toEqual([point(0), point(9)])
    db.close()
    expect(() => new CheckpointHistory(new Database(':memory:'), 1)).toThrow(RangeError)
  })

  it('samples evenly: limit points including the first and the last', () => {
    const { db, h } = open('e.db', 1000)
    for (let i = 0; i < 101; i++) h.record('x', point(i))
    expect(h.sample('x', 11).map((p) => p.time - 1000)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    expect(h.sample('x', 2).map((p) => p.time - 1000)).toEqual([0, 100])
    expect(h.sample('x', 1).map((p) => p.time - 1000)).toEqual([100])
    expect(() => h.sample('x', 0)).toThrow(RangeError)
    db.close()
  })

  it('answers only points with size ≤ the size asked about (a log restored from an older copy)', () => {
    const { db, h } = open('f.db', 1000)
    for (let i = 0; i < 10; i++) h.record('x', point(i))
    expect(h.sample('x', 100, 50).map((p) => p.size)).toEqual([10, 20, 30, 40, 50])
    expect(h.count('x', 50)).toBe(5)
    db.close()
  })

  it('survives closing and reopening the file', () => {
    const a = open('g.db', 100)
    for (let i = 0; i < 3; i++) a.h.record('x', point(i))
    a.db.close()
    const b = open('g.db', 100)
    b.h.record('x', point(3))
    expect(b.h.sample('x', 100)).toEqual([0, 1, 2, 3].map(point))
    b.db.close()
  })
})

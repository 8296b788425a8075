/** The round-robin scheduler of authorizations across client addresses (src/server/fair-scheduler.ts). */
import { describe, expect, test } from 'vitest'
import { FairScheduler, SchedulerFull } from '../../src/server/fair-scheduler.js'

/** A task that runs until released, recording when it started. */
function gated(log: string[], name: string): { task: () => Promise<string>; release: () => void } {
  let release: () => void = () => {}
  const gate = new Promise<void>((r) => (release = r))
  return {
    task: async () => {
      log.push(name)
      await gate
      return name
    },
    release,
  }
}

const tick = () => new Promise((r) => setImmediate(r))

describe('FairScheduler', () => {
  test('runs at most `max` tasks in all and `perKey` per key', async () => {
    const s = new FairScheduler({ max: 3, perKey: 2, maxQueued: 100 })
    const log: string[] = []
    const tasks = ['a1', 'a2', 'a3', 'b1', 'b2'].map((n) => ({ n, ...gated(log, n) }))
    const runs = tasks.map((t) => s.run(t.n[0]!, t.task))
    await tick()
    expect(log).toEqual(['a1', 'a2', 'b1'])
    expect(s.running()).toBe(3)
    expect(s.active('a')).toBe(2)
    expect(s.waiting('a')).toBe(1)
    for (const t of tasks) t.release()
    expect(await Promise.all(runs)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2'])
    expect(s.running()).toBe(0)
  })

  test("a flooding key cannot delay another key's task by more than one turn", async () => {
    const s = new FairScheduler({ max: 1, perKey: 1, maxQueued: 100 })
    const log: string[] = []
    const flood = Array.from({ length: 20 }, (_, i) => gated(log, `flood${i}`))
    const floodRuns = flood.map((t) => s.run('flooder', t.task))
    await tick()
    const honest = gated(log, 'honest')
    const honestRun = s.run('honest', honest.task)
    honest.release()
    // flood0 is running and the flooder's turn came before the honest key queued: after at most
    // one more flood task, the honest task runs, before the other 18 flood tasks queued earlier.
    flood[0]!.release()
    await tick()
    flood[1]!.release()
    await honestRun
    expect(log.slice(0, 3)).toEqual(['flood0', 'flood1', 'honest'])
    for (const t of flood) t.release()
    await Promise.all(floodRuns)
    expect(log).toHaveLength(21)
  })

  test('a key with maxQueued tasks waiting is refused (SchedulerFull) and its task never runs; other keys are not', async () => {
    const s = new FairScheduler({ max: 1, perKey: 1, maxQueued: 2 })
    const log: string[] = []
    const a = [0, 1, 2].map((i) => gated(log, `a${i}`))
    const runs = a.map((t) => s.run('a', t.task))
    let ran = false
    await expect(
      s.run('a', async () => {
        ran = true
      }),
    ).rejects.toBeInstanceOf(SchedulerFull)
    expect(ran).toBe(false)
    const b = gated(log, 'b')
    const bRun = s.run('b', b.task)
    b.release()
    for (const t of a) t.release()
    await Promise.all([...runs, bRun])
    expect(log.sort()).toEqual(['a0', 'a1', 'a2', 'b'])
  })

  test('refuses counts that are not positive integers', () => {
    expect(() => new FairScheduler({ max: 0, perKey: 1, maxQueued: 1 })).toThrow(RangeError)
    expect(() => new FairScheduler({ max: 1, perKey: 1.5, maxQueued: 1 })).toThrow(RangeError)
  })
})

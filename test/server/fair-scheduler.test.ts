/** The round-robin scheduler of authorizations across client addresses (src/server/fair-scheduler.ts). */
import { describe, expect, test } from 'vitest'
import { FairScheduler, SchedulerFull, ServiceBusy } from '../../src/server/fair-scheduler.js'

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
    expect(() => new FairScheduler({ max: 1, perKey: 1, maxQueued: 1, maxQueuedTotal: 0 })).toThrow(RangeError)
  })
})

/** Settles `p` into what it resolved to or the name of what it rejected with (never rejects). */
const outcome = <T>(p: Promise<T>): Promise<T | string> => p.then((v) => v, (e: Error) => e.name)

describe('FairScheduler: the service-wide queue bound (maxQueuedTotal)', () => {
  /** One slot, held by `hold` until released: everything else waits. */
  async function busy(o: { maxQueuedTotal: number; maxQueued?: number }) {
    const s = new FairScheduler({ max: 1, perKey: 1, maxQueued: o.maxQueued ?? 100, maxQueuedTotal: o.maxQueuedTotal })
    const releaseHold = await s.acquire('hold')
    return { s, releaseHold }
  }

  test('at the bound, a newcomer of the address with the most waiting is refused ServiceBusy, its task never runs; counts return to zero', async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 3 })
    const log: string[] = []
    const a = [0, 1, 2].map((i) => gated(log, `a${i}`))
    const runs = a.map((t) => outcome(s.run('a', t.task)))
    expect(s.queued()).toBe(3)
    let ran = false
    await expect(s.run('a', async () => void (ran = true))).rejects.toBeInstanceOf(ServiceBusy)
    expect(ran).toBe(false)
    expect(s.queued()).toBe(3)
    expect(s.waiting('a')).toBe(3)
    for (const t of a) t.release()
    releaseHold()
    expect(await Promise.all(runs)).toEqual(['a0', 'a1', 'a2'])
    expect([s.queued(), s.running(), s.waiting('a'), s.keys()]).toEqual([0, 0, 0, 0])
  })

  test("at the bound, a lighter address's newcomer sheds the heaviest address's most recent wait and queues; the shed task never runs", async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 4 })
    const log: string[] = []
    const flood = [0, 1, 2].map((i) => gated(log, `flood${i}`))
    const floodRuns = flood.map((t) => outcome(s.run('flooder', t.task)))
    const other = gated(log, 'other')
    const otherRun = outcome(s.run('other', other.task))
    expect(s.queued()).toBe(4)
    const honest = gated(log, 'honest')
    const honestRun = outcome(s.run('honest', honest.task))
    // flood2, the flooder's newest, was shed: its wait rejects at once, before any slot frees.
    expect(await floodRuns[2]).toBe('ServiceBusy')
    expect([s.queued(), s.waiting('flooder'), s.waiting('other'), s.waiting('honest')]).toEqual([4, 2, 1, 1])
    for (const t of [...flood, other, honest]) t.release()
    releaseHold()
    expect(await Promise.all([floodRuns[0], floodRuns[1], otherRun, honestRun])).toEqual(['flood0', 'flood1', 'other', 'honest'])
    expect(log).not.toContain('flood2')
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })

  test("a flood from one address fills the queue but no other address's request is ever refused or shed", async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 8 })
    const log: string[] = []
    const flood = Array.from({ length: 40 }, (_, i) => gated(log, `flood${i}`))
    const honest = Array.from({ length: 6 }, (_, i) => gated(log, `honest${i}`))
    const floodRuns: Promise<string>[] = []
    const honestRuns: Promise<string>[] = []
    // Interleaved arrivals: the flooder sends far more, and from several honest addresses.
    for (let i = 0; i < flood.length; i++) {
      floodRuns.push(outcome(s.run('flooder', flood[i]!.task)))
      if (i % 7 === 3) {
        const h = honestRuns.length
        honestRuns.push(outcome(s.run(`honest-${h % 3}`, honest[h]!.task)))
      }
    }
    expect(s.queued()).toBe(8)
    for (const t of [...flood, ...honest]) t.release()
    releaseHold()
    const honestOut = await Promise.all(honestRuns)
    expect(honestOut).toEqual(honest.map((_, i) => `honest${i}`))
    const floodOut = await Promise.all(floodRuns)
    expect(floodOut.filter((o) => o === 'ServiceBusy').length).toBe(40 - 2) // 8 waiting − 6 honest
    expect(floodOut.filter((o) => o.startsWith('flood')).length).toBe(2)
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })

  test('ties: a newcomer whose address has as many waiting as the heaviest is refused, nobody is shed', async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 4 })
    const log: string[] = []
    const tasks = ['a0', 'b0', 'a1', 'b1'].map((n) => ({ n, ...gated(log, n) }))
    const runs = tasks.map((t) => outcome(s.run(t.n[0]!, t.task)))
    expect(await outcome(s.run('b', async () => 'b2'))).toBe('ServiceBusy')
    // A key with nothing waiting is lighter: it sheds one of the heaviest (a or b) and queues.
    const c = gated(log, 'c0')
    const cRun = outcome(s.run('c', c.task))
    for (const t of [...tasks, c]) t.release()
    releaseHold()
    const out = await Promise.all([...runs, cRun])
    expect(out.filter((o) => o === 'ServiceBusy')).toHaveLength(1)
    expect(out[4]).toBe('c0')
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })

  test('always-waits are never refused nor shed, and do not count against the bound', async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 2, maxQueued: 10 })
    const order: string[] = []
    const take = (key: string, name: string, always: boolean) =>
      outcome(
        s.acquire(key, { always }).then((release) => {
          order.push(name)
          release()
          return name
        }),
      )
    const always = [0, 1, 2, 3].map((i) => take('flooder', `always${i}`, true))
    expect(s.queued()).toBe(0)
    expect(s.waiting('flooder')).toBe(4)
    const f = [take('flooder', 'f0', false), take('flooder', 'f1', false)]
    expect(s.queued()).toBe(2)
    // More always-waits of the heaviest address queue after its sheddable ones.
    const late = take('flooder', 'always4', true)
    // A lighter address sheds f1 (the newest sheddable one, not the always-wait queued after it).
    const h = take('honest', 'h', false)
    // The flooder itself at the bound is refused; with `always` it is not.
    expect(await take('flooder', 'f2', false)).toBe('ServiceBusy')
    const late2 = take('flooder', 'always5', true)
    releaseHold()
    expect(await Promise.all([...always, ...f, late, h, late2])).toEqual(['always0', 'always1', 'always2', 'always3', 'f0', 'ServiceBusy', 'always4', 'h', 'always5'])
    expect(order).not.toContain('f1')
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })

  test('the per-address bound (SchedulerFull, 429) still applies first', async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 10, maxQueued: 2 })
    const runs = [0, 1].map(() => outcome(s.run('a', async () => 'a')))
    expect(await outcome(s.run('a', async () => 'a'))).toBe('SchedulerFull')
    releaseHold()
    expect(await Promise.all(runs)).toEqual(['a', 'a'])
    expect([s.queued(), s.keys()]).toEqual([0, 0])
  })

  test('a key left with only shed waits is dropped from the ring; the heaviest count follows sheds and turns', async () => {
    const { s, releaseHold } = await busy({ maxQueuedTotal: 2 })
    const a = outcome(s.run('a', async () => 'a'))
    const b = outcome(s.run('b', async () => 'b'))
    // Each has 1: c (0 waiting) sheds one of them; then d sheds the other of the heaviest, now 1 each (a|b and c).
    const c = outcome(s.run('c', async () => 'c'))
    const d = outcome(s.run('d', async () => 'd'))
    expect(s.queued()).toBe(2)
    releaseHold()
    const out = await Promise.all([a, b, c, d])
    expect(out.filter((o) => o === 'ServiceBusy')).toHaveLength(2)
    expect(out.slice(2)).not.toContain('ServiceBusy')
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })
})

describe('FairScheduler: the longest wait for a turn (maxWaitMs)', () => {
  /** Timers that fire only when the test says so. */
  function manualTimers() {
    const pending = new Map<number, { fn: () => void; at: number }>()
    let now = 0
    let next = 0
    return {
      timers: {
        setTimeout: (fn: () => void, ms: number) => (pending.set(++next, { fn, at: now + ms }), next),
        clearTimeout: (t: unknown) => void pending.delete(t as number),
      },
      pending: () => pending.size,
      advance(ms: number) {
        now += ms
        for (const [id, t] of [...pending]) if (t.at <= now) (pending.delete(id), t.fn())
      },
    }
  }

  test('a wait past maxWaitMs rejects ServiceBusy and its task never runs; a wait that got its turn in time is unaffected; always-waits never time out', async () => {
    const clock = manualTimers()
    const s = new FairScheduler({ max: 1, perKey: 1, maxQueued: 10, maxWaitMs: 100, timers: clock.timers })
    const releaseHold = await s.acquire('hold')
    const log: string[] = []
    const early = outcome(s.run('a', async () => void log.push('early')).then(() => 'early'))
    clock.advance(60)
    const late = outcome(s.run('b', async () => void log.push('late')).then(() => 'late'))
    const always = outcome(s.acquire('c', { always: true }).then((r) => (r(), 'always')))
    expect(clock.pending()).toBe(2) // no timer for the always-wait
    clock.advance(50) // `early` has waited 110 ms, `late` 50 ms
    expect(await early).toBe('ServiceBusy')
    expect(s.queued()).toBe(1)
    releaseHold()
    expect(await late).toBe('late')
    expect(await always).toBe('always')
    expect(log).toEqual(['late'])
    expect(clock.pending(), 'timers of waits that got their turn are cleared').toBe(0)
    clock.advance(1000)
    expect([s.queued(), s.running(), s.keys()]).toEqual([0, 0, 0])
  })

  test('a shed wait clears its timer; maxWaitMs 0 means no limit (no timer); a negative or fractional one is refused', async () => {
    const clock = manualTimers()
    const s = new FairScheduler({ max: 1, perKey: 1, maxQueued: 10, maxQueuedTotal: 1, maxWaitMs: 100, timers: clock.timers })
    const releaseHold = await s.acquire('hold')
    const a = outcome(s.run('a', async () => 'a'))
    const b = outcome(s.run('b', async () => 'b')) // b (0 waiting) sheds a
    expect(await a).toBe('ServiceBusy')
    expect(clock.pending()).toBe(1)
    releaseHold()
    expect(await b).toBe('b')
    expect(clock.pending()).toBe(0)

    const unlimited = new FairScheduler({ max: 1, perKey: 1, maxQueued: 10, maxWaitMs: 0, timers: clock.timers })
    const hold = await unlimited.acquire('hold')
    const c = outcome(unlimited.run('c', async () => 'c'))
    expect(clock.pending()).toBe(0)
    hold()
    expect(await c).toBe('c')
    expect(() => new FairScheduler({ max: 1, perKey: 1, maxQueued: 1, maxWaitMs: -1 })).toThrow(RangeError)
    expect(() => new FairScheduler({ max: 1, perKey: 1, maxQueued: 1, maxWaitMs: 0.5 })).toThrow(RangeError)
  })
})

/** The replay guards (memory and SQLite, one conformance suite: replay-conformance.ts), and the service's behaviour when a space's share is full. */
import { describe, expect, test } from 'vitest'
import {
  DEFAULT_MAX_INVOCATION_LIFETIME,
  DEFAULT_REPLAY_PER_SPACE,
  type ReplayGuard,
  ReplayGuardFull,
  UcanStore,
  createMemoryReplayGuard,
  createUcanService,
  delegateSpaceToAgent,
  appendInvocation,
  createMemoryRevocations,
  createGrantCache,
} from '../../src/ucan/index.js'
import type { API } from '@ucanto/core'
import { DEFAULT_CONFIG } from '../../src/server/config.js'
import { DEFAULT_SPACE_BURST, DEFAULT_SPACE_RATE } from '../../src/server/rate-limit.js'
import { RecordingLog, now, principals, send } from './helpers.js'
import { replayGuardConformance } from './replay-conformance.js'

replayGuardConformance('memory', async (o) => ({ guard: createMemoryReplayGuard(o), close() {} }))
replayGuardConformance('sqlite', async (o) => {
  const store = UcanStore.open(':memory:', { now: o.now, maxReplayPerOwner: o.maxPerOwner })
  return { guard: store.replay, close: () => store.close() }
})

describe('createMemoryReplayGuard', () => {
  test('concurrent calls share the first outcome, including a rejection', async () => {
    const guard = createMemoryReplayGuard({ now: () => 0 })
    let runs = 0
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const task = async () => {
      runs++
      await gate
      throw new Error('boom')
    }
    const key = { owner: 'A', id: 'x', expiresAt: 10 }
    const calls = [guard.once(key, task), guard.once(key, task), guard.once(key, task)]
    release()
    for (const c of calls) await expect(c).rejects.toThrow('boom')
    expect(runs).toBe(1)
    await expect(guard.once(key, async () => 'again')).rejects.toThrow('boom')
  })

  test('with a clock between whole seconds, an id that expired since the last sweep is run again and keeps one place', async () => {
    // Sweeps happen at most once a second; an id that expires between two sweeps is dropped by
    // once() itself, freeing its place before the new run takes one.
    let t = 1000
    const guard = createMemoryReplayGuard({ now: () => t, maxPerOwner: 1 })
    expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1000 }, async () => 1)).toBe(1)
    t = 1000.5 // no sweep yet (next at 1001); a has expired
    expect(guard.seen('a')).toBeUndefined()
    expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1100 }, async () => 2)).toBe(2)
    await expect(guard.once({ owner: 'A', id: 'b', expiresAt: 1100 }, async () => 3)).rejects.toBeInstanceOf(ReplayGuardFull)
  })

  test('the default clock is the system clock', async () => {
    const guard = createMemoryReplayGuard({ maxPerOwner: 1 })
    const t = Math.floor(Date.now() / 1000)
    expect(await guard.once({ owner: 'A', id: 'past', expiresAt: t - 5 }, async () => 1)).toBe(1)
    // Expired at once: the next call runs again.
    expect(await guard.once({ owner: 'A', id: 'past', expiresAt: t + 3600 }, async () => 2)).toBe(2)
    expect(await guard.once({ owner: 'A', id: 'past', expiresAt: t + 3600 }, async () => 3)).toBe(2)
  })

  test('ids that expired are swept exactly one second after the last sweep, freeing their places', async () => {
    let t = 1000
    const guard = createMemoryReplayGuard({ now: () => t, maxPerOwner: 1 })
    expect(await guard.once({ owner: 'A', id: 'a1', expiresAt: 1000 }, async () => 1)).toBe(1) // sweeps at 1000
    t = 1001 // the next sweep is due now: a1 (expired) goes, A's one place is free
    expect(await guard.once({ owner: 'A', id: 'a2', expiresAt: 1100 }, async () => 2)).toBe(2)
  })

  test('ReplayGuardFull and a bad share say what they are', () => {
    expect(new ReplayGuardFull('A', 2).message).toBe('A has 2 unexpired invocations remembered, its share of the replay guard')
    expect(() => createMemoryReplayGuard({ maxPerOwner: 0 })).toThrow(new RangeError('the replay share per owner must be a positive integer'))
  })

  test('a task that throws synchronously is recorded as a rejection', async () => {
    const guard = createMemoryReplayGuard({ now: () => 0 })
    const task = (() => {
      throw new Error('sync')
    }) as unknown as () => Promise<never>
    await expect(guard.once({ owner: 'A', id: 's', expiresAt: 10 }, task)).rejects.toThrow('sync')
  })

  test('the default share fits an honest space at its rate limit for the longest invocation lifetime', () => {
    expect(DEFAULT_REPLAY_PER_SPACE).toBeGreaterThanOrEqual(DEFAULT_SPACE_RATE * DEFAULT_MAX_INVOCATION_LIFETIME + DEFAULT_SPACE_BURST)
    expect(DEFAULT_CONFIG.replayPerSpace).toBe(DEFAULT_REPLAY_PER_SPACE)
  })
})

describe('createGrantCache', () => {
  test('an entry lives until the earliest expiration on its paths, then is dropped', async () => {
    let t = 100
    const cache = createGrantCache({ now: () => t, maxEntries: 2 })
    const auth = (exp: number, proofs: API.Authorization[] = []) =>
      ({ delegation: { expiration: exp }, proofs }) as unknown as API.Authorization
    // The top of each path (the probe) does not count; its proofs do.
    cache.set('k', [auth(Infinity, [auth(200, [auth(150)])]), auth(Infinity, [auth(300)])])
    expect(cache.get('k')).toHaveLength(2)
    t = 149
    expect(cache.get('k')).toBeDefined()
    t = 150
    expect(cache.get('k')).toBeUndefined()
    cache.set('a', [auth(Infinity, [auth(1000)])])
    cache.set('b', [auth(Infinity, [auth(1000)])])
    cache.set('c', [auth(Infinity, [auth(1000)])])
    expect(cache.get('a')).toBeUndefined() // evicted: least recently used
    expect(cache.get('c')).toBeDefined()
  })
})

describe('service construction and a full share', () => {
  test('bad options are refused at construction', async () => {
    const P = await principals()
    const log = new RecordingLog()
    expect(() => createUcanService({ signer: P.service, log, maxInvocationLifetime: 0 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxInvocationLifetime: 1.5 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxResponseBytes: -1 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxResponseBytes: 2000, maxResponseBytesInFlight: 1000 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxVerifiedUcans: 0 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxVerifiedUcanBytes: 1.5 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxVerifiedUcans: 1, maxVerifiedUcanBytes: 1 })).not.toThrow()
  })

  test('a space at its share is refused with TooManyPendingInvocations and does not append; another space appends', async () => {
    const P = await principals()
    const log = new RecordingLog()
    const server = createUcanService({
      signer: P.service,
      log,
      replay: createMemoryReplayGuard({ maxPerOwner: 1 }),
      revocations: createMemoryRevocations(),
    })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 600 })
    const bToAgent = await delegateSpaceToAgent({ space: P.spaceB, agent: P.agent, expiration: now() + 600 })
    const make = (space = P.space, proof = spaceToAgent) =>
      appendInvocation({ agent: P.agent, service: P.service, space: space.did(), entry: new Uint8Array([1]), spaceToAgent: proof })
    expect((await send(server, await (await make()).delegate())).ok).toBeDefined()
    const refused = await send(server, await (await make()).delegate())
    expect(refused.error).toEqual({ name: 'TooManyPendingInvocations', message: expect.stringContaining(P.space.did()) })
    expect(log.calls).toBe(1)
    expect((await send(server, await (await make(P.spaceB, bToAgent)).delegate())).ok).toBeDefined()
    expect(log.calls).toBe(2)
  })
})

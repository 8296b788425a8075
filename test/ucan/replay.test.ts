/** The in-memory replay guard, and the service's behaviour when it is full. */
import { describe, expect, test } from 'vitest'
import {
  ReplayGuardFull,
  createMemoryReplayGuard,
  createUcanService,
  delegateSpaceToAgent,
  appendInvocation,
  createMemoryRevocations,
  createGrantCache,
} from '../../src/ucan/index.js'
import type { API } from '@ucanto/core'
import { RecordingLog, now, principals, send } from './helpers.js'

describe('createMemoryReplayGuard', () => {
  test('runs a task once per id until its expiry, inclusive; then runs it again', async () => {
    let t = 1000
    const guard = createMemoryReplayGuard({ now: () => t })
    let runs = 0
    const task = async () => ++runs
    expect(await guard.once('a', 1010, task)).toBe(1)
    expect(await guard.once('a', 1010, task)).toBe(1)
    t = 1010
    expect(await guard.once('a', 1010, task)).toBe(1)
    t = 1011
    expect(await guard.once('a', 1020, task)).toBe(2)
    expect(await guard.once('b', 1020, task)).toBe(3)
  })

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
    const calls = [guard.once('x', 10, task), guard.once('x', 10, task), guard.once('x', 10, task)]
    release()
    for (const c of calls) await expect(c).rejects.toThrow('boom')
    expect(runs).toBe(1)
    await expect(guard.once('x', 10, async () => 'again')).rejects.toThrow('boom')
  })

  test('a task that throws synchronously is recorded as a rejection', async () => {
    const guard = createMemoryReplayGuard({ now: () => 0 })
    const task = (() => {
      throw new Error('sync')
    }) as unknown as () => Promise<never>
    await expect(guard.once('s', 10, task)).rejects.toThrow('sync')
  })

  test('when full, expired ids are swept; if none expired, once rejects and runs nothing', async () => {
    let t = 0
    const guard = createMemoryReplayGuard({ now: () => t, maxEntries: 2 })
    await guard.once('a', 5, async () => 1)
    await guard.once('b', 100, async () => 2)
    let ran = false
    await expect(guard.once('c', 100, async () => (ran = true))).rejects.toBeInstanceOf(ReplayGuardFull)
    expect(ran).toBe(false)
    t = 6
    expect(await guard.once('c', 100, async () => 3)).toBe(3)
  })

  test('rejects a bad bound at construction', () => {
    expect(() => createMemoryReplayGuard({ maxEntries: 0 })).toThrow(RangeError)
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

describe('service construction and a full guard', () => {
  test('bad options are refused at construction', async () => {
    const P = await principals()
    const log = new RecordingLog()
    expect(() => createUcanService({ signer: P.service, log, maxInvocationLifetime: 0 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxInvocationLifetime: 1.5 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxResponseBytes: -1 })).toThrow(RangeError)
    expect(() => createUcanService({ signer: P.service, log, maxResponseBytes: 2000, maxResponseBytesInFlight: 1000 })).toThrow(RangeError)
  })

  test('a full replay guard fails closed with InternalError and does not append', async () => {
    const P = await principals()
    const log = new RecordingLog()
    const server = createUcanService({
      signer: P.service,
      log,
      replay: createMemoryReplayGuard({ maxEntries: 1 }),
      revocations: createMemoryRevocations(),
    })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 600 })
    const make = () => appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), spaceToAgent })
    expect((await send(server, await (await make()).delegate())).ok).toBeDefined()
    expect((await send(server, await (await make()).delegate())).error?.name).toBe('InternalError')
    expect(log.calls).toBe(1)
  })
})

/**
 * The service clock jumping back or forward (issue 15 item 4). Where a jump is not reachable from
 * outside (the system clock of the test process), in process with an injected or stubbed clock:
 *
 * - token buckets (src/server/rate-limit.ts) measure intervals on a monotonic clock: a wall-clock
 *   jump back does not stall them, a jump forward refills no more than the burst;
 * - the replay guards (memory and SQLite) forget an invocation only as time really passes
 *   (src/ucan/clock.ts forgettingClock): a jump back keeps answering a remembered id, a jump forward
 *   and back does not let a still-valid invocation run twice.
 *
 * Against the real service with its invocation clock (ServiceHooks.ucanClock) jumped: a clock ahead
 * of an invocation's `exp` refuses it (Expired); jumped back, appends are accepted and published
 * again (checkpoint publication runs on monotonic batch timers) and a replay answers the original.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { TokenBuckets } from '../../src/server/rate-limit.js'
import { forgettingClock } from '../../src/ucan/clock.js'
import { createMemoryReplayGuard } from '../../src/ucan/replay.js'
import { UcanStore } from '../../src/ucan/store.js'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { call, manualClock, startTestService, ucanSeconds } from './helpers.js'

const HOUR = 3600
const text = (s: string) => new TextEncoder().encode(s)

afterEach(() => {
  offset = 0
  vi.restoreAllMocks()
})

const realNow = Date.now.bind(Date)
let offset = 0
/** Moves the wall clock (Date.now, stubbed once) `seconds` away from the real time, leaving performance.now alone. */
function jumpWallClock(seconds: number): void {
  offset = seconds
  if (!vi.isMockFunction(Date.now)) vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset * 1000)
}

describe('rate limits: a clock jump neither stalls nor bursts', () => {
  it('an injected clock going back an hour counts as no time elapsed (no stall)', () => {
    let t = 10_000_000
    const b = new TokenBuckets({ rate: 1, burst: 10, now: () => t })
    b.take('k', 10)
    t -= HOUR * 1000
    expect(b.wait('k', 1)).toBe(1) // one token a second from now, not an hour and a second
    t += 1000
    expect(b.wait('k', 1)).toBe(0)
  })

  it('an injected clock jumping forward an hour refills at most the burst', () => {
    let t = 10_000_000
    const b = new TokenBuckets({ rate: 1, burst: 10, now: () => t })
    b.take('k', 10)
    t += HOUR * 1000
    expect(b.wait('k', 10)).toBe(0)
    b.take('k', 10)
    expect(b.wait('k', 1)).toBe(1)
  })

  it('the default clock is monotonic: the wall clock going back an hour stalls nothing', () => {
    jumpWallClock(0) // stubbed before the buckets exist, so a default that captured Date.now would see the jump
    const b = new TokenBuckets({ rate: 1000, burst: 10 })
    b.take('k', 10)
    jumpWallClock(-HOUR)
    expect(b.wait('k', 1)).toBeLessThanOrEqual(0.001)
  })
})

describe('replay guard: a clock jump forgets nothing early', () => {
  for (const kind of ['memory', 'sqlite'] as const) {
    it(`${kind}: a remembered id still answers after the wall clock goes back, and after it jumps forward and back`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ucanlog-clock-'))
      const store = kind === 'sqlite' ? UcanStore.open(join(dir, 'ucan.db')) : undefined
      const guard = store?.replay ?? createMemoryReplayGuard()
      try {
        const now = Math.floor(Date.now() / 1000)
        let runs = 0
        const task = async () => ({ ok: ++runs })
        const key = { owner: 'did:key:space', id: 'bafy-invocation', expiresAt: now + 60 }
        expect(await guard.once(key, task)).toEqual({ ok: 1 })
        store?.replay.admitPending()

        // Back an hour: still remembered (it is remembered until its exp, and exp is further away now).
        jumpWallClock(-HOUR)
        expect(await guard.seen(key.id)).toEqual({ ok: 1 })
        expect(await guard.once(key, task)).toEqual({ ok: 1 })

        // Forward two hours: another invocation triggers a sweep. Without the forgetting clock the
        // sweep deletes our id (its exp has passed on the wall clock)…
        jumpWallClock(2 * HOUR)
        await guard.once({ owner: 'did:key:other', id: 'bafy-other', expiresAt: now + 3 * HOUR }, async () => ({ ok: 0 }))
        store?.replay.admitPending()
        // …and back to the real time: the id, valid again, must still answer its first outcome, not run again.
        jumpWallClock(0)
        expect(await guard.seen(key.id)).toEqual({ ok: 1 })
        expect(await guard.once(key, task)).toEqual({ ok: 1 })
        expect(runs).toBe(1)
      } finally {
        vi.restoreAllMocks()
        store?.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }

  it('forgettingClock follows the wall clock back at once and forward only as monotonic time passes', () => {
    let wall = 1000
    let mono = 0
    const c = forgettingClock(() => wall, () => mono)
    expect(c()).toBe(1000)
    wall = 900 // back
    expect(c()).toBe(900)
    wall = 900 + HOUR // forward an hour, 10 s really elapsed
    mono = 10
    expect(c()).toBe(910)
    wall = 920 // the clock is corrected back: followed
    mono = 20
    expect(c()).toBe(920)
  })
})

describe('the real service with its invocation clock jumped', () => {
  it('forward past exp: Expired; back: appends are accepted and published again, and a replay answers the original', async () => {
    const clock = manualClock()
    const svc = await startTestService({}, { ucanClock: ucanSeconds(clock) })
    try {
      const service = svc.did as API.DID
      const [space, agent] = [await generateKey(), await generateKey()]
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const append = async (entry: string) => (await appendInvocation({ agent, service, space: space.did(), entry: text(entry), spaceToAgent, lifetime: 120 })).delegate()

      const first = await append('before the jump')
      const firstOut = await call(svc.url, first)
      expect(firstOut.ok, JSON.stringify(firstOut.error)).toMatchObject({ index: 0, published: true })

      // Two hours forward: an invocation whose exp is two minutes away (real time) has expired.
      clock.advance(2 * HOUR * 1000)
      expect((await call(svc.url, await append('during the jump'))).error?.name).toBe('Expired')
      expect((await call(svc.url, first)).error?.name).toBe('Expired')

      // Back to half an hour behind real time: accepted, sequenced after the first, published. (More
      // than maxInvocationLifetime − lifetime behind, a fresh invocation's exp would look too far
      // ahead: InvalidExpiry, as it should.)
      clock.advance(-2.5 * HOUR * 1000)
      const second = await call(svc.url, await append('after the jump back'))
      expect(second.ok, JSON.stringify(second.error)).toMatchObject({ index: 1, published: true })
      // The first invocation, valid again on the service's clock, answers its original outcome: not appended twice.
      expect(await call(svc.url, first)).toEqual(firstOut)
      const head = (await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { treeSize: number }
      expect(head.treeSize).toBe(2)
    } finally {
      await svc.stop()
    }
  }, 60_000)
})

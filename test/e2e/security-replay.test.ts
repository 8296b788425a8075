/**
 * The replay guard over HTTP on the real service (issue 8, hole 4): its capacity is per space, so
 * one space filling its share is refused with a named error while every other space appends. (That
 * what it answered survives a crash is security-replay-crash.test.ts: it spawns the built CLI.)
 */
import type * as API from '@ucanto/interface'
import { describe, expect, it } from 'vitest'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import type { Out } from '../ucan/helpers.js'
import { call, manualClock, startTestService, ucanSeconds } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)

describe('replay guard capacity is per space (--replay-per-space)', () => {
  it('space X at its share gets TooManyPendingInvocations; space Y appends; X appends again once its invocations expire', async () => {
    // The service's invocation clock moves only when the test says (no waiting for real seconds).
    const clock = manualClock()
    const svc = await startTestService({ replayPerSpace: 5 }, { ucanClock: ucanSeconds(clock) })
    try {
      const service = svc.did as API.DID
      const [x, xAgent, y, yAgent] = [await generateKey(), await generateKey(), await generateKey(), await generateKey()]
      const xProof = await delegateSpaceToAgent({ space: x, agent: xAgent })
      const yProof = await delegateSpaceToAgent({ space: y, agent: yAgent })
      const appendX = async (entry: string, lifetime: number) =>
        (await appendInvocation({ agent: xAgent, service, space: x.did(), entry: text(entry), spaceToAgent: xProof, lifetime })).delegate()

      // X fills its share of 5 with invocations of 30 s (the service's clock, not real time, expires them below;
      // ucanto checks the invocation's exp on the system clock, so it must not lapse in real time meanwhile).
      const filled: { inv: API.Invocation; out: Out }[] = []
      for (let i = 0; i < 5; i++) {
        const inv = await appendX(`x${i}`, 30)
        const out = await call(svc.url, inv)
        expect(out.ok, JSON.stringify(out.error)).toMatchObject({ index: i })
        filled.push({ inv, out })
      }
      const latestExp = Math.max(...filled.map((f) => f.inv.expiration))

      // The sixth is refused by name, and nothing is appended.
      const refused = await call(svc.url, await appendX('x5', 60))
      expect(refused.error?.name).toBe('TooManyPendingInvocations')
      expect(String(refused.error?.message)).toMatch(/5/)
      expect(((await (await fetch(`${svc.url}/logs/${x.did()}/head`)).json()) as { treeSize: number }).treeSize).toBe(5)
      // A replay of an answered invocation still gets its first answer (it takes no new room).
      expect(await call(svc.url, filled[0]!.inv)).toEqual(filled[0]!.out)

      // Another space, by another agent, is not affected.
      const yOut = await call(svc.url, await (await appendInvocation({ agent: yAgent, service, space: y.did(), entry: text('y0'), spaceToAgent: yProof })).delegate())
      expect(yOut.ok, JSON.stringify(yOut.error)).toMatchObject({ index: 0 })

      // Still full at the earliest exp (an invocation is valid through its exp second: the guard
      // must not forget it early)…
      clock.advance(Math.min(...filled.map((f) => f.inv.expiration)) * 1000 - clock.now())
      expect((await call(svc.url, await appendX('x still full', 60))).error?.name).toBe('TooManyPendingInvocations')
      // …and once X's invocations are past their exp (on the service's clock), its share is free again.
      clock.advance((latestExp + 1) * 1000 - clock.now())
      const again = await call(svc.url, await appendX('x after expiry', 60))
      expect(again.ok, JSON.stringify(again.error)).toMatchObject({ index: 5 })
    } finally {
      await svc.stop()
    }
  }, 20_000)
})

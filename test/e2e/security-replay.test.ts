/**
 * The replay guard over HTTP on the real service (issue 8, hole 4): its capacity is per space, so
 * one space filling its share is refused with a named error while every other space appends; and
 * what it answered survives a crash (SIGKILL right after the answers): a replay appends nothing.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import type { Out } from '../ucan/helpers.js'
import { REPO, call, spawnServe, startTestService } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)

describe('replay guard capacity is per space (--replay-per-space)', () => {
  it('space X at its share gets TooManyPendingInvocations; space Y appends; X appends again once its invocations expire', async () => {
    const svc = await startTestService({ replayPerSpace: 5 })
    try {
      const service = svc.did as API.DID
      const [x, xAgent, y, yAgent] = [await generateKey(), await generateKey(), await generateKey(), await generateKey()]
      const xProof = await delegateSpaceToAgent({ space: x, agent: xAgent })
      const yProof = await delegateSpaceToAgent({ space: y, agent: yAgent })
      const appendX = async (entry: string, lifetime: number) =>
        (await appendInvocation({ agent: xAgent, service, space: x.did(), entry: text(entry), spaceToAgent: xProof, lifetime })).delegate()

      // X fills its share of 5 with short-lived invocations.
      const filled: { inv: API.Invocation; out: Out }[] = []
      for (let i = 0; i < 5; i++) {
        const inv = await appendX(`x${i}`, 2)
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

      // Once X's invocations are past their exp, its share is free again.
      while (Math.floor(Date.now() / 1000) <= latestExp) await new Promise((r) => setTimeout(r, 100))
      const again = await call(svc.url, await appendX('x after expiry', 60))
      expect(again.ok, JSON.stringify(again.error)).toMatchObject({ index: 5 })
    } finally {
      await svc.stop()
    }
  }, 20_000)
})

describe('what the replay guard answered survives a crash', () => {
  const children: ChildProcess[] = []
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL')
  })

  it('SIGKILL right after the answers: every answered invocation, sent again after restart, returns its first answer and appends nothing', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-replay-crash-'))
    const serve = async () => {
      const r = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt')])
      children.push(r.child)
      return r
    }
    try {
      const first = await serve()
      const [space, agent] = [await generateKey(), await generateKey()]
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const invs = await Promise.all(
        Array.from({ length: 8 }, async (_, i) =>
          (await appendInvocation({ agent, service: first.did as API.DID, space: space.did(), entry: text(`crash ${i}`), spaceToAgent })).delegate(),
        ),
      )
      const answers = await Promise.all(invs.map((inv) => call(first.url, inv)))
      first.child.kill('SIGKILL') // at once: nothing gets a chance to flush after the answers
      await new Promise((r) => first.child.once('exit', r))
      for (const a of answers) expect(a.ok).toBeDefined()

      const second = await serve()
      for (const [k, inv] of invs.entries()) expect(await call(second.url, inv)).toEqual(answers[k])
      const head = (await (await fetch(`${second.url}/logs/${space.did()}/head`)).json()) as { treeSize: number }
      expect(head.treeSize).toBe(8)
      second.child.kill('SIGKILL')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 30_000)
})

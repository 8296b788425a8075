/**
 * The replay guard over HTTP on the real service (issue 8, hole 4): what it answered survives a crash
 * (SIGKILL of `ucanlog serve` right after the answers), so a replay after restart appends nothing.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, call, spawnServe } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)


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

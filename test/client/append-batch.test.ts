/**
 * src/client/append-batch.ts as a library against a real service on loopback: a journal whose
 * unanswered invocations have expired (the clock moved past their `exp`) is resumed by looking the
 * entries up in the log: the ones the service did append are found (not appended again), the one
 * it never saw is signed anew and appended, so each entry is in the log exactly once.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { describe, expect, it } from 'vitest'
import { type AppendBatchError, JOURNAL_INVOCATION_LIFETIME, RESEND_MARGIN, appendBatch, sendRetrying } from '../../src/client/append-batch.js'
import { ServiceUnreachableError } from '../../src/client/errors.js'
import { entriesFromArguments } from '../../src/client/entries.js'
import { Journal } from '../../src/client/journal.js'
import { connect, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { manualClock, startTestService, ucanSeconds } from '../e2e/helpers.js'
import { counts, readLog } from '../cli/append-helpers.js'
import { startFaultProxy } from '../cli/fault-proxy.js'

describe('appendBatch with a journal', () => {
  it('resumes expired, unanswered invocations by a lookup in the log: found ones are not appended again, the lost one is', async () => {
    const clock = manualClock()
    const now = ucanSeconds(clock)
    const svc = await startTestService({}, { ucanClock: now })
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-batch-'))
    const never = Buffer.from('never arrives').toString('base64')
    // The service runs "kept-*" appends but their answers are lost; "never arrives" never reaches it.
    const proxy = await startFaultProxy(svc.url, (n, body) => (n === 1 ? 'pass' : body.includes(never.slice(0, 8)) ? 'drop-request' : 'drop-answer'))
    try {
      const space = await generateKey()
      const agent = await generateKey()
      const service = svc.did as API.DID
      const agentToService = await delegateAgentToService({ agent, service, proofs: [await delegateSpaceToAgent({ space, agent })] })
      const entries = entriesFromArguments(['kept-0', 'never arrives', 'kept-2'])
      const base = { agent, service, space: space.did(), agentToService, now }
      const path = join(dir, 'j.journal')

      const j1 = await Journal.open(path)
      const first = await appendBatch(entries, { ...base, connection: connect(proxy.url, service), journal: j1 }).catch((e: unknown) => e)
      await j1.close()
      expect(first).toBeInstanceOf(ServiceUnreachableError)
      expect((first as AppendBatchError).summary).toMatchObject({ appended: 0, alreadyAppended: 0 })
      expect([...counts(await readLog(svc.url, svc.did, space.did())).keys()].sort()).toEqual(['kept-0', 'kept-2'])

      // Past every recorded invocation's exp (and the margin): they can no longer be resent.
      clock.advance((JOURNAL_INVOCATION_LIFETIME + RESEND_MARGIN + 5) * 1000)
      const j2 = await Journal.open(path)
      const statuses: string[] = []
      const second = await appendBatch(entries, { ...base, connection: connect(svc.url, service), journal: j2, onOutcome: (o) => statuses.push(`${o.line}:${o.status}`) })
      await j2.close()
      expect(second).toMatchObject({ entries: 3, appended: 1, alreadyAppended: 2, refused: [] })
      expect(statuses.sort()).toEqual(['1:already-appended', '2:appended', '3:already-appended'])
      const c = counts(await readLog(svc.url, svc.did, space.did(), now() - Math.floor(Date.now() / 1000) + 300))
      expect(Object.fromEntries(c)).toEqual({ 'kept-0': 1, 'never arrives': 1, 'kept-2': 1 })
    } finally {
      await proxy.close()
      await svc.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('sendRetrying', () => {
  it('resends the same request after RateLimited or InvocationPending, and returns any other answer at once', async () => {
    const answers = [
      [{ out: { error: { name: 'InvocationPending', message: 'another instance runs it' } } }],
      [{ out: { error: { name: 'RateLimited', message: 'slow down' } } }],
      [{ out: { ok: { index: 7 } } }],
    ]
    let sent = 0
    const got = await sendRetrying(() => answers[sent++])
    expect(sent).toBe(3)
    expect(got).toEqual([{ out: { ok: { index: 7 } } }])
    sent = 0
    const refused = [{ out: { error: { name: 'Expired', message: 'too late' } } }]
    expect(await sendRetrying(() => (sent++, refused))).toBe(refused)
    expect(sent).toBe(1)
  }, 20_000)
})

/**
 * `ucan/revoke` with several `ucanlog serve` instances on one PostgreSQL database (issue 14): the
 * revocation log is one log written under one lease, so revocations reaching both instances — at
 * once, in turn, and the same UCAN at both at once — must each be answered once and recorded in
 * the revocation log exactly once, in force at both (an append under a revoked delegation is
 * refused `Revoked` by either), the log auditing clean as either serves it. Before revocations
 * were forwarded to the revocation log's holder, the instance without it waited for its lease and,
 * under a steady load at both, refused some with an InternalError (LeaseHeld after two leases).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { parsePolicy } from '../../src/tlog/index.js'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, revokeInvocation, type Key } from '../../src/ucan/index.js'
import { PgRevocations } from '../../src/ucan/pg-revocations.js'
import { call } from '../e2e/helpers.js'
import { usePostgres } from '../helpers/postgres.js'
import { servePg, shareKeys, type ServedInstance } from './serve-helpers.js'

const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** An agent holding `tlog/append` on its space through the service: the delegation a revocation takes back. */
interface Grant {
  agent: Key
  space: Key
  agentToService: API.Delegation
}

async function grant(service: string): Promise<Grant> {
  const [space, agent] = [await generateKey(), await generateKey()]
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  return { agent, space, agentToService: await delegateAgentToService({ agent, service: service as API.DID, proofs: [spaceToAgent] }) }
}

/** The agent revokes its Agent→Service delegation at `s`: the outcome. */
async function revoke(s: ServedInstance, g: Grant) {
  return call(s.url, await revokeInvocation({ issuer: g.agent, service: s.did as API.DID, ucan: g.agentToService }).delegate())
}

/** An append under the grant at `s`: the outcome. */
async function append(s: ServedInstance, g: Grant) {
  const inv = await appendInvocation({ agent: g.agent, service: s.did as API.DID, space: g.space.did(), entry: new TextEncoder().encode('after revoke'), agentToService: g.agentToService })
  return call(s.url, await inv.delegate())
}

/** Requests an instance forwarded to another (ucanlog_forwarded_requests_total, every result). */
async function forwarded(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith('ucanlog_forwarded_requests_total{'))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0)
}

/** The revocation log's entries as `s` serves them, once its published size is at least `n` (or after 10 s): "<ucan> <scope>" sorted. */
async function loggedOnce(s: ServedInstance, n: number): Promise<string[]> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const page = (await (await fetch(`${s.url}/revocations/entries?since=0&limit=1000`)).json()) as Entries
    if (page.treeSize >= n || Date.now() > deadline) return page.entries.map((e) => `${e.ucan} ${e.scope}`).sort()
    await new Promise((r) => setTimeout(r, 100))
  }
}

interface Entries {
  treeSize: number
  entries: { index: number; ucan: string; scope: string }[]
}

describe('ucan/revoke at two serve instances on one database', () => {
  it('revocations at both, at once and in turn: each answered once, recorded once in the revocation log (audit clean), Revoked at both', async () => {
    const url = await postgres.server().database()
    const dirs = [await mkdtemp(join(tmpdir(), 'ucanlog-pg-rev-a-')), await mkdtemp(join(tmpdir(), 'ucanlog-pg-rev-b-'))]
    try {
      const args = ['--revoke-rate', '0']
      const a = await servePg(dirs[0]!, url, [], children, args)
      await shareKeys(dirs[0]!, dirs[1]!)
      const b = await servePg(dirs[1]!, url, [], children, args)
      const both = [a, b]
      const AT_ONCE = 96
      const IN_TURN = 8
      const grants = await Promise.all(Array.from({ length: AT_ONCE + IN_TURN + 1 }, () => grant(a.did)))

      // At once: a steady load at both instances (4 clients each, each sending its next revocation
      // as soon as the last is answered), so the revocation log is never idle at either.
      const atOnce: Awaited<ReturnType<typeof revoke>>[] = []
      let next = 0
      const client = async (s: ServedInstance) => {
        while (next < AT_ONCE) atOnce.push(await revoke(s, grants[next++]!))
      }
      await Promise.all([a, b, a, b, a, b, a, b].map(client))
      // In turn: one at a time, alternating.
      const inTurn = []
      for (const [i, g] of grants.slice(AT_ONCE, AT_ONCE + IN_TURN).entries()) inTurn.push(await revoke(both[i % 2]!, g))
      // The same delegation revoked at both at once (two invocations): one record.
      const same = await Promise.all(both.map((s) => revoke(s, grants.at(-1)!)))
      const outs = [...atOnce, ...inTurn, ...same]
      expect(outs.map((o) => o.error?.name ?? 'ok')).toEqual(outs.map(() => 'ok'))
      expect(same.filter((o) => (o.ok as { alreadyRevoked?: boolean }).alreadyRevoked === true)).toHaveLength(1)
      const indexes = outs.map((o) => (o.ok as { index?: number }).index)
      expect(indexes.every((i) => i !== undefined)).toBe(true)
      expect(new Set(indexes).size).toBe(grants.length) // the two answers for the last grant name one entry

      // The instance not writing the revocation log sent its revocations on to the one writing it.
      expect((await Promise.all(both.map((s) => forwarded(s.url)))).reduce((x, y) => x + y)).toBeGreaterThan(0)

      // In force at both instances.
      for (const g of grants) for (const s of both) expect((await append(s, g)).error?.name).toBe('Revoked')

      // The revocation log, as either instance serves it once published: every revocation once.
      const want = grants.map((g) => `${g.agentToService.cid.toString()} ${g.agent.did()}`).sort()
      for (const s of both) {
        let page: Entries
        for (;;) {
          page = (await (await fetch(`${s.url}/revocations/entries?since=0&limit=1000`)).json()) as Entries
          if (page.treeSize >= grants.length) break
          await new Promise((r) => setTimeout(r, 100))
        }
        expect(page.treeSize).toBe(grants.length)
        expect(page.entries.map((e) => `${e.ucan} ${e.scope}`).sort()).toEqual(want)
        const head = (await (await fetch(`${s.url}/revocations/head`)).json()) as { origin: string; vkey: string }
        const info = (await (await fetch(`${s.url}/info`)).json()) as { witnessPolicy: string }
        const fetchFile = async (p: string) => {
          const res = await fetch(`${s.url}/revocations/${p}`)
          return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
        }
        const report = await auditLog({ fetchFile, origin: head.origin, logVkey: head.vkey, policy: parsePolicy(info.witnessPolicy) })
        expect(report.size).toBe(grants.length)
      }
      const pool = postgres.pool(url)
      const rows = await pool.query<{ n: number; logged: number; distinct: number }>('SELECT count(*)::int AS n, count(log_index)::int AS logged, count(DISTINCT log_index)::int AS distinct FROM ucan_revocations')
      expect(rows.rows[0]).toEqual({ n: grants.length, logged: grants.length, distinct: grants.length })
    } finally {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    }
  })
  it('a revocation recorded but never appended (its instance refused or died between the two) is appended once by the next writer of the revocation log', async () => {
    const url = await postgres.server().database()
    const dirs = [await mkdtemp(join(tmpdir(), 'ucanlog-pg-rev-a-')), await mkdtemp(join(tmpdir(), 'ucanlog-pg-rev-b-'))]
    try {
      const a = await servePg(dirs[0]!, url, [], children)
      await shareKeys(dirs[0]!, dirs[1]!)
      const b = await servePg(dirs[1]!, url, [], children)
      const [pending, later] = [await grant(a.did), await grant(a.did)]
      // Fault injection: the row an instance commits first (in force everywhere), its append never made.
      const pool = postgres.pool(url)
      const unsent = await revokeInvocation({ issuer: pending.agent, service: a.did as API.DID, ucan: pending.agentToService }).delegate()
      const store = new PgRevocations(pool, () => Math.floor(Date.now() / 1000))
      const record = { ucan: pending.agentToService.cid.toString(), scope: pending.agent.did(), revoker: pending.agent.did(), invocation: unsent.cid.toString(), time: Math.floor(Date.now() / 1000) }
      expect(await store.record(record)).toMatchObject({ created: true, index: undefined })
      for (const s of [a, b]) expect((await append(s, pending)).error?.name).toBe('Revoked')

      // Another revocation, once the revocation log was let go (idle): its writer appends both.
      const free = async () => (await pool.query(`SELECT count(*)::int AS n FROM log_leases WHERE log_id = 'service:revocations' AND expires_at > now()`)).rows[0].n === 0
      while (!(await free())) await new Promise((r) => setTimeout(r, 100))
      expect((await revoke(b, later)).error).toBeUndefined()
      const want = [pending, later].map((g) => `${g.agentToService.cid.toString()} ${g.agent.did()}`).sort()
      for (const s of [a, b]) expect(await loggedOnce(s, 2)).toEqual(want)
      const rows = await pool.query('SELECT count(*)::int AS n FROM ucan_revocations WHERE log_index IS NULL')
      expect(rows.rows[0].n).toBe(0)
    } finally {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    }
  })
})

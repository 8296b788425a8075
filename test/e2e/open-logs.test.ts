/**
 * Issue 8, hole 3: logs were never closed. Each open log holds file descriptors (its CAR index,
 * SQLite + WAL); a client creating logs with fresh keys, or anonymous checkpoint GETs of many logs
 * after a restart, used them all up, and then every user's append failed with InternalError.
 *
 * The built CLI runs as a real process under a low descriptor limit (`ulimit -n`). A stranger
 * creates many logs from fresh keys and fetches every checkpoint anonymously (before and after a
 * restart); an existing log's agent must keep appending, and the stranger gets only named refusals.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, manualClock, spawnServe, startTestService } from './helpers.js'

const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

const MAX_FDS = 192
const LOGS = 64
const text = (s: string) => new TextEncoder().encode(s)

async function serve(dataDir: string): Promise<{ url: string; did: string; child: ChildProcess }> {
  const r = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt')], 'ignore', {
    nofile: MAX_FDS,
    // Env vars, not flags, so the same test runs on a build without these knobs.
    // One test address plays every client (and the bundled witness calls back over loopback), so it
    // may use every connection the descriptor budget allows (67 under this limit), not a quarter.
    env: { UCANLOG_MAX_OPEN_LOGS: '16', UCANLOG_MAX_CONNECTIONS_PER_CLIENT: '64', UCANLOG_LOG_CREATE_RATE: '1000', UCANLOG_LOG_CREATE_BURST: '1000', UCANLOG_BATCH_MAX_AGE_MS: '5' },
  })
  children.push(r.child)
  return r
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((ok) => child.once('exit', ok))
  child.kill('SIGTERM')
  await exited
}

/** Runs `task` over `items` with at most `n` at a time. */
async function pool<T, R>(items: T[], n: number, task: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await task(items[i]!)
      }
    }),
  )
  return out
}

/** Counts of each outcome name. */
function tally(names: string[]): Record<string, number> {
  const t: Record<string, number> = {}
  for (const n of names) t[n] = (t[n] ?? 0) + 1
  return t
}

describe('open logs are bounded (server under ulimit -n)', () => {
  it("a stranger's fresh-key logs and anonymous checkpoint GETs never make an existing log's appends fail", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-openlogs-'))
    try {
      let { url, did, child } = await serve(dataDir)
      const space = await generateKey()
      const agent = await generateKey()
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const legit = async (n: number) => {
        const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: text(`legit ${n}`), spaceToAgent })
        const out = (await connect(`${url}/rpc`, did as API.DID).execute(inv))[0]!.out as { ok?: { index: number }; error?: { name: string; message: string } }
        return out.ok ? 'ok' : `${out.error?.name}: ${out.error?.message}`
      }
      expect(await legit(0)).toBe('ok')

      // A stranger: one fresh space and agent per log, one entry each (so each has a checkpoint).
      const strangers = await Promise.all(
        Array.from({ length: LOGS }, async () => {
          const s = await generateKey()
          const a = await generateKey()
          return { s, a, d: await delegateSpaceToAgent({ space: s, agent: a }) }
        }),
      )
      const created = await pool(strangers, 8, async ({ s, a, d }) => {
        const inv = await appendInvocation({ agent: a, service: did as API.DID, space: s.did(), entry: text('stranger'), spaceToAgent: d })
        try {
          const out = (await connect(`${url}/rpc`, did as API.DID).execute(inv))[0]!.out as { ok?: unknown; error?: { name: string } }
          return out.ok ? 'ok' : out.error!.name
        } catch (err) {
          return `transport: ${(err as Error).message}`
        }
      })
      const checkpoints = async () =>
        pool(strangers, 8, async ({ s }) => {
          try {
            const res = await fetch(`${url}/logs/${s.did()}/checkpoint`)
            await res.arrayBuffer()
            return res.status === 503 ? `503 retry-after=${res.headers.get('retry-after') !== null}` : String(res.status)
          } catch (err) {
            return `transport: ${(err as Error).message}`
          }
        })
      const before = await checkpoints()
      const afterFlood = await legit(1)

      // Restart: anonymous GETs of every checkpoint must not reopen every log.
      await stop(child)
      ;({ url, did, child } = await serve(dataDir))
      const afterRestart = await checkpoints()
      const afterGets = await legit(2)
      const health = (await fetch(`${url}/healthz`)).status

      const named = new Set(['ok', 'TooManyOpenLogs', 'LogCreationLimited'])
      expect({
        strangerAppends: Object.keys(tally(created)).filter((k) => !named.has(k)),
        checkpointsBefore: tally(before),
        checkpointsAfterRestart: tally(afterRestart),
        afterFlood,
        afterGets,
        health,
      }).toEqual({
        strangerAppends: [],
        checkpointsBefore: { '200': LOGS },
        checkpointsAfterRestart: { '200': LOGS },
        afterFlood: 'ok',
        afterGets: 'ok',
        health: 200,
      })
      // The legit log's appends were never refused, and the stranger's were mostly served.
      expect(tally(created).ok ?? 0).toBeGreaterThan(0)
      await stop(child)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

describe('log creation is limited per client address (over HTTP)', () => {
  it('a client over its creation rate gets LogCreationLimited, the refused append is not consumed, and existing logs still append', async () => {
    // The creation limit runs on a clock the test moves: a refill happens when the test says, not when the machine is slow.
    const clock = manualClock()
    const svc = await startTestService({ logCreateRate: 1, logCreateBurst: 2 }, { limitsClock: clock.now })
    try {
      const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
      const parties = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const s = await generateKey()
          const a = await generateKey()
          return { s, a, d: await delegateSpaceToAgent({ space: s, agent: a }) }
        }),
      )
      const invs = await Promise.all(
        parties.map(({ s, a, d }) => appendInvocation({ agent: a, service: svc.did as API.DID, space: s.did(), entry: text('x'), spaceToAgent: d })),
      )
      const outcome = async (inv: (typeof invs)[number]) => {
        const out = (await conn.execute(inv))[0]!.out as { ok?: unknown; error?: { name: string } }
        return out.ok ? 'ok' : out.error!.name
      }
      // The burst (2) creates two logs; the third creation from this address is refused, by name.
      expect([await outcome(invs[0]!), await outcome(invs[1]!), await outcome(invs[2]!)]).toEqual(['ok', 'ok', 'LogCreationLimited'])
      // Appending to a log that exists is not a creation: still served.
      const again = await appendInvocation({ agent: parties[0]!.a, service: svc.did as API.DID, space: parties[0]!.s.did(), entry: text('y'), spaceToAgent: parties[0]!.d })
      expect(await outcome(again)).toBe('ok')
      // After the bucket refills (1 log/s), the SAME refused invocation succeeds: it was not consumed.
      // Still refused while the clock stands still; one second later (1 log/s) the bucket has one
      // token and the SAME refused invocation succeeds: it was not consumed.
      expect(await outcome(invs[2]!)).toBe('LogCreationLimited')
      clock.advance(1000)
      expect(await outcome(invs[2]!)).toBe('ok')
    } finally {
      await svc.stop()
    }
  })
})

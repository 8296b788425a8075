/**
 * Issue 8, hole 9: broken state must show. A log whose stored state is damaged (a corrupted
 * `checkpoint`, a truncated hash tile) used to leave `/healthz` at ok while every request for it was
 * a bare 500, and each retry then failed with "database is locked" (the failed open left the CAR
 * index open). Now the damage is found (at start, in the background, and at open), `/healthz` is 503
 * naming each damaged log and file, the log says what is wrong and where, requests for that log get
 * a named error, and the other logs are served as before.
 */
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { startService } from '../../src/server/service.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey, readInvocation, type Key } from '../../src/ucan/index.js'
import { REPO, startTestService } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)
const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

interface Party {
  space: Key
  agent: Key
  spaceToAgent: API.Delegation
}
async function party(): Promise<Party> {
  const space = await generateKey()
  const agent = await generateKey()
  return { space, agent, spaceToAgent: await delegateSpaceToAgent({ space, agent }) }
}

async function append(url: string, did: string, p: Party, entry: string): Promise<string> {
  const inv = await appendInvocation({ agent: p.agent, service: did as API.DID, space: p.space.did(), entry: text(entry), spaceToAgent: p.spaceToAgent })
  const out = (await connect(`${url}/rpc`, did as API.DID).execute(inv))[0]!.out as { ok?: unknown; error?: { name: string } }
  return out.ok ? 'ok' : out.error!.name
}

async function read(url: string, did: string, p: Party): Promise<string> {
  const inv = readInvocation({ issuer: p.agent, service: did as API.DID, space: p.space.did() })
  const out = (await connect(`${url}/rpc`, did as API.DID).execute(inv))[0]!.out as { ok?: { total: number }; error?: { name: string } }
  return out.ok ? `ok total=${out.ok.total}` : out.error!.name
}

describe('damaged logs show and do not take the service down', () => {
  it('a corrupted checkpoint and a truncated tile: /healthz 503 naming each, named errors for them, the other log served', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-damaged-'))
    dirs.push(dataDir)
    const [a, b, c] = [await party(), await party(), await party()]
    const first = await startTestService({ dataDir })
    for (const p of [a, b, c]) for (let i = 0; i < 3; i++) expect(await append(first.url, first.did, p, `entry ${i}`)).toBe('ok')
    await first.stop()

    // Damage, in the stopped service's data directory.
    const logDir = (p: Party) => join(dataDir, 'logs', p.space.did())
    const cpA = join(logDir(a), 'checkpoint')
    await writeFile(cpA, (await readFile(cpA, 'utf8')).replace(/\n\d+\n/, '\n7\n')) // size changed: the signature no longer verifies
    const tileB = join(logDir(b), 'tile', '0', '000.p', '3')
    await truncate(tileB, 40)

    const lines: string[] = []
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) })
    const svc = await startService(
      { port: 0, dataDir, witnessPolicyFile: join(REPO, 'witness_policy.txt'), batchMaxAgeMs: 20, witnessTimeoutMs: 10_000 },
      logger,
    )
    try {
      // The start-up check runs in the background: poll until it reports both logs (a generous 30 s
      // bound; the assertions below say what was missing).
      let health: { status: number; body: string } = { status: 0, body: '' }
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        const res = await fetch(`${svc.url}/healthz`)
        health = { status: res.status, body: await res.text() }
        if (health.body.includes(a.space.did()) && health.body.includes(b.space.did())) break
        await new Promise((r) => setTimeout(r, 50))
      }
      const getA = await fetch(`${svc.url}/logs/${a.space.did()}/checkpoint`)
      const tileGetB = await fetch(`${svc.url}/logs/${b.space.did()}/tile/0/000.p/3`)
      const observed = {
        healthStatus: health.status,
        healthNamesA: health.body.includes(a.space.did()) && health.body.includes('"path":"checkpoint"'),
        healthNamesB: health.body.includes(b.space.did()) && health.body.includes('"path":"tile/0/000.p/3"'),
        checkpointA: `${getA.status} ${(await getA.text()).trim()}`,
        tileB: tileGetB.status,
        appendA: await append(svc.url, svc.did, a, 'more'),
        appendA2: await append(svc.url, svc.did, a, 'more'),
        readA: await read(svc.url, svc.did, a),
        appendB: await append(svc.url, svc.did, b, 'more'),
        appendC: await append(svc.url, svc.did, c, 'more'),
        readC: await read(svc.url, svc.did, c),
        checkpointC: (await fetch(`${svc.url}/logs/${c.space.did()}/checkpoint`)).status,
      }
      const log = lines.join('')
      expect({
        ...observed,
        loggedPathA: log.includes(cpA),
        loggedPathB: log.includes(tileB),
        databaseLocked: log.includes('database is locked'),
      }).toEqual({
        healthStatus: 503,
        healthNamesA: true,
        healthNamesB: true,
        checkpointA: expect.stringMatching(/^503 /),
        tileB: 503,
        appendA: 'LogUnavailable',
        appendA2: 'LogUnavailable',
        readA: 'LogUnavailable',
        appendB: 'LogUnavailable',
        appendC: 'ok',
        readC: 'ok total=4',
        checkpointC: 200,
        loggedPathA: true,
        loggedPathB: true,
        databaseLocked: false,
      })
      const body = JSON.parse(health.body) as { status: string; logs: { log: string; path: string; problem: string }[] }
      expect(body.status).toBe('degraded')
      expect(body.logs.map((l) => l.log).sort()).toEqual([a.space.did(), b.space.did()].sort())
    } finally {
      await svc.close()
    }
  })
})

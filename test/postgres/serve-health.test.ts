/**
 * The service on PostgreSQL when the database goes away (in process: the real service, the bundled
 * witness over loopback, a real PostgreSQL server stopped under it): `/healthz` turns from
 * `{"status":"ok","database":"ok"}` to 503 naming `DatabaseUnavailable` with Retry-After, and the
 * read routes answer 503 + Retry-After, never a stack trace or a 500. When the database comes back,
 * the same process recovers without a restart: `/healthz` is ok again, reads are served, and the
 * log takes appends again, consistent with what was acknowledged before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestService } from '../e2e/helpers.js'
import { newWriter } from '../e2e/read-helpers.js'
import { type PostgresServer, startPostgres } from '../helpers/postgres.js'

describe('serve on PostgreSQL: the database goes away', () => {
  let server: PostgresServer
  let svc: Awaited<ReturnType<typeof startTestService>>
  beforeAll(async () => {
    server = await startPostgres()
    svc = await startTestService({ databaseUrl: await server.database(), databaseTimeoutMs: 2000 })
  }, 60_000)
  afterAll(async () => {
    await svc?.stop()
    await server?.stop()
  })

  it('reports DatabaseUnavailable at /healthz and 503 + Retry-After on reads; recovers without a restart when the database is back', async () => {
    const writer = await newWriter(4)
    const done = await writer.append(svc.url, svc.did, [new TextEncoder().encode('before')])
    expect(done[0]).toMatchObject({ index: 0 })
    const ok = await fetch(`${svc.url}/healthz`)
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ status: 'ok', database: 'ok' })
    expect((await fetch(`${svc.url}/logs/${writer.space}/tile/entries/000.p/1`)).status).toBe(200)

    await server.halt()
    // The health answer is reused for a second: ask until the check has met the stopped server.
    let health: Response
    for (;;) {
      health = await fetch(`${svc.url}/healthz`)
      if (health.status !== 200) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(health.status).toBe(503)
    expect(health.headers.get('retry-after')).toBe('1')
    expect(await health.json()).toMatchObject({ status: 'degraded', database: 'DatabaseUnavailable' })

    // (The open log still answers its checkpoint from memory; files and the list come from the database.)
    for (const path of [`/logs/${writer.space}/tile/entries/000.p/1`, '/logs.txt']) {
      const read = await fetch(`${svc.url}${path}`)
      expect(read.status, path).toBe(503)
      expect(read.headers.get('retry-after')).toBe('1')
      expect(await read.text()).toBe('database unavailable; retry later\n')
    }
    // An append meanwhile is refused, not acknowledged: the RPC route answers 503 once the health
    // check has seen the database gone, or the append's receipt names DatabaseUnavailable.
    const refused = await writer.append(svc.url, svc.did, [new TextEncoder().encode('while down')]).catch((err: unknown) => err as Error)
    expect(refused).toBeInstanceOf(Error)
    expect(String((refused as Error).message)).toMatch(/→ 503$|^append refused: \{"name":"DatabaseUnavailable"/)

    // The database comes back (crash recovery): the same process serves again, no restart.
    await server.resume()
    for (;;) {
      health = await fetch(`${svc.url}/healthz`)
      if (health.status === 200) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(await health.json()).toEqual({ status: 'ok', database: 'ok' })
    expect((await fetch(`${svc.url}/logs/${writer.space}/tile/entries/000.p/1`)).status).toBe(200)
    const after = await writer.append(svc.url, svc.did, [new TextEncoder().encode('after')])
    expect(after[0]).toMatchObject({ index: 1 })
    const list = await fetch(`${svc.url}/logs.txt`)
    expect(list.status).toBe(200)
  })
})

/**
 * The service's side of witnessing, over HTTP: `GET /logs.txt` in the witness network's log-list
 * format (parsed back by the witness's own parser), the bundled witness's counters on the service's
 * `/metrics`, and the `--witness-greedy` knob.
 */
import type * as API from '@ucanto/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, resolveConfig } from '../../src/server/config.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { COSIGNATURES_METRIC, parseLogList, REQUESTS_METRIC } from '../../witness/index.js'
import { startTestService } from './helpers.js'

let svc: Awaited<ReturnType<typeof startTestService>>
beforeAll(async () => {
  svc = await startTestService({ witnessGreedy: true })
})
afterAll(async () => {
  await svc?.stop()
})

describe('service witnessing surface', () => {
  it('lists every log at /logs.txt (logs/v0, origin = key name), and counts the bundled witness on /metrics', async () => {
    // Before any space log: only the service's revocation log (witnessed like every log).
    const empty = await fetch(`${svc.url}/logs.txt`)
    expect([empty.status, empty.headers.get('content-type')]).toEqual([200, 'text/plain; charset=utf-8'])
    const revocations = parseLogList(await empty.text())
    expect(revocations.logs).toHaveLength(1)
    expect(revocations.logs[0]!.origin).toBe('ucanlog/revocations')
    expect(revocations.logs[0]!.vkey).toBe(((await (await fetch(`${svc.url}/revocations/head`)).json()) as { vkey: string }).vkey)

    const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
    const agent = await generateKey()
    const spaces = [await generateKey(), await generateKey()]
    for (const space of spaces) {
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: new TextEncoder().encode('x'), spaceToAgent })
      expect(((await conn.execute(inv))[0]!.out as { ok?: { published: boolean } }).ok?.published).toBe(true)
    }

    const list = parseLogList(await (await fetch(`${svc.url}/logs.txt`)).text())
    expect(list.skipped).toEqual([])
    const heads = await Promise.all(spaces.map(async (s) => (await (await fetch(`${svc.url}/logs/${s.did()}/head`)).json()) as { origin: string; vkey: string }))
    expect(list.logs).toEqual([revocations.logs[0], ...heads.map((h) => ({ origin: h.origin, vkey: h.vkey })).sort((a, b) => (a.origin < b.origin ? -1 : 1))])

    const metrics = await (await fetch(`${svc.url}/metrics`)).text()
    expect(metrics).toContain(`${REQUESTS_METRIC}{status="200"} 2\n`)
    expect(metrics).toContain(`${COSIGNATURES_METRIC} 2\n`)
    expect((await fetch(`${svc.url}/witness/metrics`)).status).toBe(404) // one /metrics per process
  })

  it('--witness-greedy is a switch, UCANLOG_WITNESS_GREEDY true/false/1/0, default false', () => {
    expect(resolveConfig({}, {}).witnessGreedy).toBe(false)
    expect(resolveConfig({ witnessGreedy: 'true' }, {}).witnessGreedy).toBe(true)
    expect(resolveConfig({}, { UCANLOG_WITNESS_GREEDY: '1' }).witnessGreedy).toBe(true)
    expect(resolveConfig({ witnessGreedy: 'false' }, { UCANLOG_WITNESS_GREEDY: '1' }).witnessGreedy).toBe(false)
    expect(() => resolveConfig({}, { UCANLOG_WITNESS_GREEDY: 'yes' })).toThrow(ConfigError)
    expect(() => resolveConfig({}, { UCANLOG_WITNESS_GREEDY: 'yes' })).toThrow('--witness-greedy / UCANLOG_WITNESS_GREEDY must be true, false, 1 or 0, got "yes"')
  })
})

/** The witness's Prometheus counters (GET /metrics): requests by status and cosignatures issued. */
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { COSIGNATURES_METRIC, REQUESTS_METRIC, SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import { CP1, CP3, note, PROOF_1_3, WITNESS } from '../vectors/litewitness.js'
import { litewitnessStore, request, startWitness, witnessSeed } from './helpers.js'
import type { Running } from './helpers.js'

let running: Running | undefined
let store: SqliteWitnessStore | undefined
afterEach(async () => {
  await running?.close()
  store?.close()
  running = undefined
})

describe('witness metrics', () => {
  it('counts add-checkpoint requests by status and the cosignatures issued, over HTTP', async () => {
    store = litewitnessStore()
    running = await startWitness(store)
    const statuses: number[] = []
    for (const body of [request(0, [], note(CP1)), request(0, [], note(CP1)), 'garbage', request(1, [], note(CP3)), request(1, PROOF_1_3, note(CP3))]) {
      const r = await running.post(body)
      statuses.push(r.status)
      await r.arrayBuffer()
    }
    expect(statuses).toEqual([200, 409, 400, 422, 200])
    const get = await fetch(`${running.url}/add-checkpoint`)
    expect(get.status).toBe(405)
    await get.arrayBuffer()

    const res = await fetch(`${running.url}/metrics`)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    for (const [status, n] of [['200', 2], ['400', 1], ['405', 1], ['409', 1], ['422', 1]] as const) {
      expect(text).toContain(`${REQUESTS_METRIC}{status="${status}"} ${n}\n`)
    }
    expect(text).toContain(`${COSIGNATURES_METRIC} 2\n`)
  })

  it("registers in the host's registry (reusing counters), and can leave /metrics to the host", async () => {
    store = new SqliteWitnessStore(':memory:')
    const registry = new Registry()
    const witness = new Witness({ name: WITNESS.name, seed: witnessSeed, store })
    const a = witnessApp(witness, { registry, metricsPage: false })
    witnessApp(witness, { registry }) // a second app on the same registry shares the counters
    expect((await a.request('/metrics')).status).toBe(404)
    expect((await a.request('/add-checkpoint', { method: 'POST', body: 'x' })).status).toBe(400)
    expect(await registry.metrics()).toContain(`${REQUESTS_METRIC}{status="400"} 1\n`)
    expect(registry.getMetricsAsArray().map((m) => m.name).sort()).toEqual([REQUESTS_METRIC, COSIGNATURES_METRIC])
  })
})

/** The witness's HTTP surface: methods, the status page, and the 500 mapping. */
import { afterEach, describe, expect, it } from 'vitest'
import { SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import type { WitnessStore } from '../../witness/index.js'
import { CP1, LOG, note, WITNESS } from '../vectors/litewitness.js'
import { litewitnessStore, request, startWitness, witnessSeed } from './helpers.js'
import type { Running } from './helpers.js'

let running: Running | undefined
let store: SqliteWitnessStore | undefined
afterEach(async () => {
  await running?.close()
  store?.close()
  running = undefined
})

describe('witness HTTP', () => {
  it('answers 405 with Allow: POST for other methods on /add-checkpoint', async () => {
    store = litewitnessStore()
    running = await startWitness(store)
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const res = await fetch(`${running.url}/add-checkpoint`, { method })
      expect(res.status, method).toBe(405)
      expect(res.headers.get('allow')).toBe('POST')
      await res.arrayBuffer()
    }
  })

  it('serves an escaped HTML status page with the name, vkey and each log', async () => {
    store = litewitnessStore()
    store.addLog('evil.example/<script>alert("x")</script>&')
    running = await startWitness(store)
    expect((await running.post(request(0, [], note(CP1)))).status).toBe(200)
    const res = await fetch(`${running.url}/`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await res.text()
    expect(html).toContain(WITNESS.name)
    expect(html).toContain(WITNESS.vkey)
    expect(html).toContain(LOG.origin)
    expect(html).toContain('<td>1</td>')
    expect(html).toContain('KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')
    expect(html).not.toContain('<script>')
    expect(html).toContain('evil.example/&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#38;')
    expect(html).toContain('disabled')
  })

  it('can hide the status page', async () => {
    store = litewitnessStore()
    running = await startWitness(store, { app: { statusPage: false } })
    const res = await fetch(`${running.url}/`)
    expect(res.status).toBe(404)
    await res.arrayBuffer()
  })

  it('maps a failing store to 500 without details', async () => {
    const broken: WitnessStore = {
      getLog: async () => {
        throw new Error('disk on fire: /secret/path')
      },
      compareAndSwap: () => false,
      addLog: () => false,
      addKey: () => false,
      deleteKey: () => false,
      listLogs: () => [],
    }
    const app = witnessApp(new Witness({ name: WITNESS.name, seed: witnessSeed, store: broken }))
    const res = await app.request('/add-checkpoint', { method: 'POST', body: request(0, [], note(CP1)) })
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('internal error\n')
  })

  it('works in process with app.request too', async () => {
    store = litewitnessStore()
    const app = witnessApp(new Witness({ name: WITNESS.name, seed: witnessSeed, store, now: () => WITNESS.timestamp }))
    const res = await app.request('/add-checkpoint', { method: 'POST', body: request(0, [], note(CP1)) })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
  })
})

describe('witness clock', () => {
  it('a broken clock fails before any state changes', async () => {
    const s = litewitnessStore()
    const w = new Witness({ name: WITNESS.name, seed: witnessSeed, store: s, now: () => NaN })
    await expect(w.addCheckpoint(new TextEncoder().encode(request(0, [], note(CP1))))).rejects.toThrow(RangeError)
    expect(s.getLog(LOG.origin)?.treeSize).toBe(0)
    s.close()
  })
})

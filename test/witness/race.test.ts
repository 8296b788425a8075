/**
 * Compare-and-swap under concurrency: two add-checkpoint requests for the same origin and old
 * size. One request is stalled just before its write (the role of litewitness's
 * testingOnlyStallRequest) until the other has been answered; the stalled one must lose with 409
 * and the stored state must be the winner's — never a rollback.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CP1, CP3, CP5, LOG, note, PROOF_1_3, PROOF_1_5 } from '../vectors/litewitness.js'
import { CheckedStore, expectResponse, litewitnessStore, request, startWitness } from './helpers.js'
import type { Running } from './helpers.js'

const cp3 = request(1, PROOF_1_3, note(CP3))
const cp5 = request(1, PROOF_1_5, note(CP5))

describe('add-checkpoint races', () => {
  let w: Running | undefined
  let store: CheckedStore | undefined
  afterEach(async () => {
    await w?.close()
    store?.inner.close()
  })

  async function atSize1() {
    store = new CheckedStore(litewitnessStore())
    w = await startWitness(store)
    await expectResponse(await w.post(request(0, [], note(CP1))), 200, 'text/plain; charset=utf-8')
    return { store, w }
  }

  for (const [what, stalled, winner, winnerSize, winnerNote] of [
    ['size 3 stalled, size 5 wins', cp3, cp5, 5, note(CP5)],
    ['size 5 stalled, size 3 wins', cp5, cp3, 3, note(CP3)],
    ['two identical size-3 requests', cp3, cp3, 3, note(CP3)],
  ] as const) {
    it(`${what}: exactly one 200, the other 409 with the winner's size`, async () => {
      const { store, w } = await atSize1()
      let release!: () => void
      let reached!: () => void
      const gate = new Promise<void>((r) => (release = r))
      const atCas = new Promise<void>((r) => (reached = r))
      let stalledOnce = false
      store.stall = () => {
        if (stalledOnce) return undefined
        stalledOnce = true
        reached()
        return gate
      }

      const first = w.post(stalled) // passes every check, then waits at its compare-and-swap
      await atCas
      const second = await w.post(winner) // same old size, runs to completion meanwhile
      await expectResponse(second, 200, 'text/plain; charset=utf-8')
      release()
      await expectResponse(await first, 409, 'text/x.tlog.size', `${winnerSize}\n`)

      expect(store.casCalls).toBe(3) // TOFU + both racers reached the write
      expect(store.inner.getLog(LOG.origin)).toMatchObject({ treeSize: winnerSize, checkpoint: winnerNote })
    })
  }

  it('many concurrent identical requests: one 200, the rest 409 "3"', async () => {
    const { store, w } = await atSize1()
    const responses = await Promise.all(Array.from({ length: 12 }, () => w.post(cp3)))
    const statuses = responses.map((r) => r.status).sort()
    expect(statuses).toEqual([200, ...Array(11).fill(409)])
    for (const r of responses) if (r.status === 409) expect(await r.text()).toBe('3\n')
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(3)
  })

  it('a stalled request cannot roll the log back after a later one advanced it', async () => {
    const { store, w } = await atSize1()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let reached!: () => void
    const atCas = new Promise<void>((r) => (reached = r))
    store.stall = (_o, _old, newSize) => {
      if (newSize !== 3) return undefined
      reached()
      return gate
    }
    const slow = w.post(cp3)
    await atCas
    await expectResponse(await w.post(cp5), 200, 'text/plain; charset=utf-8')
    release()
    await expectResponse(await slow, 409, 'text/x.tlog.size', '5\n')
    expect(store.inner.getLog(LOG.origin)?.treeSize).toBe(5)
  })
})

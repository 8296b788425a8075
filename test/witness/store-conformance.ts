/**
 * The WitnessStore guarantees (witness/store.ts) as one suite, run against every implementation:
 * SQLite (test/witness/store.test.ts) and PostgreSQL (test/postgres/witness-store.test.ts).
 * Every call is awaited, so synchronous and asynchronous stores are checked alike.
 */
import { describe, expect, it } from 'vitest'
import { MalformedKeyError } from '../../src/tlog/note.js'
import type { WitnessStore } from '../../witness/index.js'
import { CP3, LOG, WITNESS } from '../vectors/litewitness.js'

const EMPTY = Buffer.from('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'base64')
const root = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))

/** An empty store and how to close it. */
export type OpenWitnessStore = () => Promise<{ store: WitnessStore; close(): Promise<void> | void }>

/** Registers the conformance tests for the stores `open` makes (each test gets an empty store). */
export function witnessStoreConformance(name: string, open: OpenWitnessStore): void {
  describe(`WitnessStore conformance: ${name}`, () => {
    it('adds logs at size 0 with the empty-tree root, idempotently', async () => {
      const { store: s, close } = await open()
      expect(await s.getLog('o')).toBeUndefined()
      expect(await s.addLog('o')).toBe(true)
      expect(await s.addLog('o')).toBe(false)
      const l = (await s.getLog('o'))!
      expect(l).toMatchObject({ origin: 'o', treeSize: 0, checkpoint: null, keys: [] })
      expect(Buffer.from(l.rootHash).equals(EMPTY)).toBe(true)
      await expect(async () => s.addLog('')).rejects.toThrow()
      await expect(async () => s.addLog('a\nb')).rejects.toThrow()
      await close()
    })

    it('manages keys: valid 0x01 vkeys only, no duplicates, known logs only', async () => {
      const { store: s, close } = await open()
      await s.addLog(LOG.origin)
      await expect(async () => s.addKey('unknown', LOG.vkey)).rejects.toThrow(/unknown log/)
      await expect(async () => s.addKey(LOG.origin, WITNESS.vkey)).rejects.toThrow(MalformedKeyError) // a 0x04 key is not a log key
      await expect(async () => s.addKey(LOG.origin, LOG.vkey.slice(0, -1))).rejects.toThrow(MalformedKeyError)
      expect(await s.addKey(LOG.origin, LOG.vkey)).toBe(true)
      expect(await s.addKey(LOG.origin, LOG.vkey)).toBe(false)
      expect((await s.getLog(LOG.origin))?.keys).toEqual([LOG.vkey])
      expect(await s.deleteKey(LOG.origin, LOG.vkey)).toBe(true)
      expect(await s.deleteKey(LOG.origin, LOG.vkey)).toBe(false)
      expect((await s.getLog(LOG.origin))?.keys).toEqual([])
      await close()
    })

    it('compare-and-swaps on the old size and never moves backwards', async () => {
      const { store: s, close } = await open()
      await s.addLog('o')
      await s.addLog('p')
      const r3 = root(CP3.text.split('\n')[2]!)
      expect(await s.compareAndSwap('o', 0, 3, r3, 'cp3')).toBe(true)
      expect(await s.compareAndSwap('o', 0, 5, r3, 'stale')).toBe(false)
      expect(await s.compareAndSwap('missing', 0, 5, r3, 'x')).toBe(false)
      const o = (await s.getLog('o'))!
      expect(o).toMatchObject({ treeSize: 3, checkpoint: 'cp3' })
      expect(Buffer.from(o.rootHash).equals(Buffer.from(r3))).toBe(true)
      await expect(async () => s.compareAndSwap('o', 3, 2, r3, 'back')).rejects.toThrow(RangeError)
      await expect(async () => s.compareAndSwap('o', 3, 4, r3.subarray(1), 'short')).rejects.toThrow(RangeError)
      expect(await s.compareAndSwap('o', 3, 3, r3, 'again')).toBe(true)
      expect((await s.listLogs()).map((l) => [l.origin, l.treeSize])).toEqual([
        ['o', 3],
        ['p', 0],
      ])
      await close()
    })

    it('concurrent compare-and-swaps from the same old size: exactly one wins, its state is stored', async () => {
      const { store: s, close } = await open()
      await s.addLog('o')
      const roots = Array.from({ length: 8 }, (_, i) => new Uint8Array(32).fill(i + 1))
      const results = await Promise.all(roots.map(async (r, i) => s.compareAndSwap('o', 0, i + 1, r, `cp${i + 1}`)))
      expect(results.filter(Boolean)).toHaveLength(1)
      const winner = results.indexOf(true)
      const o = (await s.getLog('o'))!
      expect(o).toMatchObject({ treeSize: winner + 1, checkpoint: `cp${winner + 1}` })
      expect(Buffer.from(o.rootHash).equals(Buffer.from(roots[winner]!))).toBe(true)
      await close()
    })
  })
}

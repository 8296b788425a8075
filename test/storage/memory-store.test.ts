import { describe, expect, it } from 'vitest'
import { InjectedFaultError, MemoryStore } from './memory-store.js'
import { describeStore } from './store-conformance.js'

describeStore('MemoryStore', async () => ({ store: new MemoryStore() }))

describe('MemoryStore fake', () => {
  it('records and rejects a rewrite of an immutable tile with different bytes', async () => {
    const s = new MemoryStore()
    await s.write([['tile/0/000', new Uint8Array([1])]])
    await s.write([['tile/0/000', new Uint8Array([1])]]) // same bytes: fine
    await expect(s.write([['tile/0/000', new Uint8Array([2])]])).rejects.toThrow(/immutable/)
    expect(s.violations).toEqual(['immutable tile/0/000 rewritten with different bytes'])
    await s.write([['checkpoint', new Uint8Array([1])]])
    await s.write([['checkpoint', new Uint8Array([2])]]) // mutable
    expect(await s.read('tile/0/000')).toEqual(new Uint8Array([1]))
  })

  it('injects "fail and not persist" and "fail but persist"', async () => {
    const s = new MemoryStore()
    s.injectFaults('fail-not-persist', 'fail-but-persist')
    await expect(s.write([['checkpoint', new Uint8Array([1])]])).rejects.toBeInstanceOf(InjectedFaultError)
    expect(await s.exists('checkpoint')).toBe(false)
    await expect(s.write([['checkpoint', new Uint8Array([2])]])).rejects.toBeInstanceOf(InjectedFaultError)
    expect(await s.read('checkpoint')).toEqual(new Uint8Array([2]))
    await s.write([['checkpoint', new Uint8Array([3])]])
    expect(await s.read('checkpoint')).toEqual(new Uint8Array([3]))
  })
})

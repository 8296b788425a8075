/**
 * The in-memory store of log files the engine tests use (test/helpers/memory-files.ts) keeps
 * FileStore's contract (the store conformance suite) and catches the engine's storage invariants.
 */
import { describe, expect, it } from 'vitest'
import { InjectedFaultError, MemoryFiles } from '../helpers/memory-files.js'
import { describeStore } from './store-conformance.js'

describeStore('MemoryFiles', async () => ({ store: new MemoryFiles() }))

const tree = (size: number) => new TextEncoder().encode(JSON.stringify({ size }))

describe('MemoryFiles fake', () => {
  it('records a committed full tile or bundle rewritten with different bytes; partial and uncommitted ones may change', async () => {
    const s = new MemoryFiles()
    await s.write([['tile/0/000', new Uint8Array([1])], ['tile/entries/000', new Uint8Array([1])], ['tile/0/001', new Uint8Array([1])]])
    await s.write([['.state/tree', tree(256)]])
    await s.write([['tile/0/000', new Uint8Array([1])]]) // same bytes: fine
    await s.write([['tile/0/001', new Uint8Array([2])]]) // not committed yet (ends at 512): fine
    await s.write([['tile/0/000.p/5', new Uint8Array([1])]])
    await s.write([['tile/0/000.p/5', new Uint8Array([2])]]) // partial: fine
    await s.write([['checkpoint', new Uint8Array([1])]])
    await s.write([['checkpoint', new Uint8Array([2])]]) // mutable
    expect(s.violations).toEqual([])
    await s.write([['tile/0/000', new Uint8Array([2])]])
    await s.write([['tile/entries/000', new Uint8Array([2])]])
    expect(s.violations).toEqual([
      'committed immutable file tile/0/000 rewritten with different bytes',
      'committed immutable file tile/entries/000 rewritten with different bytes',
    ])
  })

  it('records the commit point shrinking and the commit point or checkpoint removed', async () => {
    const s = new MemoryFiles()
    await s.write([['.state/tree', tree(5)], ['checkpoint', new Uint8Array([1])]])
    await s.write([['.state/tree', tree(7)]])
    expect(s.committedSize()).toBe(7)
    await s.write([['.state/tree', tree(6)]])
    await s.remove(['checkpoint', '.state/tree', 'never-written'])
    expect(s.violations).toEqual(['tree shrank from 7 to 6', 'removed checkpoint', 'removed .state/tree'])
  })

  it('failNext: "fail and not persist" stores nothing, "fail but persist" stores the files, then writes succeed', async () => {
    const s = new MemoryFiles()
    s.failNext(false)
    s.failNext(true)
    await expect(s.write([['checkpoint', new Uint8Array([1])]])).rejects.toMatchObject({ name: 'InjectedFaultError', persisted: false })
    expect(await s.exists('checkpoint')).toBe(false)
    expect(s.writes).toBe(0)
    await expect(s.write([['checkpoint', new Uint8Array([2])]])).rejects.toBeInstanceOf(InjectedFaultError)
    expect(await s.read('checkpoint')).toEqual(new Uint8Array([2]))
    await s.write([['checkpoint', new Uint8Array([3])]])
    expect(await s.read('checkpoint')).toEqual(new Uint8Array([3]))
    expect(s.writes).toBe(2)
  })
})

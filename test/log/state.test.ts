/** Reading a log's stored state without opening it (src/log/state.ts): the commit point and the entries. */
import { describe, expect, it } from 'vitest'
import { CorruptLogError, STATE_PATH, formatStoredTree, readEntries, readStoredTree } from '../../src/log/state.js'
import { entryBundlePath, formatEntryBundle } from '../../src/tlog/index.js'

const entry = (i: number) => new Uint8Array([i + 1])

/** Read access to a map of files. */
const filesOf = (files: Map<string, Uint8Array>) => ({ read: async (path: string) => files.get(path) })

describe('readEntries', () => {
  it('reads a range across the partial bundle, bounded by maxBytes', async () => {
    const files = filesOf(new Map([[entryBundlePath(0, 5), formatEntryBundle([0, 1, 2, 3, 4].map(entry))]]))
    expect(await readEntries(files, 5, 1, 3)).toEqual([1, 2, 3].map(entry))
    expect(await readEntries(files, 5, 0, 10, 2)).toEqual([0, 1].map(entry))
  })

  it('an entry bundle with fewer entries than the tree says is damage (CorruptLogError naming it), not a hang', async () => {
    const path = entryBundlePath(0, 5)
    const files = filesOf(new Map([[path, formatEntryBundle([0, 1].map(entry))]]))
    const read = readEntries(files, 5, 0, 5)
    // A hang shows as no answer at all: a generous bound, not a speed requirement.
    const timeout = new Promise((_, fail) => setTimeout(() => fail(new Error('readEntries did not return within 10 s')), 10_000).unref())
    await expect(Promise.race([read, timeout])).rejects.toBeInstanceOf(CorruptLogError)
    await expect(read).rejects.toMatchObject({ path })
  })
})

describe('.state/tree', () => {
  const root = new Uint8Array(32).fill(7)
  const stored = (text: string) => filesOf(new Map([[STATE_PATH, Buffer.from(text)]]))

  it('reads back what formatStoredTree wrote; absent is an empty log', async () => {
    expect(await readStoredTree(filesOf(new Map([[STATE_PATH, formatStoredTree({ size: 300, root })]])))).toEqual({ size: 300, root })
    expect(Buffer.from(formatStoredTree({ size: 0, root })).toString()).toBe(`{"size":0,"root":"${Buffer.from(root).toString('base64')}"}`)
    expect(await readStoredTree(filesOf(new Map()))).toBeUndefined()
  })

  it('a malformed file is CorruptLogError naming it', async () => {
    const b64 = Buffer.from(root).toString('base64')
    for (const text of ['', 'null', '[]', '{"size":1}', `{"size":-1,"root":"${b64}"}`, `{"size":1.5,"root":"${b64}"}`, `{"size":"1","root":"${b64}"}`, '{"size":1,"root":"AAAA"}', '{"size":1,"root":7}']) {
      await expect(readStoredTree(stored(text)), text).rejects.toMatchObject({ name: 'CorruptLog', path: STATE_PATH })
    }
  })
})

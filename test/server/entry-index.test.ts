/**
 * The lookup index (src/server/entry-index.ts) on its own, over a real log's files (the engine on
 * the file store): an unreadable index file is replaced and rebuilt, a log restored to a smaller
 * size is dropped and rebuilt, a catch-up is bounded per lookup, and closing stops background work.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Log } from '../../src/log/log.js'
import type { PublishedView } from '../../src/log/log-manager.js'
import { readEntries } from '../../src/log/state.js'
import { FileStore } from '../../src/storage/file-store.js'
import { EntryIndex, IndexCatchingUpError } from '../../src/server/entry-index.js'
import { ed25519Signer, leafHash } from '../../src/tlog/index.js'

const ORIGIN = 'ucanlog.test/logs/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const N = 600
const entry = (i: number) => new TextEncoder().encode(`index entry ${i % 500}`) // 500..599 repeat 0..99

let dir: string
let files: FileStore
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-entry-index-'))
  files = await FileStore.create(join(dir, 'log'))
  const witnesses = { cosign: async (note: string) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
  const log = await Log.open({ id: 'x', origin: ORIGIN, signer: ed25519Signer(ORIGIN, new Uint8Array(32).fill(1)), files, witnesses, batchMaxAgeMs: 1 })
  for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => log.append(entry(i + k))))
  await log.close()
})
afterAll(() => rm(dir, { recursive: true, force: true }))

/** The published view of the first `size` entries, as LogManager.published gives it. */
const view = (size: number): PublishedView =>
  ({ id: 'x', origin: ORIGIN, checkpoint: { size }, read: (o: number, l: number, b?: number) => readEntries(files, size, o, l, b) }) as unknown as PublishedView

describe('EntryIndex', () => {
  it('finds every index of an entry, by leaf hash and by SHA-256', async () => {
    const idx = EntryIndex.open(join(dir, 'a.db'), { published: async () => view(N) })
    expect(await idx.lookup(view(N), 'leafHash', leafHash(entry(42)))).toEqual({ indexes: [42, 542], truncated: false })
    const sha = new Uint8Array(await crypto.subtle.digest('SHA-256', entry(599)))
    expect(await idx.lookup(view(N), 'sha256', sha)).toEqual({ indexes: [99, 599], truncated: false })
    // An older view (read before a publication another catch-up indexed): never past its size, and nothing dropped.
    expect(await idx.lookup(view(300), 'sha256', sha)).toEqual({ indexes: [99], truncated: false })
    expect(idx.indexed('x')).toBe(N)
    await idx.close()
  })

  it('an unreadable file is replaced and rebuilt', async () => {
    const file = join(dir, 'garbage.db')
    await writeFile(file, 'this is not an SQLite database, not even close; '.repeat(100))
    const idx = EntryIndex.open(file, { published: async () => view(N) })
    expect(idx.indexed('x')).toBe(0)
    expect((await idx.lookup(view(N), 'leafHash', leafHash(entry(7)))).indexes).toEqual([7, 507])
    expect(idx.indexed('x')).toBe(N)
    await idx.close()
  })

  it('a log published smaller than the index covers (restored from an older copy) is dropped and rebuilt', async () => {
    const file = join(dir, 'restored.db')
    let idx = EntryIndex.open(file, { published: async () => view(N) })
    await idx.lookup(view(N), 'leafHash', leafHash(entry(1)))
    await idx.close()
    idx = EntryIndex.open(file, { published: async () => view(200) })
    expect(idx.indexed('x')).toBe(N)
    expect((await idx.lookup(view(200), 'leafHash', leafHash(entry(1)))).indexes).toEqual([1])
    expect(idx.indexed('x')).toBe(200)
    await idx.close()
  })

  it('a lookup indexes at most catchUpEntries itself, then IndexCatchingUp; the background finishes; maxResults truncates', async () => {
    const idx = EntryIndex.open(join(dir, 'bounded.db'), { published: async () => view(N), catchUpEntries: 250, maxResults: 1 })
    const err = await idx.lookup(view(N), 'leafHash', leafHash(entry(3))).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IndexCatchingUpError)
    expect(err).toMatchObject({ name: 'IndexCatchingUp', indexed: 250, size: N })
    await idx.settled()
    expect(idx.indexed('x')).toBe(N)
    expect(await idx.lookup(view(N), 'leafHash', leafHash(entry(3)))).toEqual({ indexes: [3], truncated: true })
    await idx.close()
  })
})

/**
 * The page cache of every SQLite database the service opens is bounded by `--sqlite-cache-bytes`
 * (src/storage/sqlite-cache.ts): found by the soak (bench/soak.js, issue 15), where serve's native
 * memory crept up with the replay guard's and the lookup index's files under better-sqlite3's
 * 16 MB-per-connection default. Each store is opened on a real file and its connections' setting
 * read back from SQLite.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EntryIndex } from '../../src/server/entry-index.js'
import { CarPacker } from '../../src/storage/car-packer.js'
import { DEFAULT_SQLITE_CACHE_BYTES, MIN_SQLITE_CACHE_BYTES, boundSqliteCache, sqliteCacheBytes } from '../../src/storage/sqlite-cache.js'
import { UploadQueue } from '../../src/storage/upload-queue.js'
import { UcanStore } from '../../src/ucan/store.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-sqlite-cache-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

let n = 0
/** Each store the service opens: open it (with `cacheBytes` when given), read its page cache bound, close it. */
const stores: [string, (cacheBytes?: number) => Promise<number>][] = [
  ['ucan.db (replay guard, revocations)', async (cacheBytes) => {
    const s = UcanStore.open(join(dir, `ucan-${n++}.db`), cacheBytes === undefined ? {} : { cacheBytes })
    try {
      return s.sqliteCacheBytes
    } finally {
      s.close()
    }
  }],
  ['uploads.sqlite', async (cacheBytes) => {
    const q = new UploadQueue(join(dir, `uploads-${n++}.sqlite`), cacheBytes === undefined ? {} : { cacheBytes })
    try {
      return q.sqliteCacheBytes
    } finally {
      q.close()
    }
  }],
  ['lookup.db', async (cacheBytes) => {
    const x = EntryIndex.open(join(dir, `lookup-${n++}.db`), { published: async () => undefined, ...(cacheBytes === undefined ? {} : { cacheBytes }) })
    try {
      return x.sqliteCacheBytes
    } finally {
      await x.close()
    }
  }],
  ["a log's CAR index", async (cacheBytes) => {
    const p = await CarPacker.open(join(dir, `cars-${n++}`), cacheBytes === undefined ? {} : { cacheBytes })
    try {
      return p.sqliteCacheBytes
    } finally {
      await p.close()
    }
  }],
]

describe('the SQLite page cache of each store', () => {
  it('better-sqlite3 alone gives a connection 16 MB (what the stores override)', () => {
    const db = new Database(':memory:')
    expect(sqliteCacheBytes(db)).toBe(16_000 * 1024)
    boundSqliteCache(db, 1000 * 1024)
    expect(sqliteCacheBytes(db)).toBe(1000 * 1024)
    expect(() => boundSqliteCache(db, MIN_SQLITE_CACHE_BYTES - 1)).toThrow(RangeError)
    expect(() => boundSqliteCache(db, 1.5 * 2 ** 20 + 0.5)).toThrow(RangeError)
    expect(sqliteCacheBytes(db)).toBe(1000 * 1024)
    db.close()
  })

  for (const [name, open] of stores) {
    it(`${name}: ${DEFAULT_SQLITE_CACHE_BYTES / 2 ** 20} MiB by default, cacheBytes when given`, async () => {
      expect(await open()).toBe(DEFAULT_SQLITE_CACHE_BYTES)
      expect(await open(512 * 1024)).toBe(512 * 1024)
    })
  }
})

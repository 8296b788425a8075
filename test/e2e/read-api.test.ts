/**
 * The read API for tools (issue 13 item 2) against a real service with the bundled witness: CORS and
 * caching headers on every public read route (table-driven) and on none of the others, the JSON
 * entries route and its bounds, and the lookup route (by leaf hash, by SHA-256, absent, truncated,
 * after a restart, rebuilt when its file is deleted, catching up past its per-request bound), and the
 * checkpoint-history route (bounded by --history-max, thinned keeping the first and newest points,
 * kept across a restart, starting again when its file is lost).
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeBase64, leafHash } from '../../src/tlog/index.js'
import { LOOKUP_INDEX_FILE } from '../../src/server/entry-index.js'
import { startTestService } from './helpers.js'
import { type Writer, newWriter } from './read-helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>

const SMALL = 300
const text = (i: number) => new TextEncoder().encode(`read-api entry ${i}`)
const big = (i: number) => new Uint8Array(30_000).fill(65 + i)
/** 300 small entries, 3 of 30,000 bytes, then entry 7 again (a duplicate): 304 entries. */
const ENTRIES = [...Array.from({ length: SMALL }, (_, i) => text(i)), big(0), big(1), big(2), text(7)]
const CONFIG = { entriesPageMax: 50, entriesPageBytes: 65_535, lookupMaxResults: 1, historyMaxPoints: 4 }

let dataDir: string
let svc: Svc
/** Unix seconds before the first append. */
let t0: number
let writer: Writer
/** index → entry bytes, as the service acknowledged them. */
const at = new Map<number, Uint8Array>()

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-read-api-'))
  svc = await startTestService({ dataDir, ...CONFIG })
  t0 = Math.floor(Date.now() / 1000)
  writer = await newWriter()
  const small = await writer.append(svc.url, svc.did, ENTRIES.slice(0, SMALL))
  small.forEach((r, k) => at.set(r.index, ENTRIES[k]!))
  // The big ones and the duplicate one at a time, so their indexes are known to be last.
  for (const e of ENTRIES.slice(SMALL)) at.set((await writer.append(svc.url, svc.did, [e]))[0]!.index, e)
}, 120_000)

afterAll(async () => {
  await svc?.stop()
  await rm(dataDir, { recursive: true, force: true })
})

const get = (path: string, init: RequestInit = {}) => fetch(`${svc.url}${path}`, { ...init, headers: { origin: 'https://tool.example', ...(init.headers ?? {}) } })
const b64url = (b: Uint8Array) => encodeURIComponent(encodeBase64(b))
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest()

describe('CORS and caching on every public read route', () => {
  const IMMUTABLE = 'public, max-age=31536000, immutable'
  const PARTIAL = 'public, max-age=60'
  const SHORT = 'public, max-age=2'
  // 304 entries: level-0 tile 0 and bundle 0 full, tile 1 and bundle 1 partial (48), level-1 tile partial (1).
  const routes = (space: string): [string, string, number][] => [
    ['/did', 'no-cache', 200],
    ['/info', 'no-cache', 200],
    ['/logs.txt', 'no-cache', 200],
    [`/logs/${space}/checkpoint`, SHORT, 200],
    [`/logs/${space}/head`, 'no-cache', 200],
    [`/logs/${space}/tile/0/000`, IMMUTABLE, 200],
    [`/logs/${space}/tile/0/001.p/48`, PARTIAL, 200],
    [`/logs/${space}/tile/1/000.p/1`, PARTIAL, 200],
    [`/logs/${space}/tile/entries/000`, IMMUTABLE, 200],
    [`/logs/${space}/tile/entries/001.p/48`, PARTIAL, 200],
    [`/logs/${space}/entries?start=0&limit=2`, SHORT, 200],
    [`/logs/${space}/lookup?sha256=${sha256(text(3)).toString('hex')}`, SHORT, 200],
    [`/logs/${space}/history?limit=3`, SHORT, 200],
    ['/revocations/checkpoint', '', 404], // nothing revoked yet: CORS still applies
  ]

  it('GET: Access-Control-Allow-Origin * and the Cache-Control of c2sp.org/tlog-tiles', async () => {
    for (const [path, cache, status] of routes(writer.space)) {
      const res = await get(path)
      expect({ path, status: res.status }).toEqual({ path, status })
      expect({ path, acao: res.headers.get('access-control-allow-origin') }).toEqual({ path, acao: '*' })
      expect({ path, expose: res.headers.get('access-control-expose-headers') }).toEqual({ path, expose: 'Retry-After,Content-Encoding' })
      if (cache) expect({ path, cache: res.headers.get('cache-control') }).toEqual({ path, cache })
      await res.arrayBuffer()
    }
  })

  it('OPTIONS preflight: 204, GET and HEAD allowed, the requested header allowed', async () => {
    for (const [path] of routes(writer.space)) {
      const res = await get(path, { method: 'OPTIONS', headers: { 'access-control-request-method': 'GET', 'access-control-request-headers': 'if-none-match' } })
      expect({ path, status: res.status }).toEqual({ path, status: 204 })
      expect(res.headers.get('access-control-allow-origin')).toBe('*')
      expect(res.headers.get('access-control-allow-methods')).toBe('GET,HEAD')
      expect(res.headers.get('access-control-allow-headers')).toBe('if-none-match')
    }
  })

  it('never on the RPC, metrics, health and witness routes', async () => {
    for (const path of ['/rpc', '/', '/healthz', '/metrics', '/witness/add-checkpoint']) {
      const pre = await get(path, { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST' } })
      expect({ path, acao: pre.headers.get('access-control-allow-origin') }).toEqual({ path, acao: null })
      await pre.arrayBuffer()
    }
    const res = await get('/healthz')
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
    await res.arrayBuffer()
  })
})

describe('GET /logs/<space>/entries', () => {
  const page = async (q: string) => {
    const res = await get(`/logs/${writer.space}/entries${q}`)
    return { status: res.status, body: (await res.json()) as { size: number; start: number; next: number; entries: { index: number; leafHash: string; size: number; data: string }[] } }
  }

  it('entries of the published tree with their leaf hashes, sizes and bytes', async () => {
    const { status, body } = await page('?start=10&limit=5')
    expect(status).toBe(200)
    expect(body.size).toBe(ENTRIES.length)
    expect(body.start).toBe(10)
    expect(body.next).toBe(15)
    expect(body.entries.map((e) => e.index)).toEqual([10, 11, 12, 13, 14])
    for (const e of body.entries) {
      const bytes = at.get(e.index)!
      expect(e).toEqual({ index: e.index, leafHash: encodeBase64(leafHash(bytes)), size: bytes.length, data: encodeBase64(bytes) })
    }
  })

  it('at most --entries-page-max entries and --entries-page-bytes bytes a page; paging with next reaches the end', async () => {
    expect((await page('?start=0&limit=1000')).body.entries).toHaveLength(CONFIG.entriesPageMax)
    expect((await page('')).body.entries).toHaveLength(CONFIG.entriesPageMax)
    // The three 30,000-byte entries: two fit in 65,535 bytes, the third starts the next page.
    const bigPage = await page(`?start=${SMALL}&limit=10`)
    expect(bigPage.body.entries.map((e) => e.size)).toEqual([30_000, 30_000])
    expect(bigPage.body.next).toBe(SMALL + 2)
    let start = 0
    let seen = 0
    while (start < ENTRIES.length) {
      const p = await page(`?start=${start}`)
      expect(p.body.next).toBeGreaterThan(start)
      seen += p.body.entries.length
      start = p.body.next
    }
    expect(seen).toBe(ENTRIES.length)
    const end = await page(`?start=${ENTRIES.length}&limit=10`)
    expect(end.body).toEqual({ size: ENTRIES.length, start: ENTRIES.length, next: ENTRIES.length, entries: [] })
  })

  it('bad parameters are 400 and an unknown log 404, before any file is read', async () => {
    for (const q of ['?start=-1', '?start=x', '?limit=1.5', '?start=99999999999999999']) expect((await page(q)).status).toBe(400)
    const res = await get('/logs/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK/entries')
    expect(res.status).toBe(404)
    await res.arrayBuffer()
  })
})

describe('GET /logs/<space>/history', () => {
  type Point = { size: number; rootHash: string; time: number }
  const history = async (q = '', space = writer.space) => {
    const res = await get(`/logs/${space}/history${q}`)
    return { status: res.status, body: (await res.json()) as { size?: number; points?: Point[] } }
  }
  const head = async () => (await (await get(`/logs/${writer.space}/head`)).json()) as { treeSize: number; rootHash: string }

  it('the published checkpoints, oldest first, at most --history-max (4) kept: the first publication and the current checkpoint always in', async () => {
    const { status, body } = await history()
    expect(status).toBe(200)
    const h = await head()
    expect(body.size).toBe(h.treeSize)
    const points = body.points!
    // 300 appends 16 at a time, then 4 one at a time: many more publications than 4.
    expect(points.length).toBeGreaterThanOrEqual(2)
    expect(points.length).toBeLessThanOrEqual(CONFIG.historyMaxPoints)
    expect(points[points.length - 1]).toMatchObject({ size: h.treeSize, rootHash: h.rootHash })
    // The first publication: the first batch, well before the 300 small entries were all in.
    expect(points[0]!.size).toBeLessThan(SMALL)
    for (let k = 1; k < points.length; k++) {
      expect(points[k]!.size).toBeGreaterThan(points[k - 1]!.size)
      expect(points[k]!.time).toBeGreaterThanOrEqual(points[k - 1]!.time)
    }
    expect(points[0]!.time).toBeGreaterThanOrEqual(t0)
    expect(points[points.length - 1]!.time).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000))
    for (const p of points) expect(Buffer.from(p.rootHash, 'base64')).toHaveLength(32)
  })

  it('?limit=N samples evenly: 1 → the newest, 2 → the first and the newest', async () => {
    const all = (await history()).body.points!
    expect((await history('?limit=1')).body.points).toEqual([all[all.length - 1]])
    expect((await history('?limit=2')).body.points).toEqual([all[0], all[all.length - 1]])
    expect((await history('?limit=1000')).body.points).toEqual(all)
  })

  it('a bad limit is 400, an unknown log 404', async () => {
    for (const q of ['?limit=0', '?limit=1001', '?limit=x', '?limit=-1', '?limit=1.5']) expect({ q, status: (await history(q)).status }).toEqual({ q, status: 400 })
    expect((await history('', 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK')).status).toBe(404)
  })

  it('kept across a restart of the service', async () => {
    const before = (await history()).body.points!
    expect(before.length).toBeGreaterThanOrEqual(2)
    await svc.stop()
    svc = await startTestService({ dataDir, ...CONFIG })
    expect((await history()).body.points).toEqual(before)
  })
})

describe('GET /logs/<space>/lookup', () => {
  const lookup = async (q: string) => {
    const res = await get(`/logs/${writer.space}/lookup?${q}`)
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { size?: number; indexes?: number[]; truncated?: boolean; indexed?: number } }
  }
  const indexOf = (e: Uint8Array) => [...at].filter(([, b]) => Buffer.from(b).equals(Buffer.from(e))).map(([i]) => i).sort((a, b) => a - b)

  it('by leaf hash (base64) and by sha256 (hex or base64); absent is []', async () => {
    const e = text(123)
    const want = indexOf(e)
    expect(want).toHaveLength(1)
    expect((await lookup(`leafHash=${b64url(leafHash(e))}`)).body).toEqual({ size: ENTRIES.length, indexes: want, truncated: false })
    expect((await lookup(`sha256=${sha256(e).toString('hex')}`)).body.indexes).toEqual(want)
    expect((await lookup(`sha256=${b64url(sha256(e))}`)).body.indexes).toEqual(want)
    // A leaf hash is not a content hash: each is looked up in its own table.
    expect((await lookup(`sha256=${b64url(leafHash(e))}`)).body.indexes).toEqual([])
    expect((await lookup(`leafHash=${b64url(sha256(text(999_999)))}`)).body).toEqual({ size: ENTRIES.length, indexes: [], truncated: false })
  })

  it('a duplicate entry matches twice: at most --lookup-max-results indexes, truncated', async () => {
    const both = indexOf(text(7))
    expect(both).toHaveLength(2)
    expect((await lookup(`sha256=${sha256(text(7)).toString('hex')}`)).body).toEqual({ size: ENTRIES.length, indexes: [both[0]], truncated: true })
  })

  it('bad parameters are 400', async () => {
    for (const q of ['', 'leafHash=abc', 'sha256=zz', `leafHash=${b64url(leafHash(text(1)))}&sha256=${sha256(text(1)).toString('hex')}`]) {
      expect({ q, status: (await lookup(q)).status }).toEqual({ q, status: 400 })
    }
  })

  it('after a restart; rebuilt when its file is deleted; past the per-request bound it answers 503 + Retry-After until caught up', async () => {
    const e = text(250)
    const want = indexOf(e)
    await svc.stop()
    svc = await startTestService({ dataDir, ...CONFIG })
    expect((await lookup(`leafHash=${b64url(leafHash(e))}`)).body.indexes).toEqual(want)

    await svc.stop()
    for (const f of [LOOKUP_INDEX_FILE, `${LOOKUP_INDEX_FILE}-wal`, `${LOOKUP_INDEX_FILE}-shm`]) await rm(join(dataDir, f), { force: true })
    svc = await startTestService({ dataDir, ...CONFIG, lookupCatchUpEntries: 100 })
    const first = await lookup(`leafHash=${b64url(leafHash(e))}`)
    expect(first.status).toBe(503)
    expect(first.retryAfter).toBe('1')
    expect(first.body).toMatchObject({ indexed: 100, size: ENTRIES.length })
    let r = first
    for (let k = 0; k < 100 && r.status === 503; k++) r = await lookup(`leafHash=${b64url(leafHash(e))}`)
    expect(r.status).toBe(200)
    expect(r.body.indexes).toEqual(want)
  })
})

// Last: it appends one more entry (the sizes the tests above expect change).
describe('GET /logs/<space>/history after lookup.db was deleted (the lookup test above)', () => {
  it('starts again: empty, then the next publication, at most --history-max', async () => {
    const history = async () => ((await (await get(`/logs/${writer.space}/history`)).json()) as { size: number; points: { size: number; rootHash: string }[] })
    expect(await history()).toEqual({ size: ENTRIES.length, points: [] })
    const e = text(1_000_001)
    await writer.append(svc.url, svc.did, [e])
    const head = (await (await get(`/logs/${writer.space}/head`)).json()) as { treeSize: number; rootHash: string }
    expect(head.treeSize).toBe(ENTRIES.length + 1)
    expect((await history()).points).toMatchObject([{ size: ENTRIES.length + 1, rootHash: head.rootHash }])
  })
})

/**
 * The durable UCAN state (src/ucan/store.ts, sqlite-replay.ts, sqlite-revocations.ts): the SQLite replay guard and revocation index, both
 * reopened from the same file as a restart would, and the revocation log's record format.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  InvalidRevocationRecord,
  logRefusal,
  ReplayGuardFull,
  UNKNOWN_OUTCOME,
  UcanStore,
  formatRevocationRecord,
  parseRevocationRecord,
  type RevocationRecord,
  SqliteReplayGuard,
  SqliteRevocations,
} from '../../src/ucan/index.js'
import { revocationIndexConformance } from './revocations-conformance.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-store-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const record = (ucan: string, scope = 'did:key:z6MkScope'): RevocationRecord => ({
  ucan,
  scope: scope as `did:${string}:${string}`,
  revoker: 'did:key:z6MkRevoker',
  invocation: 'bafyinvocation',
  time: 1_795_000_000,
})

describe('SqliteReplayGuard', () => {
  test('the first outcome survives a restart; the task never runs twice until exp', async () => {
    let t = 1000
    const file = join(dir, 'ucan.db')
    let runs = 0
    const task = async () => ({ ok: { index: ++runs } })
    const a = UcanStore.open(file, { now: () => t })
    const key = { owner: 'did:key:z6MkSpace', id: 'inv1', expiresAt: 1100 }
    expect(await a.replay.once(key, task)).toEqual({ ok: { index: 1 } })
    expect(await a.replay.once(key, task)).toEqual({ ok: { index: 1 } })
    a.close()
    const b = UcanStore.open(file, { now: () => t })
    expect(await b.replay.once(key, task)).toEqual({ ok: { index: 1 } })
    expect(runs).toBe(1)
    t = 1101 // past exp: forgotten (the authorizer refuses it as Expired anyway)
    expect(await b.replay.once(key, task)).toEqual({ ok: { index: 2 } })
    b.close()
  })

  test('concurrent copies share one run', async () => {
    const s = UcanStore.open(':memory:')
    let runs = 0
    const outs = await Promise.all(Array.from({ length: 5 }, () => s.replay.once({ owner: 'o', id: 'x', expiresAt: Number.MAX_SAFE_INTEGER }, async () => ++runs)))
    expect(outs).toEqual([1, 1, 1, 1, 1])
    expect(runs).toBe(1)
  })

  test('a run interrupted by a crash is never run again: the retry gets UNKNOWN_OUTCOME', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file, { now: () => 1000 })
    const key = { owner: 'o', id: 'inv', expiresAt: 2000 }
    void a.replay.once(key, () => new Promise(() => {})) // never settles: the process "dies"
    a.close()
    const b = UcanStore.open(file, { now: () => 1000 })
    let ran = false
    expect(await b.replay.once(key, async () => (ran = true))).toEqual(UNKNOWN_OUTCOME)
    expect(ran).toBe(false)
    b.close()
  })

  test('a task that rejects is forgotten and frees its place; counts per owner survive a restart', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file, { now: () => 1000, maxReplayPerOwner: 2 })
    await expect(a.replay.once({ owner: 'A', id: 'r', expiresAt: 1100 }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(a.replay.count('A')).toBe(0)
    await a.replay.once({ owner: 'A', id: 'a', expiresAt: 1100 }, async () => 1)
    await a.replay.once({ owner: 'A', id: 'b', expiresAt: 1100 }, async () => 2)
    await a.replay.once({ owner: 'B', id: 'c', expiresAt: 1100 }, async () => 3)
    expect([a.replay.count('A'), a.replay.count('B'), a.replay.count('C')]).toEqual([2, 1, 0])
    a.close()
    const b = UcanStore.open(file, { now: () => 1000, maxReplayPerOwner: 2 })
    expect([b.replay.count('A'), b.replay.count('B')]).toEqual([2, 1])
    await expect(b.replay.once({ owner: 'A', id: 'd', expiresAt: 1100 }, async () => 4)).rejects.toBeInstanceOf(ReplayGuardFull)
    b.close()
  })

  test('a file from before per-owner shares opens: its ids keep their outcomes and count under the owner ""', async () => {
    const file = join(dir, 'ucan.db')
    const old = new Database(file)
    old.exec(`CREATE TABLE seen (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, outcome TEXT) WITHOUT ROWID;
      INSERT INTO seen VALUES ('old', 2000, '{"ok":1}')`)
    old.close()
    const s = UcanStore.open(file, { now: () => 1000 })
    expect(s.replay.count('')).toBe(1)
    expect(await s.replay.once({ owner: 'A', id: 'old', expiresAt: 2000 }, async () => 2)).toEqual({ ok: 1 })
    s.close()
    // Rebuilt as a rowid table: a ~1 KB outcome no longer takes an overflow page of its own.
    const after = new Database(file, { readonly: true })
    expect(after.prepare(`SELECT sql FROM sqlite_master WHERE name = 'seen'`).pluck().get()).not.toMatch(/WITHOUT ROWID/i)
    after.close()
  })

  test('outcomes are committed under synchronous = FULL, one transaction per batch, before any caller sees them', async () => {
    const file = join(dir, 'ucan.db')
    const commits: { ids: readonly string[]; synchronous: number }[] = []
    const s = UcanStore.open(file, { now: () => 1000, onReplayCommit: (c) => commits.push({ ids: [...c.ids], synchronous: c.synchronous }) })
    // Another connection sees only what was committed.
    const reader = new Database(file, { readonly: true })
    const committed = (id: string) => (reader.prepare('SELECT outcome FROM seen WHERE id = ?').get(id) as { outcome: string | null } | undefined)?.outcome
    const answers = await Promise.all(
      ['a', 'b', 'c'].map((id) =>
        s.replay.once({ owner: 'o', id, expiresAt: 2000 }, async () => ({ ok: id })).then((v) => ({ v, stored: committed(id) })),
      ),
    )
    expect(answers).toEqual(['a', 'b', 'c'].map((id) => ({ v: { ok: id }, stored: JSON.stringify({ ok: id }) })))
    expect(commits).toEqual([{ ids: ['a', 'b', 'c'], synchronous: 2 }]) // 2 = FULL
    reader.close()
    s.close()
  })

  /** A store at `<dir>/ucan.db` whose replay group commits throw `err` until `heal()`. */
  function failingStore(err: Error) {
    const state = { fail: true }
    const s = UcanStore.open(join(dir, 'ucan.db'), {
      now: () => 1000,
      onReplayCommit: () => {
        if (state.fail) throw err
      },
    })
    return { s, heal: () => void (state.fail = false) }
  }

  test('an outcome whose commit fails is not returned; while the fault lasts a retry is refused, never run; once it clears the retry gets the first outcome, durably (issue 15 item 2)', async () => {
    const { s, heal } = failingStore(Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' }))
    const file = join(dir, 'ucan.db')
    const key = { owner: 'o', id: 'x', expiresAt: 2000 }
    await expect(s.replay.once(key, async () => ({ ok: 1 }))).rejects.toThrow('disk full')
    let ran = false
    // Still failing: refused again (by the same named cause), the task not run, no UNKNOWN_OUTCOME.
    await expect(s.replay.once(key, async () => (ran = true))).rejects.toMatchObject({ code: 'SQLITE_FULL' })
    await expect(s.replay.seen(key.id)).rejects.toMatchObject({ code: 'SQLITE_FULL' })
    heal()
    // The fault gone: the first outcome, committed now, never the task again.
    expect(await s.replay.seen(key.id)).toEqual({ ok: 1 })
    expect(await s.replay.once(key, async () => (ran = true))).toEqual({ ok: 1 })
    expect(ran).toBe(false)
    s.close()
    const again = UcanStore.open(file, { now: () => 1000 })
    expect(await again.replay.once(key, async () => (ran = true))).toEqual({ ok: 1 })
    expect(ran).toBe(false)
    again.close()
  })

  test('an outcome whose commit failed is committed with the next group commit, without a retry (issue 15 item 2)', async () => {
    const { s, heal } = failingStore(new Error('EIO'))
    const file = join(dir, 'ucan.db')
    await expect(s.replay.once({ owner: 'o', id: 'x', expiresAt: 2000 }, async () => ({ ok: 1 }))).rejects.toThrow('EIO')
    heal()
    expect(await s.replay.once({ owner: 'o', id: 'y', expiresAt: 2000 }, async () => ({ ok: 2 }))).toEqual({ ok: 2 })
    s.close()
    const again = UcanStore.open(file, { now: () => 1000 })
    let ran = false
    expect(await again.replay.once({ owner: 'o', id: 'x', expiresAt: 2000 }, async () => (ran = true))).toEqual({ ok: 1 })
    expect(ran).toBe(false)
    again.close()
  })
})

revocationIndexConformance('SqliteRevocations', async ({ now, maxPerScope }) => {
  const store = UcanStore.open(':memory:', { now, maxRevocationsPerScope: maxPerScope })
  return { store: store.revocations, close: () => store.close() }
})

describe('SqliteRevocations', () => {
  test('records and their log index are durable: a reopened file has them', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file)
    await a.revocations.record(record('bafyA'))
    await a.revocations.record(record('bafyB'))
    a.revocations.setLogIndex(record('bafyA'), 7)
    a.close()
    const b = UcanStore.open(file)
    expect(b.revocations.unlogged()).toEqual([record('bafyB')])
    expect(await b.revocations.record(record('bafyA'))).toMatchObject({ created: false, index: 7 })
    expect(await b.revocations.findRevoked(new Map([['bafyB', new Set(['did:key:z6MkScope' as const])]]))).toBe('bafyB')
    b.close()
  })

  test('concurrent lookups (a request\'s invocations) are answered by one statement, each with its own answer', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file, { now: () => 1000 })
    await a.revocations.record(record('bafyA', 'did:key:z6MkA'))
    await a.revocations.record(record('bafyB', 'did:key:z6MkB'))
    a.close()
    const statements: string[] = []
    const db = new Database(file, { verbose: (sql) => statements.push(String(sql)) })
    const revocations = new SqliteRevocations(db, () => 1000)
    const q = (entries: [string, string[]][]) => new Map(entries.map(([cid, ps]) => [cid, new Set(ps as `did:${string}:${string}`[])]))
    statements.length = 0
    const answers = await Promise.all([
      revocations.findRevoked(q([['bafyX', ['did:key:z6MkA']], ['bafyA', ['did:key:z6MkA']]])),
      revocations.findRevoked(q([['bafyA', ['did:key:z6MkB']]])),
      revocations.findRevoked(q([['bafyB', ['did:key:z6MkA', 'did:key:z6MkB']], ['bafyA', ['did:key:z6MkA']]])),
      revocations.findRevoked(q([])),
    ])
    expect(answers).toEqual(['bafyA', undefined, 'bafyB', undefined])
    expect(statements.filter((sql) => sql.includes('FROM revocations'))).toHaveLength(1)
    // A revocation recorded before a lookup is made is seen by it.
    await revocations.record(record('bafyC', 'did:key:z6MkA'))
    expect(await revocations.findRevoked(q([['bafyC', ['did:key:z6MkA']]]))).toBe('bafyC')
    db.close()
  })

  test('the replay checks of concurrent invocations (a request\'s) are one transaction: a keyed lookup per id, one count per owner, an insert per admitted id; shares hold inside a batch', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file, { now: () => 1000 })
    await a.replay.once({ owner: 'A', id: 'old', expiresAt: 2000 }, async () => 'first')
    a.close()
    const statements: string[] = []
    const db = new Database(file, { verbose: (sql) => statements.push(String(sql)) })
    const guard = new SqliteReplayGuard(db, { now: () => 1000, maxReplayPerOwner: 2 })
    statements.length = 0
    const runs: string[] = []
    const calls = ['old', 'a1', 'a2', 'b1', 'a3'].map((id) =>
      guard.once({ owner: id.startsWith('b') ? 'B' : 'A', id, expiresAt: 2000 }, async () => (runs.push(id), id)).catch((err: Error) => err.name),
    )
    expect(await Promise.all(calls)).toEqual(['first', 'a1', 'ReplayGuardFull', 'b1', 'ReplayGuardFull'])
    expect(runs).toEqual(['a1', 'b1'])
    const admission = statements.slice(0, statements.findIndex((sql) => sql.startsWith('COMMIT')) + 1)
    // One statement per id or owner inside the one transaction (cheaper in SQLite than one
    // statement over a JSON array of the batch: json_each/json_extract cost more than a step):
    // the two ids admitted inserted (none for the seen or refused ones), each id looked up once,
    // each owner counted once.
    expect(admission.filter((sql) => sql.includes('INSERT INTO seen'))).toHaveLength(2)
    expect(admission.filter((sql) => sql.startsWith('SELECT expires_at, outcome FROM seen WHERE id ='))).toHaveLength(5)
    expect(admission.filter((sql) => sql.startsWith('SELECT n FROM seen_owners WHERE owner ='))).toHaveLength(2)
    expect(admission.filter((sql) => sql.startsWith('BEGIN'))).toHaveLength(1)
    expect(admission.filter((sql) => sql.startsWith('COMMIT'))).toHaveLength(1)
    expect([guard.count('A'), guard.count('B')]).toEqual([2, 1])
    db.close()
  })

  test('a closed store rejects: the authorizer fails closed', async () => {
    const s = UcanStore.open(':memory:')
    s.close()
    await expect(s.revocations.findRevoked(new Map([['x', new Set(['did:key:z' as const])]]))).rejects.toThrow()
  })
})

describe('revocation log records', () => {
  test('canonical JSON with fixed key order; round trips', () => {
    const bytes = formatRevocationRecord(record('bafyA'))
    expect(new TextDecoder().decode(bytes)).toBe(
      '{"type":"ucan/revoke","ucan":"bafyA","scope":"did:key:z6MkScope","revoker":"did:key:z6MkRevoker","invocation":"bafyinvocation","time":1795000000}',
    )
    expect(parseRevocationRecord(bytes)).toEqual(record('bafyA'))
  })

  test('every non-canonical spelling, truncation and wrong type is refused', () => {
    const good = new TextDecoder().decode(formatRevocationRecord(record('bafyA')))
    const bad = [
      good.replace('{"type"', '{ "type"'),
      good.replace('"ucan/revoke"', '"ucan/other"'),
      good.replace('1795000000', '"1795000000"'),
      good.replace('1795000000', '1795000000.5'),
      good.replace('"scope":"did:key:z6MkScope"', '"scope":"nope"'),
      good + '\n',
      '{"ucan":"bafyA","type":"ucan/revoke","scope":"did:key:z6MkScope","revoker":"did:key:z6MkRevoker","invocation":"bafyinvocation","time":1795000000}',
      'null',
      '',
    ]
    for (let i = 1; i < good.length; i++) bad.push(good.slice(0, i))
    for (const s of bad) expect(() => parseRevocationRecord(new TextEncoder().encode(s)), s).toThrow(InvalidRevocationRecord)
    expect(() => parseRevocationRecord(new Uint8Array([0xff, 0xfe]))).toThrow(InvalidRevocationRecord)
  })
})

describe('failed writes of the UCAN stores are named (issue 15 item 2)', () => {
  test('a store error whose code says a write or fsync failed is StorageFailed; a full disk StorageFull; anything else stays unnamed (InternalError)', () => {
    expect(logRefusal(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' }))?.name).toBe('StorageFailed')
    expect(logRefusal(Object.assign(new Error('io'), { code: 'EIO' }))?.name).toBe('StorageFailed')
    expect(logRefusal(new Error('wrapped', { cause: Object.assign(new Error('ro'), { code: 'EROFS' }) }))?.name).toBe('StorageFailed')
    expect(logRefusal(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }))?.name).toBe('StorageFull')
    // A log stopped by a full disk is refused StorageFull (the cause decides), by any other fault StorageFailed.
    expect(logRefusal({ name: 'StorageFailed', message: 'x', cause: { code: 'ENOSPC' } })?.name).toBe('StorageFull')
    expect(logRefusal({ name: 'StorageFailed', message: 'x', cause: { code: 'EIO' } })?.name).toBe('StorageFailed')
    expect(logRefusal(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT' }))).toBeUndefined()
    expect(logRefusal(new Error('x'))).toBeUndefined()
  })
})

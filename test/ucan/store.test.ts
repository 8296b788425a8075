/**
 * The durable UCAN state (src/ucan/store.ts): the SQLite replay guard and revocation index, both
 * reopened from the same file as a restart would, and the revocation log's record format.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  InvalidRevocationRecord,
  ReplayGuardFull,
  UNKNOWN_OUTCOME,
  UcanStore,
  formatRevocationRecord,
  parseRevocationRecord,
  type RevocationRecord,
} from '../../src/ucan/index.js'

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
    expect(await a.replay.once('inv1', 1100, task)).toEqual({ ok: { index: 1 } })
    expect(await a.replay.once('inv1', 1100, task)).toEqual({ ok: { index: 1 } })
    a.close()
    const b = UcanStore.open(file, { now: () => t })
    expect(await b.replay.once('inv1', 1100, task)).toEqual({ ok: { index: 1 } })
    expect(runs).toBe(1)
    t = 1101 // past exp: forgotten (the authorizer refuses it as Expired anyway)
    expect(await b.replay.once('inv1', 1100, task)).toEqual({ ok: { index: 2 } })
    b.close()
  })

  test('concurrent copies share one run', async () => {
    const s = UcanStore.open(':memory:')
    let runs = 0
    const outs = await Promise.all(Array.from({ length: 5 }, () => s.replay.once('x', Number.MAX_SAFE_INTEGER, async () => ++runs)))
    expect(outs).toEqual([1, 1, 1, 1, 1])
    expect(runs).toBe(1)
  })

  test('a run interrupted by a crash is never run again: the retry gets UNKNOWN_OUTCOME', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file, { now: () => 1000 })
    void a.replay.once('inv', 2000, () => new Promise(() => {})) // never settles: the process "dies"
    a.close()
    const b = UcanStore.open(file, { now: () => 1000 })
    let ran = false
    expect(await b.replay.once('inv', 2000, async () => (ran = true))).toEqual(UNKNOWN_OUTCOME)
    expect(ran).toBe(false)
    b.close()
  })

  test('a task that rejects is forgotten; bounded: full → ReplayGuardFull unless expired ids can be swept', async () => {
    let t = 1000
    const s = UcanStore.open(':memory:', { now: () => t, maxReplayEntries: 2 })
    await expect(s.replay.once('r', 1100, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(s.replay.size).toBe(0)
    await s.replay.once('a', 1001, async () => 1)
    await s.replay.once('b', 1100, async () => 2)
    await expect(s.replay.once('c', 1100, async () => 3)).rejects.toBeInstanceOf(ReplayGuardFull)
    t = 1002 // 'a' expired
    expect(await s.replay.once('c', 1100, async () => 3)).toBe(3)
    expect(s.replay.size).toBe(2)
  })
})

describe('SqliteRevocations', () => {
  test('records are effective at once, idempotent per (ucan, scope), durable, and remember their log index', async () => {
    const file = join(dir, 'ucan.db')
    const a = UcanStore.open(file)
    const first = await a.revocations.record(record('bafyA'))
    expect(first).toMatchObject({ created: true, index: undefined })
    expect(await a.revocations.findRevoked(new Map([['bafyA', new Set(['did:key:z6MkScope' as const])]]))).toBe('bafyA')
    expect(await a.revocations.findRevoked(new Map([['bafyA', new Set(['did:key:z6MkOther' as const])]]))).toBeUndefined()
    const again = await a.revocations.record({ ...record('bafyA'), time: 1 })
    expect(again).toMatchObject({ created: false, record: { time: 1_795_000_000 } })
    expect(a.revocations.unlogged()).toEqual([record('bafyA')])
    a.revocations.setLogIndex(record('bafyA'), 7)
    a.close()
    const b = UcanStore.open(file)
    expect(b.revocations.unlogged()).toEqual([])
    expect(await b.revocations.record(record('bafyA'))).toMatchObject({ created: false, index: 7 })
    // Rebuilding from the log: a new record is added with its index; a known one gets its index.
    expect(b.revocations.restore(record('bafyB'), 8)).toBe(true)
    expect(b.revocations.restore(record('bafyA'), 7)).toBe(false)
    expect(b.revocations.count()).toBe(2)
    b.close()
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

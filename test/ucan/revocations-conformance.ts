/**
 * The revocation index's behaviour (RevocationIndex, src/ucan/revocation.ts) as one suite, run
 * against every implementation: SQLite (test/ucan/store.test.ts) and PostgreSQL
 * (test/postgres/revocations-store.test.ts). Every call is awaited, so synchronous and
 * asynchronous stores are checked alike.
 */
import { describe, expect, test } from 'vitest'
import { type RevocationIndex, type RevocationQuery, type RevocationRecord, RevocationScopeFull } from '../../src/ucan/index.js'

/** An empty index with the given per-scope cap, and how to close it. */
export type OpenRevocations = (o: { now: () => number; maxPerScope?: number }) => Promise<{ store: RevocationIndex; close(): Promise<void> | void }>

/** A record of `ucan` revoked by `scope`. */
export const revocation = (ucan: string, scope = 'did:key:z6MkScope', time = 1_795_000_000): RevocationRecord => ({
  ucan,
  scope: scope as `did:${string}:${string}`,
  revoker: 'did:key:z6MkRevoker',
  invocation: 'bafyinvocation',
  time,
})

/** A revocation query: CID → the principals whose revocation counts. */
export const query = (entries: [string, string[]][]): RevocationQuery => new Map(entries.map(([cid, ps]) => [cid, new Set(ps as `did:${string}:${string}`[])]))

/** Registers the conformance tests for the indexes `open` makes (each test gets an empty one). */
export function revocationIndexConformance(name: string, open: OpenRevocations): void {
  describe(`RevocationIndex conformance: ${name}`, () => {
    test('records are effective at once, idempotent per (ucan, scope), and remember their log index', async () => {
      const { store: s, close } = await open({ now: () => 1000 })
      expect(s.now()).toBe(1000)
      expect(await s.record(revocation('bafyA'))).toEqual({ record: revocation('bafyA'), created: true, index: undefined })
      expect(await s.findRevoked(query([['bafyA', ['did:key:z6MkScope']]]))).toBe('bafyA')
      expect(await s.findRevoked(query([['bafyA', ['did:key:z6MkOther']]]))).toBeUndefined()
      expect(await s.record({ ...revocation('bafyA'), time: 1 })).toEqual({ record: revocation('bafyA'), created: false, index: undefined })
      expect(await s.unlogged()).toEqual([revocation('bafyA')])
      expect(await s.logIndex(revocation('bafyA'))).toBeUndefined()
      await s.setLogIndex(revocation('bafyA'), 7)
      expect(await s.logIndex(revocation('bafyA'))).toBe(7)
      expect(await s.logIndex(revocation('bafyZ'))).toBeUndefined()
      expect(await s.unlogged()).toEqual([])
      expect(await s.record(revocation('bafyA'))).toMatchObject({ created: false, index: 7 })
      // Rebuilding from the log: a new record is added with its index; a known one gets its index.
      expect(await s.restore(revocation('bafyB'), 8)).toBe(true)
      expect(await s.restore(revocation('bafyA'), 9)).toBe(false)
      expect([await s.logIndex(revocation('bafyA')), await s.logIndex(revocation('bafyB'))]).toEqual([9, 8])
      expect(await s.count()).toBe(2)
      await close()
    })

    test('unlogged records come oldest first (time, then ucan, then scope)', async () => {
      const { store: s, close } = await open({ now: () => 1000 })
      const records = [revocation('bafyC', 'did:key:z6MkA', 5), revocation('bafyB', 'did:key:z6MkB', 3), revocation('bafyB', 'did:key:z6MkA', 3), revocation('bafyA', 'did:key:z6MkA', 4)]
      for (const r of records) await s.record(r)
      expect(await s.unlogged()).toEqual([records[2], records[1], records[3], records[0]])
      await close()
    })

    test("concurrent lookups (a request's invocations) each get their own answer", async () => {
      const { store: s, close } = await open({ now: () => 1000 })
      await s.record(revocation('bafyA', 'did:key:z6MkA'))
      await s.record(revocation('bafyB', 'did:key:z6MkB'))
      const answers = await Promise.all([
        s.findRevoked(query([['bafyX', ['did:key:z6MkA']], ['bafyA', ['did:key:z6MkA']]])),
        s.findRevoked(query([['bafyA', ['did:key:z6MkB']]])),
        s.findRevoked(query([['bafyB', ['did:key:z6MkA', 'did:key:z6MkB']], ['bafyA', ['did:key:z6MkA']]])),
        s.findRevoked(query([])),
      ])
      expect(answers).toEqual(['bafyA', undefined, 'bafyB', undefined])
      await close()
    })

    test('records per scope are capped (RevocationScopeFull, nothing recorded); a recorded one is still answered; other scopes unaffected', async () => {
      const { store: s, close } = await open({ now: () => 1000, maxPerScope: 2 })
      await s.record(revocation('bafyA'))
      await s.record(revocation('bafyB'))
      const full = s.record(revocation('bafyC'))
      await expect(full).rejects.toBeInstanceOf(RevocationScopeFull)
      await expect(full).rejects.toMatchObject({ name: 'RevocationScopeFull', scope: 'did:key:z6MkScope', limit: 2 })
      expect(await s.findRevoked(query([['bafyC', ['did:key:z6MkScope']]]))).toBeUndefined()
      expect(await s.record(revocation('bafyB'))).toMatchObject({ created: false })
      expect(await s.record(revocation('bafyC', 'did:key:z6MkOther'))).toMatchObject({ created: true })
      // The log is authoritative: a record read back from it is restored past the cap.
      expect(await s.restore(revocation('bafyD'), 0)).toBe(true)
      expect(await s.count()).toBe(4)
      await close()
    })

    test('rejects a bad cap at construction', async () => {
      await expect(open({ now: () => 0, maxPerScope: 0 })).rejects.toThrow(RangeError)
      await expect(open({ now: () => 0, maxPerScope: 1.5 })).rejects.toThrow(RangeError)
    })
  })
}

/**
 * Revocations in SQLite (the `revocations` table of store.ts's file, `synchronous = FULL`): the
 * index the authorizer queries on every append, each row with its revocation-log index once
 * appended (src/server/revocations.ts keeps the two in step).
 */
import type Database from 'better-sqlite3'
import type { API } from '@ucanto/core'
import {
  DEFAULT_REVOCATIONS_PER_SCOPE,
  type RevocationQuery,
  type RevocationRecord,
  type RevocationIndex,
  RevocationScopeFull,
  batchedRevocationLookup,
} from './revocation.js'

interface RevocationRow {
  ucan: string
  scope: string
  revoker: string
  invocation: string
  time: number
  log_index: number | null
}

/**
 * Revocations in SQLite, scoped as `ucan/revoke` (revocation.ts). A revocation is effective once
 * {@link record} resolves. `findRevoked` throws (the caller fails closed) if the file is unusable.
 */
export class SqliteRevocations implements RevocationIndex {
  readonly #lookup: Database.Statement<[string], { ucan: string; scope: string }>
  readonly #find = batchedRevocationLookup((cids) => this.#lookup.all(JSON.stringify(cids)))
  readonly #get: Database.Statement<[string, string], RevocationRow>
  readonly #insert: Database.Statement<[string, string, string, string, number, number | null]>
  readonly #setIndex: Database.Statement<[number, string, string]>
  readonly #unlogged: Database.Statement<[], RevocationRow>
  readonly #count: Database.Statement<[], { n: number }>
  readonly #scopeCount: Database.Statement<[string], number>
  readonly #add: (record: RevocationRecord) => boolean
  readonly #now: () => number
  readonly #max: number

  /**
   * @param maxPerScope most records per scope (positive integer); default {@link DEFAULT_REVOCATIONS_PER_SCOPE}.
   * @throws RangeError for a bad `maxPerScope`.
   */
  constructor(db: Database.Database, now: () => number, maxPerScope = DEFAULT_REVOCATIONS_PER_SCOPE) {
    if (!Number.isSafeInteger(maxPerScope) || maxPerScope < 1) throw new RangeError('maxRevocationsPerScope must be a positive integer')
    this.#max = maxPerScope
    this.#lookup = db.prepare('SELECT ucan, scope FROM revocations WHERE ucan IN (SELECT value FROM json_each(?))')
    this.#get = db.prepare('SELECT * FROM revocations WHERE ucan = ? AND scope = ?')
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO revocations (ucan, scope, revoker, invocation, time, log_index) VALUES (?, ?, ?, ?, ?, ?)',
    )
    this.#setIndex = db.prepare('UPDATE revocations SET log_index = ? WHERE ucan = ? AND scope = ?')
    this.#unlogged = db.prepare('SELECT * FROM revocations WHERE log_index IS NULL ORDER BY time, ucan, scope')
    this.#count = db.prepare('SELECT count(*) AS n FROM revocations')
    this.#scopeCount = db.prepare('SELECT n FROM revocation_scopes WHERE scope = ?').pluck() as Database.Statement<[string], number>
    // Check and insert in one transaction: the cap holds whatever else writes the file.
    this.#add = db.transaction((r: RevocationRecord): boolean => {
      if (this.#get.get(r.ucan, r.scope) !== undefined) return false
      if ((this.#scopeCount.get(r.scope) ?? 0) >= this.#max) throw new RevocationScopeFull(r.scope, this.#max)
      return this.#insert.run(r.ucan, r.scope, r.revoker, r.invocation, r.time, null).changes === 1
    })
    this.#now = now
  }

  /**
   * As {@link RevocationChecker.findRevoked}. Lookups made before the event loop's next check
   * phase (all invocations of one request, and of any other request being worked on) are answered
   * together by one SQLite statement over every CID they name (`WHERE ucan IN json_each(?)`), run
   * after the calls; each resolves to the first CID of its own query revoked by one of its
   * principals. Rejects (all of the batch) if the file is unusable.
   */
  findRevoked(query: RevocationQuery): Promise<string | undefined> {
    return this.#find(query)
  }

  async record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }> {
    const created = this.#add(record)
    const row = this.#get.get(record.ucan, record.scope) as RevocationRow
    return { record: toRecord(row), created, index: row.log_index ?? undefined }
  }

  /**
   * Adds a record read back from the revocation log at `index` (rebuilding a lost index);
   * a record already present only gets its index. Returns whether it was new.
   */
  restore(record: RevocationRecord, index: number): boolean {
    const created = this.#insert.run(record.ucan, record.scope, record.revoker, record.invocation, record.time, index).changes === 1
    if (!created) this.#setIndex.run(index, record.ucan, record.scope)
    return created
  }

  /** The revocation log index of a recorded (ucan, scope), or undefined if not recorded or not yet appended. */
  logIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>): number | undefined {
    return this.#get.get(record.ucan, record.scope)?.log_index ?? undefined
  }

  /** Notes that `record` is entry `index` of the revocation log. */
  setLogIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>, index: number): void {
    this.#setIndex.run(index, record.ucan, record.scope)
  }

  /** Records not yet in the revocation log, oldest first. */
  unlogged(): RevocationRecord[] {
    return this.#unlogged.all().map(toRecord)
  }

  /** How many (ucan, scope) revocations are recorded. */
  count(): number {
    return this.#count.get()!.n
  }

  /** The store's clock, Unix seconds (what `time` of a new record should be). */
  now(): number {
    return this.#now()
  }
}

function toRecord(row: RevocationRow): RevocationRecord {
  return { ucan: row.ucan, scope: row.scope as API.DID, revoker: row.revoker as API.DID, invocation: row.invocation, time: row.time }
}

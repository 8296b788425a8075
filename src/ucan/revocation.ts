/**
 * UCAN revocation checks with Storacha's `ucan/revoke` scoping (`@storacha/capabilities/ucan`
 * `revoke`; upload-api `utils/revocation.js` `toRevocationQuery`).
 *
 * A revocation names a UCAN by CID and the principal who revoked it (its scope). It takes effect
 * for a chain only if that principal is in the chain at or above the revoked UCAN: the UCAN's own
 * issuer or audience, or the issuer or audience of any proof upstream of it (closer to the space).
 * So a stranger "revoking" someone's delegation changes nothing.
 */
import { setImmediate } from 'node:timers'
import type { API } from '@ucanto/core'

/**
 * UCAN CID (string) → the principals whose revocation of that UCAN counts for the chain being
 * checked.
 */
export type RevocationQuery = Map<string, Set<API.DID>>

/**
 * Where revocations are looked up. Owned by the authorizer; a store (memory, SQLite, a remote
 * service) implements it.
 */
export interface RevocationChecker {
  /**
   * Resolves to the CID of a UCAN in `query` that one of its listed principals has revoked, or
   * `undefined` if none has. Rejects if the store cannot answer; the caller then refuses the
   * request (fails closed). Must be safe to call concurrently.
   */
  findRevoked(query: RevocationQuery): Promise<string | undefined>
}

/** A checker for which nothing is revoked: the default until a store is configured. */
export const noRevocations: RevocationChecker = {
  findRevoked: async () => undefined,
}

/** An in-memory {@link RevocationChecker} plus the write side a `ucan/revoke` handler needs. */
export interface MemoryRevocations extends RevocationChecker {
  /** Records that `scope` revoked the UCAN `cid`. Idempotent. */
  add(cid: string, scope: API.DID): void
}

/** Creates an empty {@link MemoryRevocations}; for tests and single-process deployments. */
export function createMemoryRevocations(): MemoryRevocations {
  const revoked = new Map<string, Set<API.DID>>()
  return {
    add(cid, scope) {
      const scopes = revoked.get(cid) ?? new Set<API.DID>()
      scopes.add(scope)
      revoked.set(cid, scopes)
    },
    async findRevoked(query) {
      for (const [cid, principals] of query) {
        const scopes = revoked.get(cid)
        if (scopes === undefined) continue
        for (const p of principals) if (scopes.has(p)) return cid
      }
      return undefined
    },
  }
}

/**
 * A {@link RevocationChecker.findRevoked} for a store: the lookups made before the event loop's
 * next check phase (all invocations of one request, and of any other request being worked on) are
 * answered together by one call of `rowsFor` over every CID they name (each once), run after the
 * calls; each resolves to the first CID of its own query (in its order) revoked by one of its
 * principals. If `rowsFor` throws or rejects, the whole batch rejects (the authorizer fails closed).
 * @param rowsFor the recorded (ucan, scope) pairs whose `ucan` is one of `cids`.
 */
export function batchedRevocationLookup(
  rowsFor: (cids: string[]) => Iterable<{ ucan: string; scope: string }> | Promise<Iterable<{ ucan: string; scope: string }>>,
): (query: RevocationQuery) => Promise<string | undefined> {
  let pending: { query: RevocationQuery; resolve(cid: string | undefined): void; reject(err: unknown): void }[] = []
  const answer = async (): Promise<void> => {
    const batch = pending
    pending = []
    const revoked = new Map<string, Set<string>>()
    try {
      const cids = new Set<string>()
      for (const { query } of batch) for (const cid of query.keys()) cids.add(cid)
      for (const { ucan, scope } of await rowsFor([...cids])) {
        const scopes = revoked.get(ucan) ?? new Set<string>()
        scopes.add(scope)
        revoked.set(ucan, scopes)
      }
    } catch (err) {
      for (const { reject } of batch) reject(err)
      return
    }
    for (const { query, resolve } of batch) resolve(firstRevoked(query, revoked))
  }
  return (query) =>
    new Promise((resolve, reject) => {
      pending.push({ query, resolve, reject })
      if (pending.length === 1) setImmediate(() => void answer())
    })
}

/** The first CID of `query` (in its order) that `revoked` (CID → the scopes that revoked it) lists for one of its principals. */
function firstRevoked(query: RevocationQuery, revoked: ReadonlyMap<string, ReadonlySet<string>>): string | undefined {
  for (const [cid, principals] of query) {
    const scopes = revoked.get(cid)
    if (scopes === undefined) continue
    for (const scope of scopes) if (principals.has(scope as API.DID)) return cid
  }
  return undefined
}

/**
 * The revocation query of a ucanto authorization path (what `claim`/`access` return): every UCAN
 * on the path, each with its issuer and audience plus the principals of every UCAN above it.
 * Merges into `into` when given (so several paths can share one store lookup) and returns it.
 */
export function toRevocationQuery(auth: API.Authorization, into: RevocationQuery = new Map()): RevocationQuery {
  scopeOf(auth, into)
  return into
}

function scopeOf(auth: API.Authorization, query: RevocationQuery): Set<API.DID> {
  const { delegation } = auth
  const scope = new Set<API.DID>([delegation.issuer.did(), delegation.audience.did()])
  for (const proof of auth.proofs) for (const p of scopeOf(proof, query)) scope.add(p)
  const id = delegation.cid.toString()
  const existing = query.get(id)
  if (existing === undefined) query.set(id, scope)
  else for (const p of scope) existing.add(p)
  return scope
}

/**
 * One `ucan/revoke` as recorded in the revocation transparency log (origin
 * `<prefix>/revocations`). Each log entry is one record in the canonical JSON of
 * {@link formatRevocationRecord}, e.g.
 *
 *   {"type":"ucan/revoke","ucan":"bafy…","scope":"did:key:z6Mk…","revoker":"did:key:z6Mk…","invocation":"bafy…","time":1795000000}
 */
export interface RevocationRecord {
  /** CID (CIDv1 base32) of the revoked UCAN (`nb.ucan`). */
  ucan: string
  /** The principal on whose authority it was revoked (the invocation's `with`). */
  scope: API.DID
  /** The issuer of the `ucan/revoke` invocation (the scope itself, or a delegate of it). */
  revoker: API.DID
  /** CID of the `ucan/revoke` invocation (the cause). */
  invocation: string
  /** When the service recorded it, Unix seconds. */
  time: number
}

/** Longest record {@link parseRevocationRecord} reads, in bytes. */
export const MAX_REVOCATION_RECORD_SIZE = 4096

/**
 * The canonical entry bytes of a record: UTF-8 JSON with exactly the keys `type` (always
 * `"ucan/revoke"`), `ucan`, `scope`, `revoker`, `invocation`, `time`, in that order, no whitespace.
 */
export function formatRevocationRecord(r: RevocationRecord): Uint8Array {
  const json = JSON.stringify({ type: 'ucan/revoke', ucan: r.ucan, scope: r.scope, revoker: r.revoker, invocation: r.invocation, time: r.time })
  return new TextEncoder().encode(json)
}

/** The bytes are not a canonical revocation record. */
export class InvalidRevocationRecord extends Error {
  override name = 'InvalidRevocationRecord'
}

/**
 * Parses {@link formatRevocationRecord}'s bytes strictly: re-encodes and compares, so every entry
 * has exactly one spelling.
 * @throws InvalidRevocationRecord
 */
export function parseRevocationRecord(bytes: Uint8Array): RevocationRecord {
  if (bytes.length > MAX_REVOCATION_RECORD_SIZE) throw new InvalidRevocationRecord('record too long')
  let value: Record<string, unknown>
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>
  } catch {
    throw new InvalidRevocationRecord('record is not UTF-8 JSON')
  }
  const { ucan, scope, revoker, invocation, time } = value ?? {}
  if (
    typeof ucan !== 'string' ||
    typeof scope !== 'string' ||
    !scope.startsWith('did:') ||
    typeof revoker !== 'string' ||
    !revoker.startsWith('did:') ||
    typeof invocation !== 'string' ||
    typeof time !== 'number' ||
    !Number.isSafeInteger(time)
  ) {
    throw new InvalidRevocationRecord('record fields are missing or of the wrong type')
  }
  const record: RevocationRecord = { ucan, scope: scope as API.DID, revoker: revoker as API.DID, invocation, time }
  if (Buffer.compare(Buffer.from(formatRevocationRecord(record)), Buffer.from(bytes)) !== 0) {
    throw new InvalidRevocationRecord('record is not in canonical form')
  }
  return record
}

/**
 * Default cap of revocation records per principal (scope): 1,000 records of ~300 bytes of entry
 * (~1.25 KB with the index row and log tiles) each, ~1.25 MB per principal.
 */
export const DEFAULT_REVOCATIONS_PER_SCOPE = 1000
/** Default sustained revocations recorded per client address, per second (each is a permanent log entry; keys are free). */
export const DEFAULT_REVOKE_RATE = 1
/** Default burst of revocations recorded per client address. */
export const DEFAULT_REVOKE_BURST = 20

/** The scope already has its cap of revocation records; nothing was recorded. */
export class RevocationScopeFull extends Error {
  override name = 'RevocationScopeFull'
  /**
   * @param scope the principal at its cap.
   * @param limit its cap, in records.
   */
  constructor(
    readonly scope: string,
    readonly limit: number,
  ) {
    super(`${scope} has ${limit} revocation records, its cap`)
  }
}

/**
 * Where the `ucan/revoke` handler records revocations. Owned by the service; the SQLite store
 * (store.ts) implements it.
 */
export interface RevocationRecorder extends RevocationChecker {
  /**
   * Records `record` so that it takes effect for every later {@link RevocationChecker.findRevoked}
   * before this resolves (durably, for a durable store). Idempotent per (ucan, scope): recording
   * it again returns the first record and `created: false`. `index` is its position in the
   * revocation log once known.
   * @throws {RevocationScopeFull} (rejects) if `record.scope` has its cap of records and this
   *   (ucan, scope) is not one of them; nothing is recorded.
   */
  record(record: RevocationRecord): Promise<{ record: RevocationRecord; created: boolean; index: number | undefined }>
}

/** A value or a promise of it: the SQLite index answers synchronously, the PostgreSQL one asynchronously. */
export type Awaitable<T> = T | Promise<T>

/**
 * The revocation index behind the revocation log (src/server/revocations.ts): a
 * {@link RevocationRecorder} whose rows remember their revocation-log index, so the two are kept
 * in step. Implemented by SqliteRevocations and PgRevocations.
 */
export interface RevocationIndex extends RevocationRecorder {
  /**
   * Adds a record read back from the revocation log at `index` (rebuilding a lost index; the
   * per-scope cap does not apply: the log is authoritative); a record already present only gets
   * its index. Resolves to whether it was new.
   */
  restore(record: RevocationRecord, index: number): Awaitable<boolean>
  /** The revocation log index of a recorded (ucan, scope), or undefined if not recorded or not yet appended. */
  logIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>): Awaitable<number | undefined>
  /** Notes that `record` is entry `index` of the revocation log. */
  setLogIndex(record: Pick<RevocationRecord, 'ucan' | 'scope'>, index: number): Awaitable<void>
  /** Records not yet in the revocation log, oldest first (by time, then ucan, then scope). */
  unlogged(): Awaitable<RevocationRecord[]>
  /** How many (ucan, scope) revocations are recorded. */
  count(): Awaitable<number>
  /** The store's clock, Unix seconds (what `time` of a new record should be). */
  now(): number
}

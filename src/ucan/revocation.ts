/**
 * UCAN revocation checks with Storacha's `ucan/revoke` scoping (`@storacha/capabilities/ucan`
 * `revoke`; upload-api `utils/revocation.js` `toRevocationQuery`).
 *
 * A revocation names a UCAN by CID and the principal who revoked it (its scope). It takes effect
 * for a chain only if that principal is in the chain at or above the revoked UCAN: the UCAN's own
 * issuer or audience, or the issuer or audience of any proof upstream of it (closer to the space).
 * So a stranger "revoking" someone's delegation changes nothing.
 */
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

/**
 * ucanlog capability declarations (docs/wire.md). The log of a Storacha space is named by
 * the space's DID, so the `tlog/*` abilities take the space as their resource (`with`).
 */
import type { API } from '@ucanto/core'
import { capability, DID, Schema } from '@ucanto/validator'
import { attest, revoke } from '@storacha/capabilities/ucan'

/** Largest `tlog/read` page, in entries. */
export const MAX_READ_LIMIT = 1000

/** `tlog/read` page size, in entries, when the invocation gives no `nb.limit`. */
export const DEFAULT_READ_LIMIT = 100

/** Resource of the `tlog/*` abilities: a space DID (`did:key:z…`), which is also the log id. */
export const SpaceDID = DID.match({ method: 'key' })

/** A space DID (`did:key:z…`): the `with` of the `tlog/*` abilities and the id of the space's log. */
export type SpaceDID = API.DIDKey

/** Caveats of `tlog/append`. */
export const TlogAppendCaveats = Schema.struct({
  /**
   * The entry: canonical standard padded base64 (RFC 4648 §4) of 1..65535 bytes. Checked by the
   * handler, not this schema, so a bad value gets its own name (`InvalidData`, `EntryTooLarge`).
   */
  data: Schema.string(),
  /**
   * The Agent→Service delegation that lets the service write to the space: the string
   * `storacha delegation create --base64` prints (multibase base64 of a CIDv1 with codec CAR
   * 0x0202 and an identity multihash over the delegation archive), or plain standard base64 of the
   * archive. Its issuer must be the invocation's issuer and its audience the service.
   */
  delegation: Schema.string(),
})

/**
 * `tlog/append`: add one entry to the space's transparency log.
 * `with`: the space DID. Authorized by `nb.delegation`, not by the invocation's proofs.
 */
export const TlogAppend = capability({
  can: 'tlog/append',
  with: SpaceDID,
  nb: TlogAppendCaveats,
})

/** Caveats of `tlog/read`. */
export const TlogReadCaveats = Schema.struct({
  /** Index of the first entry to return; integer ≥ 0, default 0. */
  offset: Schema.integer().greaterThan(-1).optional(),
  /** Number of entries to return at most; integer 1..1000, default 100. A page may be shorter. */
  limit: Schema.integer().greaterThan(0).lessThan(MAX_READ_LIMIT + 1).optional(),
})

/**
 * `tlog/read`: read a page of the space's log entries. Public: any principal's signed invocation
 * addressed to the service may read, as anyone may fetch the tiles over HTTP.
 * `with`: the space DID.
 */
export const TlogRead = capability({
  can: 'tlog/read',
  with: SpaceDID,
  nb: TlogReadCaveats,
})

/** Caveats of `tlog/create`. */
export const TlogCreateCaveats = Schema.struct({
  /** The Agent→Service delegation, exactly as in `tlog/append` (same checks, same failures). */
  delegation: Schema.string(),
})

/**
 * `tlog/create`: create the space's log now (optional: the first `tlog/append` creates it too).
 * Idempotent: creating an existing log returns it unchanged. Authorized exactly like
 * `tlog/append` minus the entry. `with`: the space DID. Ok result: `{ logId, origin, vkey, treeSize }`.
 */
export const TlogCreate = capability({
  can: 'tlog/create',
  with: SpaceDID,
  nb: TlogCreateCaveats,
})

/**
 * `ucan/revoke`, exactly as `@storacha/capabilities/ucan` declares it: `with` the DID of the
 * revoking principal, `nb.ucan` the link of the revoked UCAN (its blocks attached to the
 * invocation), `nb.proof` optional links of the chain from it to `with`. It takes effect for a
 * chain only if `with` is the revoked UCAN's issuer or audience or upstream of it in that chain.
 */
export const UCANRevoke = revoke

/**
 * `ucan/attest`, exactly as `@storacha/capabilities/ucan` declares it: `with` the attesting
 * service (Storacha: `did:web:up.storacha.network`), `nb.proof` the link of the attested UCAN
 * (a `did:mailto` account's delegation, whose own signature is empty).
 */
export const UCANAttest = attest

/**
 * ucanlog capability declarations (DESIGN.md "UCAN RPC"). The log of a Storacha space is named by
 * the space's DID, so both abilities take the space as their resource (`with`).
 */
import { capability, DID, Schema } from '@ucanto/validator'

/** Largest entry, in bytes: a C2SP tlog-tiles entry bundle prefixes each entry with a 2-byte length. */
export const MAX_ENTRY_SIZE = 65535

/** Largest `tlog/read` page, in entries. */
export const MAX_READ_LIMIT = 1000

/** `tlog/read` page size, in entries, when the invocation gives no `nb.limit`. */
export const DEFAULT_READ_LIMIT = 100

/** Resource of both abilities: a space DID (`did:key:z…`), which is also the log id. */
export const SpaceDID = DID.match({ method: 'key' })

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

/**
 * The port between the UCAN RPC and the log engine: what the handlers ask of a space's log
 * ({@link LogService}) and the engine's answer to an append ({@link Appended}), in engine terms.
 */
import type { API } from '@ucanto/core'
import type { Hash } from '../tlog/hash.js'
import type { SpaceDID } from './capabilities.js'
import type { LogRefusal } from './errors.js'
import type { CreateResult } from './wire.js'

/**
 * Where an appended entry is (src/log `Log.append` resolves to this shape). Published: the
 * cosigned checkpoint that includes it and the RFC 6962 §2.1.1 inclusion proof of the entry in
 * that checkpoint's tree. Not published (the witness quorum was not met in time; the entry is
 * durable and will be published later): the integrated tree it is in.
 */
export type Appended = {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The entry's position in the log, 0-based. */
  index: number
} & (
  | {
      published: true
      /** The published checkpoint: its tree size (entries, > index), root hash and cosigned note text. */
      checkpoint: { size: number; rootHash: Hash; note: string }
      /** Inclusion proof of the entry in `checkpoint`'s tree. */
      inclusionProof: Hash[]
    }
  | {
      published: false
      /** The integrated tree: its size (entries, > index) and root hash. */
      tree: { size: number; rootHash: Hash }
    }
)

/**
 * The log engine as the RPC layer needs it. Owned here; src/log implements it (wired in
 * src/server/service.ts). It speaks engine: entries are bytes, hashes are bytes; the handlers
 * encode for the wire (wire.ts).
 */
export interface LogService {
  /**
   * Appends one entry to the space's log, creating the log if it has none. Resolves once the
   * entry is durable and, if the witness quorum was met in time, published (`published: true`),
   * with where the entry is ({@link Appended}).
   * A rejection is reported to the client as `InternalError` (a log refusal by its name, see
   * `reserve`); the service never retries the same invocation (it may have been sequenced). Called at most once per invocation CID while the
   * invocation is valid; safe to call concurrently, also for the same space.
   * @param entry 1..65535 bytes.
   * @param meta.invocation the invocation's CID (canonical; see delegation.ts).
   * @param meta.delegation the verified Agent→Service delegation to write to the space with, or
   *   (an append checked on a request worker, request-check.ts) a {@link DelegationRef} to it:
   *   {@link loadDelegation} gives the delegation either way.
   * @param meta.client the client's IP address, when known (to charge log creation to it).
   */
  append(
    space: SpaceDID,
    entry: Uint8Array,
    meta: { invocation: string; delegation: API.Delegation | DelegationRef; client?: string },
  ): Promise<Appended>
  /**
   * Reads up to `limit` entries from index `offset` (0-based), stopping before the entry that would
   * take their total length past `maxBytes` (so it holds no more than that, plus one entry bundle
   * while reading). Resolves to `undefined` if the space has no log (nothing is created). `total`
   * is the number of entries in the log; `entries` is empty when `offset ≥ total` or when the
   * first entry alone is longer than `maxBytes`.
   * @param offset integer ≥ 0. @param limit integer 1..1000. @param maxBytes bytes of entries, integer ≥ 0.
   */
  read(space: SpaceDID, offset: number, limit: number, maxBytes: number): Promise<{ entries: Uint8Array[]; total: number } | undefined>
  /**
   * Creates the space's log if it has none (idempotent) and describes it. Called only for an
   * authorized `tlog/create`. A rejection is reported as `InternalError`.
   * @param meta.client the client's IP address, when known (to charge log creation to it).
   */
  create(space: SpaceDID, meta?: { client?: string }): Promise<CreateResult>
  /**
   * Optional: makes the space's log ready for an append (opens it, or creates it charging
   * `meta.client`) BEFORE the invocation is recorded as run, so that a refusal here leaves the
   * invocation unused and the client may send it again. The append runs while the reservation is
   * held; `release` is called after it.
   * A rejection whose `name` is a {@link LogRefusal}'s (`LogUnavailable`, `TooManyOpenLogs`,
   * `LogCreationLimited`, `LogFull`, `Pushback`, `StorageFull`, `StorageFailed`, `UploadBacklogFull`) reaches the client by that name, from here and
   * from every other method (errors.ts `logRefusal`, the one mapping); any other is `InternalError`.
   * @param meta.delegation the append's verified Agent→Service delegation (for the log's uploads:
   *   kept even when the append is refused, so a refusal for an upload backlog caused by an expired
   *   delegation is cured by the append that brings a fresh one), or a {@link DelegationRef} to it.
   */
  reserve?(space: SpaceDID, meta: { client?: string; delegation?: API.Delegation | DelegationRef }): Promise<{ release(): void }>
  /**
   * Optional, cheap, asked BEFORE any signature or chain work for `tlog/append` and `tlog/create`:
   * resolves to the {@link LogRefusal} that creating the space's log for `meta.client` would get
   * now (its creation rate or the total spent), or undefined (the log exists, or may be created).
   * Charges nothing. `space` is the invocation's unverified `with`: a refusal only spares work.
   */
  creationRefusal?(space: SpaceDID, meta: { client?: string }): Promise<Error | undefined>
}

/**
 * A verified Agent→Service delegation not decoded on this thread: a request worker checked it
 * (request-check.ts) and handed over its `nb.delegation` string, decoded only when the log needs
 * the delegation itself (to upload with it).
 */
export interface DelegationRef {
  /** The delegation's CID (string form). */
  cid: string
  /** Decodes the delegation (delegation.ts `parseDelegation` of the string the worker checked). @throws if it does not parse (it did on the worker). */
  load(): Promise<API.Delegation>
}

/** The delegation `d` is or refers to (see {@link DelegationRef}). */
export async function loadDelegation(d: API.Delegation | DelegationRef): Promise<API.Delegation> {
  return 'load' in d && typeof d.load === 'function' ? d.load() : (d as API.Delegation)
}

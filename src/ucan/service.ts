/**
 * The ucanlog UCAN RPC service (DESIGN.md "UCAN RPC"): a ucanto server implementing `tlog/append`,
 * `tlog/read`, `tlog/create` and `ucan/revoke` over the CAR transport. Mount `server.request({ headers, body })` on an HTTP
 * route; it decodes the agent message, runs every invocation in it, and encodes signed receipts.
 *
 * Both abilities are raw ucanto methods: the server calls them with no audience check and no
 * `access()`, and they do all checking themselves (authorize.ts) so every failure keeps its
 * ucanlog name (errors.ts). Abilities the service does not implement get `InvalidCapability`
 * rather than ucanto's `HandlerNotFound` (whose receipt would carry a server stack trace).
 */
import * as Server from '@ucanto/server'
import * as CAR from '@ucanto/transport/car'
import { Delegation, Message, Receipt, UCAN } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { access, DID as DIDSchema, Schema } from '@ucanto/validator'
import { encodeBase64 } from '../tlog/encoding.js'
import {
  DEFAULT_MAX_INVOCATION_LIFETIME,
  type TrustedAttester,
  attesterTrust,
  authorizeAppend,
  authorizeCreate,
  checkInvocation,
  classify,
  createGrantCache,
  isReservedSpace,
  systemNow,
  verifyInvocationSignature,
} from './authorize.js'
import { DEFAULT_READ_LIMIT, SpaceDID, TlogReadCaveats, UCANRevoke } from './capabilities.js'
import { checkContentAddressed } from './delegation.js'
import {
  type AppendFailure,
  type CreateFailure,
  type FailureJSON,
  InternalError,
  InvalidCapability,
  RateLimited,
  type ProofGraphFailure,
  type LogRefusal,
  logRefusal,
  type ReadFailure,
  ReservedSpace,
  ResponseTooLarge,
  type RevokeFailure,
  Revoked,
  TooManyPendingInvocations,
  TooManyRevocations,
  UCANNotFound,
  UnrelatedRevocation,
  UnknownLog,
  truncate,
} from './errors.js'
import { createFastSigner, createPrincipalParser } from './principal.js'
import { DEFAULT_PROOF_GRAPH_BUDGET, checkProofGraph } from './proof-graph.js'
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT,
  type RequestBudget,
  type ResponsePool,
  createResponsePool,
} from './response-budget.js'
import { type ReplayGuard, ReplayGuardFull, createMemoryReplayGuard } from './replay.js'
import {
  type RevocationChecker,
  type RevocationRecorder,
  RevocationScopeFull,
  noRevocations,
  toRevocationQuery,
} from './revocation.js'

/** A space DID, which is also a log id. */
export type SpaceKey = `did:key:${string}`

/**
 * The log engine as the RPC layer needs it. Owned here; src/log implements it.
 */
export interface LogService {
  /**
   * Appends one entry to the space's log, creating the log if it has none. Resolves once the
   * entry is durable and, if the witness quorum was met in time, published (`published: true`).
   * A rejection is reported to the client as `InternalError`; the service never retries the same
   * invocation (it may have been sequenced). Called at most once per invocation CID while the
   * invocation is valid; safe to call concurrently, also for the same space.
   * @param entry 1..65535 bytes.
   * @param meta.invocation the invocation's CID (canonical; see delegation.ts).
   * @param meta.delegation the verified Agent→Service delegation to write to the space with.
   * @param meta.client the client's IP address, when known (to charge log creation to it).
   */
  append(
    space: SpaceKey,
    entry: Uint8Array,
    meta: { invocation: string; delegation: API.Delegation; client?: string },
  ): Promise<AppendResult>
  /**
   * Reads up to `limit` entries from index `offset` (0-based), stopping before the entry that would
   * take their total length past `maxBytes` (so it holds no more than that, plus one entry bundle
   * while reading). Resolves to `undefined` if the space has no log (nothing is created). `total`
   * is the number of entries in the log; `entries` is empty when `offset ≥ total` or when the
   * first entry alone is longer than `maxBytes`.
   * @param offset integer ≥ 0. @param limit integer 1..1000. @param maxBytes bytes of entries, integer ≥ 0.
   */
  read(space: SpaceKey, offset: number, limit: number, maxBytes: number): Promise<{ entries: Uint8Array[]; total: number } | undefined>
  /**
   * Creates the space's log if it has none (idempotent) and describes it. Called only for an
   * authorized `tlog/create`. A rejection is reported as `InternalError`.
   * @param meta.client the client's IP address, when known (to charge log creation to it).
   */
  create(space: SpaceKey, meta?: { client?: string }): Promise<CreateResult>
  /**
   * Optional: makes the space's log ready for an append (opens it, or creates it charging
   * `meta.client`) BEFORE the invocation is recorded as run, so that a refusal here leaves the
   * invocation unused and the client may send it again. The append runs while the reservation is
   * held; `release` is called after it.
   * A rejection whose `name` is a {@link LogRefusal} (`LogUnavailable`, `TooManyOpenLogs`,
   * `LogCreationLimited`) reaches the client by that name, from here and from every other method.
   */
  reserve?(space: SpaceKey, meta: { client?: string }): Promise<{ release(): void }>
  /**
   * Optional, cheap, asked BEFORE any signature or chain work for `tlog/append` and `tlog/create`:
   * resolves to the {@link LogRefusal} that creating the space's log for `meta.client` would get
   * now (its creation rate or the total spent), or undefined (the log exists, or may be created).
   * Charges nothing. `space` is the invocation's unverified `with`: a refusal only spares work.
   */
  creationRefusal?(space: SpaceKey, meta: { client?: string }): Promise<Error | undefined>
}

/** The ok result of `tlog/create`. */
export interface CreateResult {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The log's note verifier key (c2sp.org/signed-note vkey, Ed25519 type 0x01). */
  vkey: string
  /** Entries integrated so far (0 for a new log). */
  treeSize: number
}

/** The ok result of `ucan/revoke`: storacha's `{ time }` plus where the record is in the revocation log. */
export interface RevokeResult {
  /** When the revocation was (first) recorded, Unix milliseconds (storacha's `time`). */
  time: number
  /** CID of the revoked UCAN. */
  ucan: string
  /** The revoking principal (`with`). */
  scope: string
  /** Entry index in the revocation log (`<prefix>/revocations`), when it has been appended. */
  index?: number
}

/** The ok result of `tlog/append` (DESIGN.md), also what {@link LogService.append} resolves to. */
export interface AppendResult {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin line, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The entry's position in the log, 0-based. */
  index: number
  /** Size of the tree `checkpoint` commits to, in entries (> index). */
  treeSize: number
  /** Root hash of that tree, standard base64 of 32 bytes. */
  rootHash: string
  /** The (cosigned, when `published`) checkpoint note text (c2sp.org/tlog-checkpoint, signed-note). */
  checkpoint: string
  /** RFC 6962 inclusion proof of the entry in `checkpoint`'s tree, each hash standard base64. */
  inclusionProof: string[]
  /** Whether the checkpoint met the witness policy and was published; if false, the proof comes later. */
  published: boolean
}

/** The ok result of `tlog/read`. */
export interface ReadResult {
  /** Entries from `offset`, each standard padded base64; possibly fewer than `limit`. */
  entries: string[]
  /** Number of entries in the log. */
  total: number
}

/** Where the service reports failures it hides from clients (pino-compatible). */
export interface UcanLogger {
  error(details: Record<string, unknown>, message: string): void
}

/** Options of {@link createUcanService}. */
export interface UcanServiceOptions {
  /**
   * The service identity: its DID is every invocation's and delegation's required audience, and it
   * signs receipts. An Ed25519 ucanto signer is wrapped to sign with node:crypto (same bytes).
   */
  signer: API.Signer
  /** The log engine. */
  log: LogService
  /** Longest accepted invocation lifetime, seconds: `exp` at most this far ahead. Default 3600. */
  maxInvocationLifetime?: number
  /** Clock, Unix seconds. Default the system clock. */
  now?: () => number
  /** Revocation store. Default: nothing is revoked. */
  revocations?: RevocationChecker
  /** Replay guard. Default: an in-memory guard on the same clock. */
  replay?: ReplayGuard
  /** Signature verification. Default: principal.ts's node:crypto parser. */
  principal?: API.PrincipalParser
  /** Default: discard. */
  logger?: UcanLogger
  /**
   * Bytes of entry text (base64) that all `tlog/read`s of one request may return together; default
   * {@link DEFAULT_MAX_RESPONSE_BYTES}. A read gets the longest prefix of its page that fits in what
   * is left, or `ResponseTooLarge` if not even its first entry fits (the first read of a request
   * always gets one entry when this is ≥ 87,384, the base64 length of the largest entry).
   */
  maxResponseBytes?: number
  /**
   * Bytes of read responses all requests in flight may hold together; a request with a `tlog/read`
   * reserves `maxResponseBytes` of it until its response is encoded, and one that cannot is refused
   * whole with HTTP 503 (`ReadCapacityExhausted`). Default {@link DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT}.
   */
  maxResponseBytesInFlight?: number
  /**
   * Where `ucan/revoke` records revocations (and appends them to the revocation log). Default:
   * none, and `ucan/revoke` answers `InternalError`. Usually the same object as `revocations`.
   */
  revocationRecorder?: RevocationRecorder
  /** The trusted `ucan/attest` issuer for `did:mailto` chains (authorize.ts). Default: none. */
  attester?: TrustedAttester
  /**
   * Other DIDs the service controls (e.g. the bundled witness's did:key), refused as a space with
   * `ReservedSpace` by `tlog/append`, `tlog/create` and `tlog/read`, as the service DID always is.
   */
  reservedSpaces?: Iterable<string>
  /**
   * Most invocations one request may carry; more → HTTP 413 and nothing runs. Default
   * {@link DEFAULT_MAX_INVOCATIONS_PER_REQUEST}.
   */
  maxInvocationsPerRequest?: number
  /**
   * How long a request refused by a rate limit (HTTP 429) is held before the answer is sent, in
   * ms (at most its `Retry-After`): a client that ignores `Retry-After` and resends at once is
   * slowed to one refusal per connection per delay instead of costing a refusal per round trip.
   * Default {@link DEFAULT_REFUSAL_DELAY_MS}; 0 answers at once.
   */
  refusalDelayMs?: number
  /**
   * Asked once per `ucan/revoke` that would be recorded (authorized and related), with the
   * request's client address: charge it and answer undefined, or answer the seconds to wait
   * (→ `RateLimited`, nothing recorded). Every record is a permanent entry of the public revocation
   * log and keys are free, so this is what bounds how fast one client can grow it. Default: admit all.
   */
  admitRevocation?: (client: string | undefined) => number | undefined
  /** Rate limits and per-client concurrency (see {@link Admission}). Default: admit everything. */
  admission?: Admission
}

/**
 * Admission control: who pays for each invocation. Every invocation first costs its client
 * address ({@link Admission.request}, before any signature or chain work), so forged, replayed and
 * unauthorized traffic is paid by whoever sends it. Its verified issuer pays once per signed
 * invocation (a replay of one already charged is free to the issuer), and a space pays only for a
 * write a verified chain authorized. Work on the CPU is handed out in turns ({@link Admission.turn}),
 * round-robin across client addresses. A method answering seconds refuses: the invocation
 * gets `RateLimited` and nothing runs; a request whose every invocation was refused is HTTP 429.
 */
export interface Admission {
  /**
   * Charges `invocations` to the request's client address; called before decoding (1) and after
   * (the rest). Seconds until they could be admitted (nothing taken), or undefined (taken).
   */
  request(invocations: number, request: RequestContext): number | undefined
  /**
   * Waits for the request's turn to be worked on (its client address's round-robin turn and a free
   * slot) and resolves to the function that gives the turn back. With `o.always` the wait is never
   * refused (the work must finish: answering what already ran).
   * @throws SchedulerFull (rejects) when the address has too many requests waiting (→ HTTP 429).
   */
  turn(request: RequestContext, o?: { always?: boolean }): Promise<() => void>
  /**
   * Before authorizing an invocation whose signature verified: seconds its issuer must wait
   * before it can be charged (it was not charged yet and its issuer is out of tokens), or
   * undefined. Takes nothing.
   */
  check(charge: Charge): number | undefined
  /**
   * After authorization succeeded: charges the issuer and, when given, the space, all or nothing.
   * Free (undefined) for an invocation already charged. Seconds to wait when refused (nothing
   * taken, not remembered as charged).
   */
  charge(charge: Charge): number | undefined
  /** After authorization failed for an invocation whose signature verified: charges its issuer regardless, once. */
  debit(charge: Charge): void
}

/** One signed invocation as {@link Admission} charges it. */
export interface Charge {
  /** Identifies the signed invocation whatever its encoding: its issuer and signature. */
  id: string
  /** Its `exp`, Unix seconds (Infinity when none): how long its charge is remembered at most. */
  expiresAt: number
  /** The verified issuer. */
  issuer: API.DID
  /** The space, only for a write (tlog/append, tlog/create) that a verified chain authorized. */
  space?: string
}

/** Admits everything, charges nothing. */
const ADMIT_ALL: Admission = {
  request: () => undefined,
  turn: async () => () => {},
  check: () => undefined,
  charge: () => undefined,
  debit: () => {},
}

/** Rate-limited invocations → seconds to wait, for the HTTP answer (429 when all of a request's were). */
const rateLimited = new WeakMap<object, number>()

/** What the transport knows of the request an invocation came in (see {@link requestOf}). */
export interface RequestContext {
  /** The client's IP address (from the TCP socket), when known. */
  client?: string
  /** The invocation's turn on the CPU: its handler gives it back (`idle`) while it only waits, then takes it again (`busy`). */
  turn?: Turn
}

/**
 * A hold on one turn (see the Admission's `turn`): a request's own (decoding, encoding) or one
 * invocation's (its handler). Counted: taken by `busy`, given back by the matching `idle`, so the
 * turn is held while any holder works and given back while all only wait.
 */
export interface Turn {
  /** Takes (or shares) the turn; resolves once held. @throws SchedulerFull only for the request's first take. */
  busy(): Promise<void>
  /** Gives back one hold; the turn itself when none is left. */
  idle(): void
}

/** A {@link Turn} over `acquire` (the first call may be refused; later ones must not be). */
function createTurn(acquire: (always: boolean) => Promise<() => void>): Turn {
  let holders = 0
  let release: (() => void) | undefined
  let pending: Promise<void> | undefined
  let first = true
  return {
    busy() {
      holders++
      if (release !== undefined) return Promise.resolve()
      pending ??= acquire(!first).then(
        (r) => {
          pending = undefined
          if (holders === 0) r()
          else release = r
        },
        (err: unknown) => {
          pending = undefined
          holders = 0
          throw err
        },
      )
      first = false
      return pending
    },
    idle() {
      holders--
      if (holders === 0 && release !== undefined) {
        const r = release
        release = undefined
        r()
      }
    },
  }
}

/** Runs `wait` (pure waiting: a batch being integrated and witnessed) with the request's turn given back. */
async function waiting<T>(invocation: API.Invocation, wait: () => Promise<T>): Promise<T> {
  const turn = requestOf(invocation).turn
  turn?.idle()
  try {
    return await wait()
  } finally {
    await turn?.busy()
  }
}

/** Each decoded invocation object → the request it came in, for handlers (ucanto passes them only the invocation). */
const requests = new WeakMap<object, RequestContext>()

/** The request `invocation` came in; `{}` for an invocation not decoded by this service's `request`. */
export function requestOf(invocation: API.Invocation): RequestContext {
  return requests.get(invocation) ?? {}
}

/** How long a rate-limited request is held before its 429 is sent, by default (ms). */
export const DEFAULT_REFUSAL_DELAY_MS = 1000

/** Most invocations per request, by default. */
export const DEFAULT_MAX_INVOCATIONS_PER_REQUEST = 64

/** What ucanto calls a handler with besides the invocation (its context): here, the request's response budget. */
export interface HandlerContext {
  /** Absent when a handler is called outside a request (a fresh, unpooled budget is used). */
  responses?: RequestBudget
}

/** A raw ucanto method of this service. */
type RawMethod<O extends {}, X extends API.Failure> = (invocation: API.Invocation) => Promise<API.Result<O, X>>

/** The service tree handed to ucanto: `tlog/append` → `tlog.append`. */
export interface TlogService {
  tlog: {
    append: RawMethod<AppendResult, AppendFailure>
    read: RawMethod<ReadResult, ReadFailure>
    create: RawMethod<CreateResult, CreateFailure>
  }
  ucan: {
    revoke: RawMethod<RevokeResult, RevokeFailure>
  }
}

/**
 * Creates the ucanto server. Options are validated here (throws `RangeError`/`TypeError`).
 * Failures are receipts with `out.error = { name, message }`; a handler that throws yields
 * `InternalError` and the cause goes to `logger.error`.
 */
export function createUcanService(options: UcanServiceOptions): API.ServerView<TlogService> {
  const maxInvocationLifetime = options.maxInvocationLifetime ?? DEFAULT_MAX_INVOCATION_LIFETIME
  if (!Number.isSafeInteger(maxInvocationLifetime) || maxInvocationLifetime < 1) {
    throw new RangeError('maxInvocationLifetime must be a positive integer (seconds)')
  }
  const responses = createResponsePool(
    options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    options.maxResponseBytesInFlight ?? Math.max(DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT, options.maxResponseBytes ?? 0),
  )
  if (options.log === undefined) throw new TypeError('log is required')
  const signer = fastIfEd25519(options.signer)
  const now = options.now ?? systemNow
  const principal = options.principal ?? createPrincipalParser()
  const revocations = options.revocations ?? noRevocations
  const replay = options.replay ?? createMemoryReplayGuard({ now })
  const logger = options.logger ?? { error() {} }
  const log = options.log
  const grants = createGrantCache()
  const attester = options.attester
  const maxInvocations = options.maxInvocationsPerRequest ?? DEFAULT_MAX_INVOCATIONS_PER_REQUEST
  if (!Number.isSafeInteger(maxInvocations) || maxInvocations < 1) {
    throw new RangeError('maxInvocationsPerRequest must be a positive integer')
  }
  const trust = attesterTrust(signer, attester)
  const admission = options.admission ?? ADMIT_ALL

  /**
   * Runs `authorize` for `invocation` under admission (within its request's turn): refused
   * before any chain work when its verified issuer is out of tokens; a failure debits the issuer;
   * a success charges the issuer and `spaceOf(ok)` (authorized writes only) or is refused.
   */
  const admitted = <T, F extends API.Failure>(
    invocation: API.Invocation,
    spaceOf: (ok: T) => string | undefined,
    authorize: () => Promise<API.Result<T, F>>,
  ): Promise<API.Result<T, F | RateLimited>> => {
    const limit = (seconds: number): { error: RateLimited } => {
      rateLimited.set(invocation, seconds)
      return { error: new RateLimited(`rate limited; retry in ${Math.max(1, Math.ceil(seconds))} s`) }
    }
    return (async () => {
      const verified = await verifyInvocationSignature(invocation, principal)
      const charge: Charge | undefined = verified
        ? { id: chargeId(invocation), expiresAt: invocation.expiration, issuer: invocation.issuer.did() }
        : undefined
      const early = charge && admission.check(charge)
      if (early !== undefined) return limit(early)
      const result = await authorize()
      if (result.error) {
        if (charge) admission.debit(charge)
        return result
      }
      const space = spaceOf(result.ok as T)
      const wait = admission.charge({ ...charge!, ...(space !== undefined && { space }) })
      return wait === undefined ? result : limit(wait)
    })()
  }

  const internal = (cause: unknown, invocation: API.Invocation, what: string): { error: InternalError } => {
    logger.error({ err: cause, invocation: invocation.cid.toString(), can: invocation.capabilities[0]?.can }, what)
    return { error: new InternalError() }
  }

  const reservedSpaces: ReadonlySet<string> = new Set(options.reservedSpaces ?? [])
  const authOptions = { service: signer, principal, now, maxInvocationLifetime, revocations, grants, attester, reservedSpaces }

  /**
   * Cheap answers before any signature or chain work: a replay of an append already answered gets
   * its first outcome (its bytes hash to the CID the replay guard remembers, so they are exactly
   * the bytes authorized then: nothing to check again, and a replay flood costs no chain checks);
   * a write that would create a log its client may not create now is refused.
   */
  const early = async (invocation: API.Invocation): Promise<API.Result<AppendResult, AppendFailure> | undefined> => {
    const capability = invocation.capabilities[0] as API.Capability | undefined
    if (invocation.capabilities.length !== 1 || capability === undefined) return undefined
    if (capability.can === 'tlog/append' && now() <= invocation.expiration) {
      const known = replay.seen<{ ok: AppendResult } | { error: FailureJSON }>(invocation.cid.toString())
      if (known !== undefined && (await checkContentAddressed(invocation, { proofs: false }))) return answer(await waiting(invocation, () => known))
    }
    const space = SpaceDID.read(capability.with)
    if (space.error || log.creationRefusal === undefined) return undefined
    const refusal = logRefusal(await log.creationRefusal(space.ok, requestOf(invocation)))
    return refusal ? { error: refusal } : undefined
  }

  /** The wire answer of a replay-guard outcome. */
  const answer = (outcome: { ok: AppendResult } | { error: FailureJSON }): API.Result<AppendResult, AppendFailure> => {
    if ('ok' in outcome && outcome.ok !== undefined) return { ok: outcome.ok }
    const failure = (outcome as { error: FailureJSON }).error
    return { error: logRefusal(failure) ?? new InternalError(failure.message) }
  }

  const append: TlogService['tlog']['append'] = async (invocation) => {
    try {
      const known = await early(invocation)
      if (known !== undefined) return known
      const authorized = await admitted(invocation, (ok) => ok.space, () => authorizeAppend(invocation, authOptions))
      if (authorized.error) return authorized
      const { space, entry, delegation } = authorized.ok
      // checkInvocation established that this CID is the canonical address of the signed UCAN.
      const id = invocation.cid.toString()
      // A refusal to open or create the log comes before the replay guard: the invocation stays unused.
      let reserved: { release(): void } | undefined
      try {
        reserved = await log.reserve?.(space, requestOf(invocation))
      } catch (cause) {
        const refusal = logRefusal(cause)
        if (refusal) return { error: refusal }
        throw cause
      }
      // Outcomes are plain JSON (a durable guard stores them); failures come back as InternalError
      // or, for a log refusal, by its name. The replay guard's capacity is per space: a space at its
      // share is refused, no one else.
      let outcome: { ok: AppendResult } | { error: FailureJSON } | { full: TooManyPendingInvocations }
      try {
        // Waiting for the outcome (the batch, or the same invocation run by another request) is done
        // with the request's turn given back: holding it could starve the very run it waits for.
        outcome = await waiting(invocation, () => replay
          .once({ owner: space, id, expiresAt: invocation.expiration }, async (): Promise<{ ok: AppendResult } | { error: FailureJSON }> => {
            try {
              const result = await log.append(space, entry, { invocation: id, delegation, ...requestOf(invocation) })
              return { ok: toWire(result) }
            } catch (cause) {
              const refusal = logRefusal(cause)
              return { error: (refusal ?? internal(cause, invocation, 'tlog/append: log append failed').error).toJSON() as FailureJSON }
            }
          })
          .catch((err: unknown) => {
            if (!(err instanceof ReplayGuardFull)) throw err
            return { full: new TooManyPendingInvocations(`space ${truncate(space)} has ${err.limit} unexpired invocations pending (its share); retry after they expire, or use shorter lifetimes`) }
          }))
      } finally {
        reserved?.release()
      }
      if ('full' in outcome) return { error: outcome.full }
      return answer(outcome)
    } catch (cause) {
      return { error: logRefusal(cause) ?? internal(cause, invocation, 'tlog/append failed').error }
    }
  }

  const read: TlogService['tlog']['read'] = async (invocation, context?: HandlerContext) => {
    try {
      if (invocation.capabilities.length !== 1) {
        return { error: new InvalidCapability('invocation must carry exactly one capability') }
      }
      const capability = invocation.capabilities[0] as API.Capability
      const space = SpaceDID.read(capability.with)
      if (space.error) return { error: new InvalidCapability(`with must be a did:key space, got ${truncate(capability.with)}`) }
      if (isReservedSpace(space.ok, signer, reservedSpaces)) {
        return { error: new ReservedSpace('this DID belongs to the service itself and is not a space') }
      }
      const nb = TlogReadCaveats.read((capability as { nb?: unknown }).nb ?? {})
      if (nb.error) return { error: new InvalidCapability('nb must be { offset?: integer ≥ 0, limit?: integer 1..1000 }') }
      // A bounded exp, as for appends: one signed read cannot be replayed forever.
      const checked = await admitted(invocation, () => undefined, () =>
        checkInvocation(invocation, { audience: signer.did(), principal, now: now(), maxLifetime: maxInvocationLifetime }),
      )
      if (checked.error) return checked
      const budget = context?.responses ?? responses.unpooled()
      // Reads of one request take turns, so each sees what the ones before it spent.
      return await budget.serialize(async () => {
        const remaining = budget.remaining()
        // The engine counts raw bytes: base64 is 4/3 of them (plus ≤ 2 padding characters each).
        const page = await log.read(space.ok, nb.ok.offset ?? 0, nb.ok.limit ?? DEFAULT_READ_LIMIT, Math.floor((remaining * 3) / 4))
        if (page === undefined) return { error: new UnknownLog('no log for this space') }
        const entries: string[] = []
        let bytes = 0
        for (const entry of page.entries) {
          const text = encodeBase64(entry)
          if (bytes + text.length > remaining) break
          entries.push(text)
          bytes += text.length
        }
        if (entries.length === 0 && (nb.ok.offset ?? 0) < page.total) {
          return { error: new ResponseTooLarge('this request\'s response budget is spent; read these entries in another request') }
        }
        budget.charge(bytes)
        return { ok: { entries, total: page.total } }
      })
    } catch (cause) {
      return { error: logRefusal(cause) ?? internal(cause, invocation, 'tlog/read failed').error }
    }
  }

  const create: TlogService['tlog']['create'] = async (invocation) => {
    try {
      const refused = await early(invocation)
      if (refused?.error) return { error: refused.error as CreateFailure }
      const authorized = await admitted(invocation, (ok) => ok.space, () => authorizeCreate(invocation, authOptions))
      if (authorized.error) return authorized
      const r = await log.create(authorized.ok.space, requestOf(invocation))
      return { ok: { logId: r.logId, origin: r.origin, vkey: r.vkey, treeSize: r.treeSize } }
    } catch (cause) {
      return { error: logRefusal(cause) ?? internal(cause, invocation, 'tlog/create failed').error }
    }
  }

  const revoke: TlogService['ucan']['revoke'] = async (invocation) => {
    try {
      if (invocation.capabilities.length !== 1) {
        return { error: new InvalidCapability('invocation must carry exactly one capability') }
      }
      const capability = invocation.capabilities[0] as API.Capability
      const scope = DIDSchema.read(capability.with)
      if (scope.error) return { error: new InvalidCapability(`with must be a DID, got ${truncate(capability.with)}`) }
      const nb = RevokeCaveats.read((capability as { nb?: unknown }).nb ?? {})
      if (nb.error) return { error: new InvalidCapability('nb must be { ucan: link, proof?: link[] }') }
      const checked = await admitted(invocation, () => undefined, () => checkInvocation(invocation, { audience: signer.did(), principal, now: now(), maxLifetime: maxInvocationLifetime }))
      if (checked.error) return checked
      // The invoker must hold ucan/revoke for `with`: it is `with` itself, or holds a delegation
      // from it (ucanto's access, with our revocation store and attester trust).
      let storeFailed = false
      const authorized = await access(invocation as API.Invocation<API.InferInvokedCapability<typeof UCANRevoke>>, {
        capability: UCANRevoke,
        authority: signer,
        principal,
        ...(await trust),
        validateAuthorization: async (auth: API.Authorization) => {
          let revoked: string | undefined
          try {
            revoked = await revocations.findRevoked(toRevocationQuery(auth))
          } catch {
            storeFailed = true
            return { error: new Revoked('revocation store unavailable') as unknown as API.Revoked }
          }
          return revoked === undefined ? { ok: {} } : { error: new Revoked(`UCAN ${truncate(revoked)} has been revoked`) as unknown as API.Revoked }
        },
      })
      if (storeFailed) return { error: new InternalError('revocation store unavailable') }
      if (authorized.error) return { error: classify(authorized.error, 'ucan/revoke') }
      // The revoked UCAN (and any nb.proof) must be attached, as storacha's handler requires.
      const path: API.Delegation[] = []
      for (const [role, link] of [['nb.ucan', nb.ok.ucan] as const, ...(nb.ok.proof ?? []).map((l, i) => [`nb.proof[${i}]`, l] as const)]) {
        const ucan = Delegation.view({ root: link as API.UCANLink, blocks: invocation.blocks }, null)
        if (ucan === null || !(await checkContentAddressed(ucan, { proofs: false }))) {
          return { error: new UCANNotFound(`${role} ${truncate(link)} is not attached; a revocation must include it`) }
        }
        path.push(ucan)
      }
      const unrelated = checkRevocationPath(scope.ok, path)
      if (unrelated !== undefined) return { error: unrelated }
      if (options.revocationRecorder === undefined) return internal(new Error('no revocation recorder'), invocation, 'ucan/revoke')
      const wait = options.admitRevocation?.(requestOf(invocation).client)
      if (wait !== undefined) {
        rateLimited.set(invocation, wait)
        return { error: new RateLimited(`too many revocations from this address; retry in ${Math.max(1, Math.ceil(wait))} s`) }
      }
      const recorder = options.revocationRecorder
      const recorded = await waiting(invocation, () => recorder
        .record({
          ucan: nb.ok.ucan.toString(),
          scope: scope.ok,
          revoker: invocation.issuer.did(),
          invocation: invocation.cid.toString(),
          time: now(),
        })
        .catch((err: unknown) => {
          if (err instanceof RevocationScopeFull) return new TooManyRevocations(`${truncate(err.scope)} has ${err.limit} revocation records, its cap; nothing recorded`)
          throw err
        }))
      if (recorded instanceof TooManyRevocations) return { error: recorded }
      return {
        ok: {
          time: recorded.record.time * 1000,
          ucan: recorded.record.ucan,
          scope: recorded.record.scope,
          ...(recorded.index !== undefined && { index: recorded.index }),
        },
      }
    } catch (cause) {
      return internal(cause, invocation, 'ucan/revoke failed')
    }
  }

  const unknown = async (invocation: API.Invocation): Promise<API.Result<never, InvalidCapability>> => ({
    error: new InvalidCapability(`service does not implement ${truncate(invocation.capabilities[0]?.can)}`),
  })

  const server = Server.create<TlogService>({
    id: signer,
    codec: CAR.inbound,
    service: withFallback({ tlog: { append, read, create }, ucan: { revoke } }, unknown) as unknown as TlogService,
    principal,
    // Raw methods never call access(); revocation is checked in authorizeAppend.
    validateAuthorization: () => ({ ok: {} }),
    catch: (error) => {
      logger.error({ err: error }, 'ucanto handler execution error')
    },
  })
  const refusalDelayMs = options.refusalDelayMs ?? DEFAULT_REFUSAL_DELAY_MS
  if (!Number.isSafeInteger(refusalDelayMs) || refusalDelayMs < 0) throw new RangeError('refusalDelayMs must be an integer ≥ 0')
  return withSafeRequest(server, logger, { maxInvocations, admission, responses, refusalDelayMs })
}

/**
 * Whether a revocation by `scope` of `path[0]` (`nb.ucan`) can have any effect: `path` is
 * `nb.ucan` followed by the UCANs `nb.proof` names, each of which must be a proof (`prf` link) of
 * the one before it, and `scope` must be the issuer or audience of one of them — exactly the
 * principals whose revocation the authorizer honours for chains through `nb.ucan`
 * (revocation.ts `toRevocationQuery`). Returns the refusal, or undefined when it is related.
 */
function checkRevocationPath(scope: API.DID, path: readonly API.Delegation[]): UnrelatedRevocation | undefined {
  for (let i = 1; i < path.length; i++) {
    const cid = path[i]!.cid.toString()
    if (!path[i - 1]!.data.proofs.some((link) => link.toString() === cid)) {
      return new UnrelatedRevocation(`nb.proof[${i - 1}] ${truncate(cid)} is not a proof of ${i === 1 ? 'nb.ucan' : `nb.proof[${i - 2}]`}`)
    }
  }
  if (path.some((ucan) => ucan.issuer.did() === scope || ucan.audience.did() === scope)) return undefined
  return new UnrelatedRevocation(
    `${truncate(scope)} is not the issuer or audience of nb.ucan or of a UCAN on its proof path (nb.proof); its revocation would have no effect`,
  )
}

/** Caveats of `ucan/revoke` (storacha's schema), read before authorization to name a malformed `nb`. */
const RevokeCaveats = Schema.struct({
  ucan: Schema.link({ version: 1 }),
  proof: Schema.link({ version: 1 }).array().optional(),
})

/**
 * `server` whose `request` never rejects and that admits requests first. It does what ucanto's
 * `handle` does (415/406 from the codec, 400 for a body that does not decode, then every
 * invocation runs and the receipts are encoded), plus:
 * - more than `maxInvocations` invocations → 413 and nothing runs;
 * - `admission.request` (the client address's rate limit) refusing → 429 with `Retry-After`, and
 *   nothing runs; so does a request whose every invocation was refused `RateLimited`;
 * - a request with a `tlog/read` when the response pool cannot reserve its budget → 503
 *   `ReadCapacityExhausted` with `Retry-After: 1`, and nothing runs;
 * - an invocation whose own proof graph fails proof-graph.ts's check (duplicate proof links, a
 *   cycle, over {@link DEFAULT_PROOF_GRAPH_BUDGET}) gets `DuplicateProof`/`ProofCycle`/
 *   `ProofGraphTooLarge` before any signature is checked, in a receipt whose `ran` is the
 *   invocation's link (ucanto would otherwise export the graph once per path into the receipt);
 * - an invocation without exactly one capability gets `InvalidCapability` (not ucanto's
 *   `InvocationCapabilityError`, whose JSON carries every capability's `nb`);
 * - anything throwing while decoding, running or encoding (ucanto can, for a hostile message, e.g.
 *   a proof block that does not decode as a UCAN) → 400.
 * Status bodies are short plain text, never a stack trace.
 */
function withSafeRequest(
  server: API.ServerView<TlogService>,
  logger: UcanLogger,
  limits: { maxInvocations: number; admission: Admission; responses: ResponsePool; refusalDelayMs: number },
): API.ServerView<TlogService> {
  const safe = Object.create(server) as API.ServerView<TlogService>
  const text = (status: number, message: string, headers: Record<string, string> = {}) => ({
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', ...headers },
    body: new TextEncoder().encode(`${message}\n`),
  })
  Object.defineProperty(safe, 'request', {
    value: async (req: API.HTTPRequest & { client?: string }) => {
      const context: RequestContext = req.client === undefined ? {} : { client: req.client }
      // A refusal is held a while (the tarpit), so a client resending at once costs little.
      const tooMany = async (retryAfter: number) => {
        const seconds = Math.max(1, Math.ceil(retryAfter))
        if (limits.refusalDelayMs > 0) await new Promise((r) => setTimeout(r, Math.min(limits.refusalDelayMs, seconds * 1000)))
        return text(429, 'rate limited; retry later', { 'retry-after': String(seconds) })
      }
      // The request's own hold on its turn, given back when it ends (whatever the outcome).
      let held: Turn | undefined
      try {
        // Every request costs its client address before any work (the rest once its size is known).
        const first = limits.admission.request(1, context)
        if (first !== undefined) return tooMany(first)
        // Then it waits for its address's turn on the CPU (round-robin across addresses).
        const turn = createTurn((always) => limits.admission.turn(context, { always }))
        try {
          await turn.busy()
        } catch (err) {
          if ((err as Error | undefined)?.name === 'SchedulerFull') return tooMany(1)
          throw err
        }
        held = turn
        const selection = CAR.inbound.accept(req as never)
        if (selection.error) {
          const { status, headers = {}, message } = selection.error
          return { status, headers, body: new TextEncoder().encode(message) }
        }
        const { encoder, decoder } = selection.ok
        let message: API.AgentMessage
        try {
          message = (await decoder.decode(req as never)) as API.AgentMessage
        } catch {
          return text(400, 'Bad request: the body is not a CAR agent message')
        }
        const invocations = message.invocations as API.Invocation[]
        if (invocations.length > limits.maxInvocations) {
          return text(413, `too many invocations in one request (at most ${limits.maxInvocations})`)
        }
        if (invocations.length > 1) {
          const rest = limits.admission.request(invocations.length - 1, context)
          if (rest !== undefined) return tooMany(rest)
        }
        // Before any signature or receipt work: a proof graph that a per-path walk (ucanto's export
        // of `ran`, its validator) would take exponential time over is refused by name, and its
        // receipt names the invocation by link only, so the graph is never exported.
        const refused = new Map<API.Invocation, ProofGraphFailure>()
        for (const inv of invocations) {
          const graph = checkProofGraph(inv)
          if (graph.error) refused.set(inv, graph.error)
        }
        // A request that reads reserves its response budget from the service-wide pool until its
        // response is encoded; when the pool is spent, that request is refused and nothing runs.
        const reads = invocations.some((inv) => inv.capabilities[0]?.can === 'tlog/read')
        const responses = reads ? limits.responses.reserve(context.client) : undefined
        if (reads && responses === undefined) {
          return text(503, 'ReadCapacityExhausted: too many read responses in flight; retry later', { 'retry-after': '1' })
        }
        try {
          // Handlers get ucanto's context plus this request's response budget.
          const runner = Object.create(server, { context: { value: { ...(server as unknown as { context: object }).context, responses } } })
          // ucanto's execute, except that an invocation without exactly one capability gets our
          // InvalidCapability (ucanto's InvocationCapabilityError would echo every capability's nb).
          // Each invocation that runs takes a turn of its own (round-robin across client addresses,
          // so a request of 64 invocations takes 64 turns, interleaved with other addresses'), which
          // its handler gives back while it only waits. The request gives its own turn back meanwhile.
          const run = async (inv: API.Invocation): Promise<unknown> => {
            const own = createTurn((always) => limits.admission.turn(context, { always }))
            requests.set(inv, { ...context, turn: own })
            try {
              await own.busy()
            } catch (err) {
              if ((err as Error | undefined)?.name !== 'SchedulerFull') throw err
              rateLimited.set(inv, 1)
              return Receipt.issue({ issuer: server.id as API.Signer, ran: inv, result: { error: new RateLimited('too many requests waiting from this address; retry later') } })
            }
            try {
              return await Server.run(inv as never, runner as never)
            } finally {
              own.idle()
            }
          }
          const running: Promise<unknown>[] = invocations.map((inv) =>
            refused.has(inv)
              ? Receipt.issue({ issuer: server.id as API.Signer, ran: inv.link() as never, result: { error: refused.get(inv) as ProofGraphFailure } })
              : inv.capabilities.length === 1
                ? run(inv)
                : Receipt.issue({
                    issuer: server.id as API.Signer,
                    ran: inv,
                    result: { error: new InvalidCapability('invocation must carry exactly one capability') },
                  }),
          )
          held = undefined
          turn.idle()
          const receipts = await Promise.all(running)
          await turn.busy()
          held = turn
          // Every invocation refused by a rate limit: nothing ran, so the answer is 429 as above.
          const waits = invocations.map((inv) => rateLimited.get(inv))
          if (waits.length > 0 && waits.every((w) => w !== undefined)) return tooMany(Math.max(...(waits as number[])))
          const result = await Message.build({ receipts: receipts as never })
          return await encoder.encode(result as never)
        } finally {
          responses?.release()
        }
      } catch (cause) {
        logger.error({ err: cause }, 'ucanto request failed')
        return text(400, 'Bad request: the agent message could not be processed')
      } finally {
        held?.idle()
      }
    },
  })
  return safe
}


/** {@link Charge.id} of a signed invocation: its issuer and signature (unique per signed payload). */
function chargeId(invocation: API.Invocation): string {
  return `${invocation.issuer.did()} ${Buffer.from(invocation.signature).toString('base64')}`
}

/** Copies exactly the wire fields, so nothing else the log returns leaks into a receipt. */
function toWire(r: AppendResult): AppendResult {
  return {
    logId: r.logId,
    origin: r.origin,
    index: r.index,
    treeSize: r.treeSize,
    rootHash: r.rootHash,
    checkpoint: r.checkpoint,
    inclusionProof: [...r.inclusionProof],
    published: r.published,
  }
}

/** Wraps an Ed25519 ucanto signer (multicodec 0x1300) to sign with node:crypto; others pass through. */
function fastIfEd25519(signer: API.Signer): API.Signer {
  const s = signer as API.Signer & { code?: number }
  if (s.code === 0x1300 && s.did().startsWith('did:key:')) {
    return createFastSigner(signer as Parameters<typeof createFastSigner>[0])
  }
  return signer
}

/**
 * A two-level service tree in which every `namespace/method` not defined (including inherited
 * names such as `toString` or `constructor`) resolves to `fallback`, since ucanto looks handlers
 * up by plain property access on the `can` path.
 */
function withFallback(
  tree: Record<string, Record<string, (invocation: API.Invocation) => unknown>>,
  fallback: (invocation: API.Invocation) => unknown,
): Record<string, unknown> {
  // Callable (for `can` without a namespace) and indexable to any depth (for deeper paths).
  // Symbol keys (inspection, coercion) behave as on a plain object.
  const lookup = (target: object, key: string | symbol): unknown =>
    typeof key === 'symbol' || Object.hasOwn(target, key) ? Reflect.get(target, key) : leaf
  const leaf: unknown = new Proxy(fallback, { get: (target, key) => (typeof key === 'symbol' ? Reflect.get(target, key) : leaf) })
  const namespace = (methods: Record<string, unknown>): object => new Proxy(methods, { get: lookup })
  const namespaces: Record<string, unknown> = Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, namespace(v)]))
  return new Proxy(namespaces, { get: lookup }) as Record<string, unknown>
}

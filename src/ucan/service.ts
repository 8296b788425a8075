/**
 * The ucanlog UCAN RPC service (docs/wire.md): a ucanto server implementing `tlog/append`,
 * `tlog/read`, `tlog/create` and `ucan/revoke` over the CAR transport. Mount
 * `server.request({ headers, body, client })` on an HTTP route; it decodes the agent message, runs
 * every invocation in it, and encodes signed receipts (transport.ts).
 *
 * This file resolves the options and assembles the parts: one handler per ability (handlers/),
 * each a raw ucanto method that does all its own checking (authorize.ts, invocation.ts) so every
 * failure keeps its ucanlog name (errors.ts); ucanto is given no `access()` to run.
 */
import * as Server from '@ucanto/server'
import * as CAR from '@ucanto/transport/car'
import type { API } from '@ucanto/core'
import { ADMIT_ALL, type Admission } from './admission.js'
import { type TrustedAttester, attesterTrust } from './attester.js'
import { systemNow } from './clock.js'
import { createGrantCache } from './grants.js'
import { DEFAULT_MAX_VERIFIED_UCANS, DEFAULT_MAX_VERIFIED_UCAN_BYTES } from './verified-ucans.js'
import { appendHandler } from './handlers/append.js'
import type { Service, UcanLogger } from './handlers/context.js'
import { createHandler } from './handlers/create.js'
import { readHandler } from './handlers/read.js'
import { revokeHandler } from './handlers/revoke.js'
import { DEFAULT_MAX_INVOCATION_LIFETIME } from './invocation.js'
import type { LogService } from './log-service.js'
import { createFastSigner, createPrincipalParser } from './principal.js'
import { type ReplayGuard, createMemoryReplayGuard } from './replay.js'
import { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT, createResponsePool } from './response-budget.js'
import { type RevocationChecker, type RevocationRecorder, noRevocations } from './revocation.js'
import type { Preverified } from './preverify.js'
import { type RequestWorkers, withSafeRequest } from './transport.js'
import type { RequestPool } from './request-pool.js'
import { sequenceAppends } from './request-sequencer.js'
import type { TlogService } from './wire.js'

/** How long a rate-limited request is held before its 429 is sent, by default (ms). */
export const DEFAULT_REFUSAL_DELAY_MS = 1000

/** Most invocations per request, by default. */
export const DEFAULT_MAX_INVOCATIONS_PER_REQUEST = 64

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
  /** The trusted `ucan/attest` issuer for `did:mailto` chains (attester.ts). Default: none. */
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
  /**
   * Most UCANs the verified-UCAN cache keeps (verified-ucans.ts: CIDs found canonical and validly
   * signed, chiefly agents' Space→Agent proofs); positive integer, default
   * {@link DEFAULT_MAX_VERIFIED_UCANS}. Past it, the least recently used is verified again when next seen.
   */
  maxVerifiedUcans?: number
  /** Most bytes that cache holds (its own count, ~250 B an entry); positive integer, default {@link DEFAULT_MAX_VERIFIED_UCAN_BYTES}. */
  maxVerifiedUcanBytes?: number
  /**
   * Checks requests' UCAN signatures and encodings on other threads first (preverify-pool.ts's
   * `run`): what it vouches for is not checked again here. Default: none, every check on the
   * calling thread.
   */
  preverify?: (body: Uint8Array, contentType: string) => Promise<Preverified | undefined>
  /**
   * Runs append requests on worker threads (request-pool.ts), this thread only sequencing them
   * (request-sequencer.ts); other requests run here. The pool must be made for this service's
   * signer and settings. Default: none, every request on the calling thread.
   */
  requestPool?: RequestPool
  /** Told where each request went when `requestPool` is set (transport.ts `RequestWorkers.onRoute`). */
  onRequestRoute?: RequestWorkers['onRoute']
  /**
   * Told of every failure answered `StorageFull` (a store's error whose code says the disk is full,
   * src/storage/storage-full.ts), e.g. so `/healthz` reports it; must not throw. Default: none.
   */
  onStorageFull?: (cause: unknown) => void
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
  const maxInvocations = options.maxInvocationsPerRequest ?? DEFAULT_MAX_INVOCATIONS_PER_REQUEST
  if (!Number.isSafeInteger(maxInvocations) || maxInvocations < 1) {
    throw new RangeError('maxInvocationsPerRequest must be a positive integer')
  }
  const refusalDelayMs = options.refusalDelayMs ?? DEFAULT_REFUSAL_DELAY_MS
  if (!Number.isSafeInteger(refusalDelayMs) || refusalDelayMs < 0) throw new RangeError('refusalDelayMs must be an integer ≥ 0')
  const signer = fastIfEd25519(options.signer)
  const now = options.now ?? systemNow
  const logger = neverThrowing(options.logger ?? { error() {} })
  const admission = options.admission ?? ADMIT_ALL
  const service: Service = {
    signer,
    principal: options.principal ?? createPrincipalParser(),
    now,
    maxInvocationLifetime,
    log: options.log,
    replay: options.replay ?? createMemoryReplayGuard({ now }),
    revocations: options.revocations ?? noRevocations,
    revocationRecorder: options.revocationRecorder,
    admitRevocation: options.admitRevocation,
    logger,
    admission,
    responses,
    grants: createGrantCache({
      ...(options.maxVerifiedUcans !== undefined && { maxUcans: options.maxVerifiedUcans }),
      ...(options.maxVerifiedUcanBytes !== undefined && { maxUcanBytes: options.maxVerifiedUcanBytes }),
    }),
    attester: options.attester,
    trust: attesterTrust(signer, options.attester),
    reservedSpaces: new Set(options.reservedSpaces ?? []),
    onStorageFull: options.onStorageFull,
  }
  const server = Server.create<TlogService>({
    id: signer,
    codec: CAR.inbound,
    service: {
      tlog: { append: appendHandler(service), read: readHandler(service), create: createHandler(service) },
      ucan: { revoke: revokeHandler(service) },
    },
    principal: service.principal,
    // Raw methods never call access(); each handler authorizes (and checks revocation) itself.
    validateAuthorization: () => ({ ok: {} }),
    catch: (error) => {
      logger.error({ err: error }, 'ucanto handler execution error')
    },
  })
  const pool = options.requestPool
  const workers: RequestWorkers | undefined = pool && {
    pool,
    now,
    sequence: (verdicts, request, rateLimited) => sequenceAppends(service, verdicts, request, rateLimited),
    ...(options.onRequestRoute && { onRoute: options.onRequestRoute }),
  }
  return withSafeRequest(server, logger, { maxInvocations, admission, responses, refusalDelayMs, preverify: options.preverify, ucans: service.grants.ucans, workers })
}

/**
 * `logger`, except that a throw while logging is dropped: a failure to report a failure must not
 * change what the client gets. (Thrown in a handler's catch, it would reach ucanto's `catch`,
 * whose `HandlerExecutionError` receipt carries the server's stack trace; in the transport's, it
 * would make `request` reject.)
 */
function neverThrowing(logger: UcanLogger): UcanLogger {
  return {
    error(details, message) {
      try {
        logger.error(details, message)
      } catch {
        // Nowhere left to report it.
      }
    },
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

/**
 * What every handler of the UCAN RPC shares: the service's dependencies ({@link Service}, built
 * once by service.ts), what the transport hands each invocation ({@link HandlerContext}), and the
 * steps all handlers take alike (admission, hiding failures, waiting without a turn).
 */
import type { API } from '@ucanto/core'
import { type Admission, type ChargePlace, type RequestContext, admit } from '../admission.js'
import type { TrustedAttester, attesterTrust } from '../attester.js'
import type { AuthorizeAppendOptions } from '../authorize.js'
import { SpaceDID } from '../capabilities.js'
import { InternalError, type LogRefusal, type RateLimited, logRefusal } from '../errors.js'
import type { GrantCache } from '../grants.js'
import { verifyInvocationSignature } from '../invocation.js'
import type { LogService } from '../log-service.js'
import type { ReplayGuard } from '../replay.js'
import type { AppendResult } from '../wire.js'
import type { RequestBudget, ResponsePool } from '../response-budget.js'
import type { RevocationChecker, RevocationRecorder } from '../revocation.js'

/** Where the service reports failures it hides from clients (pino-compatible). */
export interface UcanLogger {
  error(details: Record<string, unknown>, message: string): void
}

/** The service's dependencies and settings, resolved from its options (service.ts). */
export interface Service {
  /** The service identity (audience of every invocation, signer of receipts). */
  signer: API.Signer
  principal: API.PrincipalParser
  /** Clock, Unix seconds. */
  now: () => number
  /** Seconds. */
  maxInvocationLifetime: number
  log: LogService
  replay: ReplayGuard
  revocations: RevocationChecker
  revocationRecorder: RevocationRecorder | undefined
  admitRevocation: ((client: string | undefined) => number | undefined) | undefined
  logger: UcanLogger
  admission: Admission
  /** The service-wide pool of read response bytes. */
  responses: ResponsePool
  grants: GrantCache
  attester: TrustedAttester | undefined
  /** ucanto validator options trusting the attester (attester.ts `attesterTrust`). */
  trust: ReturnType<typeof attesterTrust>
  reservedSpaces: ReadonlySet<string>
  /** Told of every failure answered `StorageFull` (the disk is full), e.g. for `/healthz`; must not throw. */
  onStorageFull: ((cause: unknown) => void) | undefined
}

/**
 * What ucanto calls a handler with besides the invocation (its context): the transport adds the
 * request the invocation came in. All absent when a handler is run outside a request (ucanto's
 * own `run`): no client, no turn, a fresh unpooled read budget.
 */
export interface HandlerContext {
  /** The request's read response budget. */
  responses?: RequestBudget
  /** The request's client address and the invocation's turn on the CPU. */
  request?: RequestContext
  /** Tells the transport the invocation was refused by a rate limit, `seconds` to wait (HTTP 429 when all are). */
  rateLimited?: (seconds: number) => void
  /** The invocation's place in its request's charge order (admission.ts `ChargeOrder`). */
  chargePlace?: ChargePlace
  /**
   * Told an append's ok result as soon as the log returns it, before the replay guard has made it
   * durable (handlers/append.ts `commitAppend`): for work that may start early (encoding the
   * receipt) but must not be answered before the append's own result, which can still differ (the
   * guard's commit failing makes it that failure's error, e.g. `StorageFailed`).
   */
  onProvisional?: (ok: AppendResult) => void
}

/** The options of authorize.ts for this service. */
export function authorizeOptions(s: Service, signatureVerified: boolean): AuthorizeAppendOptions {
  const { signer: service, principal, now, maxInvocationLifetime, revocations, grants, attester, reservedSpaces } = s
  return { service, principal, now, maxInvocationLifetime, revocations, grants, reservedSpaces, signatureVerified, ...(attester && { attester }) }
}

/** {@link admit} with the service's admission and principal: `authorize` gets the invocation's signature outcome. */
export function admitted<T, F extends API.Failure>(
  s: Service,
  invocation: API.Invocation,
  context: HandlerContext | undefined,
  spaceOf: (ok: T) => string | undefined,
  authorize: (signatureVerified: boolean) => Promise<API.Result<T, F>>,
): Promise<API.Result<T, F | RateLimited>> {
  const place = context?.chargePlace
  return admit(
    invocation,
    {
      admission: s.admission,
      verify: (i) => verifyInvocationSignature(i, s.principal),
      rateLimited: context?.rateLimited,
      // The wait for the earlier invocations' charges gives the CPU turn back.
      place: place && { ready: () => place.ready((wait) => waiting(context, wait)), pass: () => place.pass() },
    },
    spaceOf,
    authorize,
  )
}

/** Logs `cause` with the invocation's CID and ability; the client gets a bare `InternalError`. */
export function internal(s: Service, cause: unknown, invocation: API.Invocation, what: string): { error: InternalError } {
  return internalFor(s, cause, invocation.cid.toString(), what, invocation.capabilities[0]?.can)
}

/** {@link internal} for an invocation known by its CID (`can` defaults to `tlog/append`). */
export function internalFor(s: Service, cause: unknown, id: string, what: string, can: string | undefined = 'tlog/append'): { error: InternalError } {
  s.logger.error({ err: cause, invocation: id, can }, what)
  return { error: new InternalError() }
}

/** A log refusal by its name, or else {@link internal}: how every handler answers what it caught. */
export function failed(s: Service, cause: unknown, invocation: API.Invocation, what: string): { error: LogRefusal | InternalError } {
  return failedFor(s, cause, invocation.cid.toString(), what, invocation.capabilities[0]?.can)
}

/** {@link failed} for an invocation known by its CID (`can` defaults to `tlog/append`). */
export function failedFor(s: Service, cause: unknown, id: string, what: string, can: string | undefined = 'tlog/append'): { error: LogRefusal | InternalError } {
  const refusal = logRefusal(cause)
  if (refusal?.name === 'StorageFull') s.onStorageFull?.(cause)
  return { error: refusal ?? internalFor(s, cause, id, what, can).error }
}

/** Runs `wait` (pure waiting: a batch being integrated and witnessed) with the invocation's turn given back. */
export async function waiting<T>(context: HandlerContext | undefined, wait: () => Promise<T>): Promise<T> {
  const turn = context?.request?.turn
  turn?.idle()
  try {
    return await wait()
  } finally {
    await turn?.busy()
  }
}

/**
 * Cheap, before any signature or chain work: the {@link LogRefusal} that creating the log of the
 * write's `with` for this client would get now (the log service's `creationRefusal`), or undefined.
 */
export async function creationRefusal(s: Service, invocation: API.Invocation, context: HandlerContext | undefined): Promise<LogRefusal | undefined> {
  const capability = invocation.capabilities[0] as API.Capability | undefined
  if (invocation.capabilities.length !== 1 || capability === undefined) return undefined
  const space = SpaceDID.read(capability.with)
  if (space.error || s.log.creationRefusal === undefined) return undefined
  return logRefusal(await s.log.creationRefusal(space.ok, context?.request ?? {}))
}

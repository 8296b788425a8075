/**
 * `tlog/append` (docs/wire.md): authorize (authorize.ts), then append the entry exactly once per
 * invocation CID (the replay guard, replay.ts) and answer the wire result (wire.ts). A replay of
 * an invocation already answered gets the first outcome, checked for nothing but its bytes.
 */
import type { API } from '@ucanto/core'
import { ReplayGuardFull, ReplayPending } from '../replay.js'
import { type AuthorizedAppend, authorizeAppend } from '../authorize.js'
import { checkContentAddressed } from '../delegation.js'
import { type AppendFailure, type FailureJSON, InternalError, InvocationPending, TooManyPendingInvocations, logRefusal, truncate } from '../errors.js'
import { type AppendResult, appendResultOf } from '../wire.js'
import type { SpaceDID } from '../capabilities.js'
import type { DelegationRef } from '../log-service.js'
import { type HandlerContext, type Service, admitted, authorizeOptions, creationRefusal, failed, internalFor, waiting } from './context.js'

/** An append's outcome as the replay guard stores it: plain JSON (a durable guard writes it to disk). */
export type Outcome = { ok: AppendResult } | { error: FailureJSON }

/** The `tlog/append` handler of service `s`. */
export function appendHandler(s: Service) {
  return async (invocation: API.Invocation, context?: HandlerContext): Promise<API.Result<AppendResult, AppendFailure>> => {
    try {
      const known = await early(s, invocation, context)
      if (known !== undefined) return known
      const authorized = await admitted(s, invocation, context, (ok: AuthorizedAppend) => ok.space, (verified) => authorizeAppend(invocation, authorizeOptions(s, verified)))
      if (authorized.error) return authorized
      const { space, entry, delegation } = authorized.ok
      // checkInvocation established that this CID is the canonical address of the signed UCAN.
      return await commitAppend(s, { space, entry, id: invocation.cid.toString(), expiresAt: invocation.expiration, delegation }, context)
    } catch (cause) {
      return failed(s, cause, invocation, 'tlog/append failed')
    }
  }
}

/** An authorized append to sequence: its space, entry, the invocation's CID and `exp`, and the delegation that authorized it. */
export interface AuthorizedWrite {
  space: SpaceDID
  /** 1..65535 bytes. */
  entry: Uint8Array
  /** The invocation's CID (the canonical address of its signed block). */
  id: string
  /** The invocation's `exp`, Unix seconds (Infinity when none). */
  expiresAt: number
  delegation: API.Delegation | DelegationRef
}

/**
 * The shared-state half of an authorized append, the same whichever thread checked it: reserve
 * the space's log (a refusal by its name, the invocation left unused), then append the entry
 * exactly once per invocation CID (the replay guard; a space past its share of it →
 * `TooManyPendingInvocations`), waiting without the invocation's turn. Rejects only on a bug of
 * the stores (the caller answers `failed`).
 */
export async function commitAppend(s: Service, w: AuthorizedWrite, context: HandlerContext | undefined): Promise<API.Result<AppendResult, AppendFailure>> {
  const { space, entry, id, delegation } = w
  const request = context?.request ?? {}
  // A refusal to open or create the log comes before the replay guard: the invocation stays unused.
  let reserved: { release(): void } | undefined
  try {
    reserved = await s.log.reserve?.(space, { ...request, delegation })
  } catch (cause) {
    const refusal = logRefusal(cause)
    if (refusal) return { error: refusal }
    throw cause
  }
  // Failures come back as InternalError or, for a log refusal, by its name. The replay guard's
  // capacity is per space: a space at its share is refused, no one else.
  let outcome: Outcome | { full: TooManyPendingInvocations | InvocationPending }
  try {
    // Waiting for the outcome (the batch, or the same invocation run by another request) is done
    // with the request's turn given back: holding it could starve the very run it waits for.
    outcome = await waiting(context, () => s.replay
      .once({ owner: space, id, expiresAt: w.expiresAt }, async (): Promise<Outcome> => {
        try {
          const ok = appendResultOf(await s.log.append(space, entry, { invocation: id, delegation, ...request }))
          context?.onProvisional?.(ok)
          return { ok }
        } catch (cause) {
          const refusal = logRefusal(cause)
          return { error: (refusal ?? internalFor(s, cause, id, 'tlog/append: log append failed').error).toJSON() as FailureJSON }
        }
      })
      .catch((err: unknown) => {
        // Another instance runs this invocation: resend it later (never run twice).
        if (err instanceof ReplayPending) return { full: new InvocationPending('this invocation is being run by another instance; send it again later') }
        if (!(err instanceof ReplayGuardFull)) throw err
        return { full: new TooManyPendingInvocations(`space ${truncate(space)} has ${err.limit} unexpired invocations pending (its share); retry after they expire, or use shorter lifetimes`) }
      }))
  } finally {
    reserved?.release()
  }
  if ('full' in outcome) return { error: outcome.full }
  return answer(outcome)
}

/**
 * Cheap answers before any signature or chain work: a replay of an append already answered gets
 * its first outcome (its bytes hash to the CID the replay guard remembers, so they are exactly
 * the bytes authorized then: nothing to check again, and a replay flood costs no chain checks);
 * a write that would create a log its client may not create now is refused.
 */
async function early(s: Service, invocation: API.Invocation, context: HandlerContext | undefined): Promise<API.Result<AppendResult, AppendFailure> | undefined> {
  if (invocation.capabilities.length !== 1) return undefined
  if (invocation.capabilities[0]?.can === 'tlog/append' && s.now() <= invocation.expiration) {
    const known = s.replay.seen<Outcome>(invocation.cid.toString())
    if (known !== undefined && (await checkContentAddressed(invocation, { proofs: false }))) {
      context?.chargePlace?.pass() // a replay is not charged: the request's later charges need not wait for its outcome
      const outcome = await waiting(context, () => known)
      if (outcome !== undefined) return answer(outcome)
    }
  }
  const refusal = await creationRefusal(s, invocation, context)
  return refusal ? { error: refusal } : undefined
}

/** The wire answer of a replay-guard outcome (a stored failure keeps its log refusal name, else InternalError). */
export function answer(outcome: Outcome): API.Result<AppendResult, AppendFailure> {
  if ('ok' in outcome && outcome.ok !== undefined) return { ok: outcome.ok }
  const failure = (outcome as { error: FailureJSON }).error
  return { error: logRefusal(failure) ?? new InternalError(failure.message) }
}

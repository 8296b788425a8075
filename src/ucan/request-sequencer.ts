/**
 * The main thread's half of a request whose appends a request worker checked (request-check.ts,
 * issue 11 item 2): only the steps that need the service's shared state, in the order the
 * `tlog/append` handler takes them (handlers/append.ts), so every outcome and every named failure
 * is the one the in-process path gives:
 * 1. a replay of an append already answered gets its first outcome (the replay guard);
 * 2. the log's creation limits (`creationRefusal`, a log refusal by its name);
 * 3. admission: a verified issuer out of tokens → `RateLimited` (admission.ts `admitCharge`),
 *    charged in the request's order (`ChargeOrder`) whatever order the lookups finish in;
 * 4. the worker's verdict, then check (5), revocation (`Revoked`, `InternalError` when the store
 *    fails); a failure debits the verified issuer, a success charges it and the space;
 * 5. reserve the log, append exactly once per CID (`commitAppend`: the log is single-writer).
 * Lookups of invocations started in the same event-loop turn are batched by the stores (one SQLite
 * transaction for the replay guard, one statement per kind for revocations), so a request's
 * invocations are sequenced concurrently.
 */
import { ChargeOrder, type RequestContext, admitCharge } from './admission.js'
import { checkRevocation } from './authorize.js'
import { parseDelegation } from './delegation.js'
import { type AppendFailure, type FailureJSON, logRefusal } from './errors.js'
import { type Outcome, answer, commitAppend } from './handlers/append.js'
import { type HandlerContext, type Service, failedFor, waiting } from './handlers/context.js'
import type { DelegationRef } from './log-service.js'
import type { RevocationQuery } from './revocation.js'
import type { AppendOutcome, AppendVerdict } from './request-check.js'
import type { SpaceDID } from './capabilities.js'
import type { API } from '@ucanto/core'
import type { AppendResult } from './wire.js'

/**
 * What {@link sequenceAppends} gives: each invocation's outcome twice, final and provisional.
 * `provisional` may resolve before `outcomes`, never after; only `outcomes` may be answered.
 */
export interface SequencedAppends {
  /** Each invocation's outcome, in the request's order, once every one is final (an appended entry's once the replay guard made it durable). */
  outcomes: Promise<AppendOutcome[]>
  /**
   * The same outcomes as soon as each is known: an appended entry's ok result when the log returns
   * it (`HandlerContext.onProvisional`), before the replay guard's durable commit; any other
   * outcome when it is final. For work that may start early (encoding the receipts while the
   * replay guard commits), redone for any outcome not the same as its final one (request-check.ts
   * `sameOutcome`).
   */
  provisional: Promise<AppendOutcome[]>
}

/**
 * Sequences each verdict of one request (see the module comment) and answers its outcome, in the
 * request's order. `rateLimited` is told of each invocation (by its index) refused by a rate
 * limit, with the seconds to wait. Never rejects: a store failing is that invocation's
 * `InternalError` (logged) or log refusal.
 */
export function sequenceAppends(
  s: Service,
  verdicts: readonly AppendVerdict[],
  request: RequestContext,
  rateLimited: (index: number, seconds: number) => void,
): SequencedAppends {
  const order = new ChargeOrder(verdicts.length)
  const early: Promise<AppendOutcome>[] = []
  const outcomes = Promise.all(
    verdicts.map(async (v, i): Promise<AppendOutcome> => {
      let result: API.Result<AppendResult, AppendFailure>
      const chargePlace = order.place(i)
      let provisional!: (o: AppendOutcome) => void
      early.push(new Promise<AppendOutcome>((resolve) => (provisional = resolve)))
      const onProvisional = (ok: AppendResult): void => provisional({ cid: v.cid, result: { ok } })
      try {
        result = await sequenceOne(s, v, { request, rateLimited: (seconds) => rateLimited(i, seconds), chargePlace, onProvisional })
      } catch (cause) {
        result = failedFor(s, cause, v.cid, 'tlog/append failed')
      } finally {
        chargePlace.pass()
      }
      const outcome: AppendOutcome = { cid: v.cid, result: result.error ? { error: result.error.toJSON() as FailureJSON } : { ok: result.ok } }
      provisional(outcome) // no effect if the ok result came first
      return outcome
    }),
  )
  return { outcomes, provisional: Promise.all(early) }
}

/** One verdict's steps 1–5. */
async function sequenceOne(s: Service, v: AppendVerdict, context: HandlerContext): Promise<API.Result<AppendResult, AppendFailure>> {
  const request = context.request ?? {}
  if (v.canonical && s.now() <= v.exp) {
    const known = s.replay.seen<Outcome>(v.cid)
    if (known !== undefined) {
      context.chargePlace?.pass() // a replay is not charged
      const outcome = await waiting(context, () => known)
      if (outcome !== undefined) return answer(outcome)
    }
  }
  if (v.with !== undefined && s.log.creationRefusal !== undefined) {
    const refusal = logRefusal(await s.log.creationRefusal(v.with as SpaceDID, request))
    if (refusal) return { error: refusal }
  }
  const charge = v.signatureVerified ? { id: v.chargeId, expiresAt: v.exp, issuer: v.issuer as API.DID } : undefined
  const checked = v.result
  const authorized = await admitCharge(
    charge,
    { admission: s.admission, rateLimited: context.rateLimited, place: context.chargePlace },
    (ok: { space: string }) => ok.space,
    async (): Promise<API.Result<NonNullable<typeof checked.ok>, AppendFailure>> => {
      if (checked.error) return { error: asFailure(checked.error) as AppendFailure }
      const query: RevocationQuery = new Map(checked.ok.revocation.map(([cid, dids]) => [cid, new Set(dids as API.DID[])]))
      const revocation = await checkRevocation(query, s.revocations)
      return revocation.error ? revocation : { ok: checked.ok }
    },
  )
  if (authorized.error) return authorized
  const { space, entry, delegation, delegationCid } = authorized.ok
  return commitAppend(s, { space: space as SpaceDID, entry, id: v.cid, expiresAt: v.exp, delegation: delegationRef(delegation, delegationCid) }, context)
}

/** A worker's named failure as a failure object (its `toJSON()` is the same `{ name, message }`). */
function asFailure(json: FailureJSON): API.Failure {
  return { name: json.name, message: json.message, toJSON: () => ({ name: json.name, message: json.message }) } as unknown as API.Failure
}

/** The checked `nb.delegation` string as a {@link DelegationRef}: parsed here only if the log asks for the delegation. */
function delegationRef(text: string, cid: string): DelegationRef {
  return {
    cid,
    async load() {
      const parsed = await parseDelegation(text)
      if (parsed.error) throw parsed.error
      return parsed.ok
    },
  }
}

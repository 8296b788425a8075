/**
 * Admission control of the UCAN RPC: who pays for each invocation (client address, verified
 * issuer, space) and the turns on the CPU that requests and invocations take. The policy itself
 * (token buckets, round-robin scheduler) is the server's (src/server/rate-limit.ts); this file
 * holds its contract and the one place a handler is admitted ({@link admit}).
 */
import { createHash } from 'node:crypto'
import type { API } from '@ucanto/core'
import { RateLimited } from './errors.js'
import { issuerOf } from './signed-payload.js'

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
   * @throws ServiceBusy (rejects) when the service-wide queue is full and the address has the most waiting (→ HTTP 503).
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

/** Admits everything, charges nothing: the default {@link Admission}. */
export const ADMIT_ALL: Admission = {
  request: () => undefined,
  turn: async () => () => {},
  check: () => undefined,
  charge: () => undefined,
  debit: () => {},
}

/** What the transport knows of the request an invocation came in (handlers get it in their context). */
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
export function createTurn(acquire: (always: boolean) => Promise<() => void>): Turn {
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

/**
 * {@link Charge.id} of a signed invocation: sha2-256 of its issuer DID, a space and its signature
 * bytes, in base64 (44 characters; unique per signed payload). A digest, not the issuer and
 * signature themselves, so that each id the charge memory keeps (`--charge-memory` of them) costs
 * the same ~100 B whatever the issuer's key: an RSA-4096 issuer and signature are ~1.4 KB.
 */
export function chargeId(invocation: API.Invocation): string {
  return createHash('sha256').update(`${issuerOf(invocation)} `).update(invocation.signature).digest('base64')
}

/**
 * Runs `authorize` for `invocation` under `admission` (within its request's turn). The invocation's
 * signature is verified here, once, and its outcome handed to `authorize`: a verified issuer is
 * refused before any chain work when it is out of tokens; a failure debits it; a success charges
 * it and `spaceOf(ok)` (authorized writes only), or is refused. A refusal is `RateLimited` and is
 * reported to `rateLimited` with the seconds to wait (the transport answers 429 when all are).
 */
export async function admit<T, F extends API.Failure>(
  invocation: API.Invocation,
  o: {
    admission: Admission
    verify: (invocation: API.Invocation) => Promise<boolean>
    rateLimited?: ((seconds: number) => void) | undefined
    place?: ChargePlace | undefined
  },
  spaceOf: (ok: T) => string | undefined,
  authorize: (signatureVerified: boolean) => Promise<API.Result<T, F>>,
): Promise<API.Result<T, F | RateLimited>> {
  const verified = await o.verify(invocation)
  const charge: Charge | undefined = verified
    ? { id: chargeId(invocation), expiresAt: invocation.expiration, issuer: issuerOf(invocation) }
    : undefined
  return admitCharge(charge, o, spaceOf, () => authorize(verified))
}

/**
 * {@link admit} once the invocation's signature is known: `charge` is its {@link Charge} when it
 * verified, undefined when not (for an invocation checked on a request worker, request-sequencer.ts).
 * With `o.place` the charge is taken in its request's order (see {@link ChargeOrder}); the place
 * is passed on however this ends.
 */
export async function admitCharge<T, F extends API.Failure>(
  charge: Charge | undefined,
  o: { admission: Admission; rateLimited?: ((seconds: number) => void) | undefined; place?: ChargePlace | undefined },
  spaceOf: (ok: T) => string | undefined,
  authorize: () => Promise<API.Result<T, F>>,
): Promise<API.Result<T, F | RateLimited>> {
  const limit = (seconds: number): { error: RateLimited } => {
    o.rateLimited?.(seconds)
    return { error: new RateLimited(`rate limited; retry in ${Math.max(1, Math.ceil(seconds))} s`) }
  }
  try {
    const early = charge && o.admission.check(charge)
    if (early !== undefined) return limit(early)
    const result = await authorize()
    if (result.error) {
      if (charge) o.admission.debit(charge)
      return result
    }
    await o.place?.ready()
    const space = spaceOf(result.ok as T)
    const wait = o.admission.charge({ ...charge!, ...(space !== undefined && { space }) })
    return wait === undefined ? result : limit(wait)
  } finally {
    o.place?.pass()
  }
}

/**
 * One invocation's place in its request's {@link ChargeOrder}: `ready()` resolves once every
 * earlier invocation of the request was charged, refused or dropped out (`wrap`, e.g. giving the
 * CPU turn back, runs only when it must wait); `pass()` (idempotent) lets the next one be charged.
 */
export interface ChargePlace {
  ready(wrap?: (wait: () => Promise<void>) => Promise<void>): Promise<void>
  pass(): void
}

/**
 * The order in which the invocations of one request are charged: the request's own. Their
 * lookups (the log's existence, revocations, the replay guard) finish in whatever order the disk
 * and the stores answer, so without it which of a request's invocations a rate limit refuses would
 * depend on timing; with it an issuer with n tokens always gets the request's first n. Only the
 * charge waits (a synchronous step); the checks before it still run concurrently.
 */
export class ChargeOrder {
  private readonly gates: { passed: Promise<void>; open: () => void; done: boolean }[]

  /** @param n the request's invocations. */
  constructor(n: number) {
    this.gates = Array.from({ length: n }, () => {
      const gate = { passed: Promise.resolve(), open: () => {}, done: false }
      gate.passed = new Promise<void>((resolve) => {
        gate.open = () => {
          gate.done = true
          resolve()
        }
      })
      return gate
    })
  }

  /**
   * Invocation `i`'s place (0 ≤ i < n). Every place must be passed, or the later ones wait for
   * ever: callers pass it in a `finally` as well.
   */
  place(i: number): ChargePlace {
    const before = i > 0 ? this.gates[i - 1] : undefined
    const own = this.gates[i]!
    return {
      ready: (wrap = (wait) => wait()) => (before === undefined || before.done ? Promise.resolve() : wrap(() => before.passed)),
      pass: () => {
        if (before === undefined || before.done) own.open()
        else void before.passed.then(own.open)
      },
    }
  }
}

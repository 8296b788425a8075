/**
 * The RPC's request handling: what ucanto's `handle` does for one HTTP request (decode the agent
 * message, run every invocation, encode the signed receipts), with the service's limits around it
 * (invocations per request, admission and turns, the read response pool, the proof-graph check)
 * and no way for a hostile body to make it reject or leak a stack trace.
 */
import * as CAR from '@ucanto/transport/car'
import { Message, Receipt } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { type Admission, type ChargePlace, ChargeOrder, type RequestContext, type Turn, createTurn } from './admission.js'
import { InvalidCapability, type ProofGraphFailure, RateLimited, truncate } from './errors.js'
import type { HandlerContext, UcanLogger } from './handlers/context.js'
import { DEFAULT_PROOF_GRAPH_BUDGET, checkProofGraph } from './proof-graph.js'
import { PREVERIFY_MIN_INVOCATIONS, type Preverified } from './preverify.js'
import type { ResponsePool } from './response-budget.js'
import { type VerifiedUcanCache, markPreverified } from './verified-ucans.js'
import { runInvocation } from './run-invocation.js'
import { type AppendVerdict, encodeResponse, sameOutcome } from './request-check.js'
import type { SequencedAppends } from './request-sequencer.js'
import type { RequestPool } from './request-pool.js'
import type { TlogService } from './wire.js'

/**
 * `server` whose `request` never rejects and that admits requests first. It does what ucanto's
 * `handle` does (415/406 from the codec, 400 for a body that does not decode, then every
 * invocation runs and the receipts are encoded), plus:
 * - more than `maxInvocations` invocations → 413 and nothing runs;
 * - `admission.request` (the client address's rate limit) refusing → 429 with `Retry-After`, and
 *   nothing runs; so does a request whose every invocation was refused `RateLimited`; a turn
 *   refused or shed `ServiceBusy` (the service-wide queue is full) → 503 with `Retry-After`
 *   instead (an invocation's own: `RateLimited` naming ServiceBusy, 503 when all were refused);
 * - a request with a `tlog/read` when the response pool cannot reserve its budget → 503
 *   `ReadCapacityExhausted` with `Retry-After: 1`, and nothing runs;
 * - an invocation whose own proof graph fails proof-graph.ts's check (duplicate proof links, a
 *   cycle, over {@link DEFAULT_PROOF_GRAPH_BUDGET}) gets `DuplicateProof`/`ProofCycle`/
 *   `ProofGraphTooLarge` before any signature is checked, in a receipt whose `ran` is the
 *   invocation's link (ucanto would otherwise export the graph once per path into the receipt);
 * - every receipt names the invocation it answers by link only (`ran`, run-invocation.ts): the
 *   signed receipt is the same as ucanto's, the response CAR carries no invocation blocks;
 * - an invocation without exactly one capability, or of an ability the service does not
 *   implement, gets `InvalidCapability` (not ucanto's `InvocationCapabilityError`, whose JSON
 *   carries every capability's `nb`, nor its `HandlerNotFound`, whose receipt carries a stack);
 * - each invocation that runs takes its own turn and gets its request's context (client address,
 *   turn, read budget) in ucanto's handler context ({@link HandlerContext});
 * - anything throwing while decoding, running or encoding (ucanto can, for a hostile message, e.g.
 *   a proof block that does not decode as a UCAN) → 400.
 * Status bodies are short plain text, never a stack trace.
 */
export function withSafeRequest(
  server: API.ServerView<TlogService>,
  logger: UcanLogger,
  limits: {
    maxInvocations: number
    admission: Admission
    responses: ResponsePool
    refusalDelayMs: number
    /** Pre-verification on other cores (preverify-pool.ts); none: every check on this thread. */
    preverify?: ((body: Uint8Array, contentType: string) => Promise<Preverified | undefined>) | undefined
    /** Where pre-verified delegations and proofs are remembered (the chain check's cache). */
    ucans?: VerifiedUcanCache | undefined
    /** The whole request on worker threads, the main thread only sequencing (request-pool.ts); none: all on this thread. */
    workers?: RequestWorkers | undefined
  },
): API.ServerView<TlogService> {
  // The abilities the service implements: ucanto finds a handler by property access on the `can`
  // path, so any other `can` (including inherited names such as `toString`) is refused here.
  const implemented = new Set(Object.entries(server.service).flatMap(([ns, methods]) => Object.keys(methods).map((m) => `${ns}/${m}`)))
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
      // ServiceBusy (the service-wide queue of turns is full and this address has the most waiting) is 503.
      const tooMany = async (retryAfter: number, busy = false) => {
        const seconds = Math.max(1, Math.ceil(retryAfter))
        if (limits.refusalDelayMs > 0) await new Promise((r) => setTimeout(r, Math.min(limits.refusalDelayMs, seconds * 1000)))
        if (busy) return text(503, 'ServiceBusy: the service has too many requests waiting; retry later', { 'retry-after': String(seconds) })
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
          if ((err as Error | undefined)?.name === 'ServiceBusy') return tooMany(1, true)
          throw err
        }
        held = turn
        const selection = CAR.inbound.accept(req as never)
        if (selection.error) {
          const { status, headers = {}, message } = selection.error
          return { status, headers, body: new TextEncoder().encode(message) }
        }
        const { encoder, decoder } = selection.ok
        // The common request (appends only) is decoded, checked and answered on a worker thread;
        // this thread only sequences it. Anything else falls through and runs here as always.
        // The request keeps its turn while a worker checks it (the fair scheduler orders the
        // workers' work as it does this thread's, and its bounded queue refuses a flood), and
        // gives it back once checked: what is left here is sequencing, mostly waiting on the log.
        if (limits.workers !== undefined) {
          // Requests are sequenced in the order they were handed to the workers, whichever worker
          // finishes first: appends sent one after another land in that order, as on one thread.
          const ticket = takeTicket(limits.workers)
          let outcomes: SequencedAppends | undefined
          let waits: Map<number, number> | undefined
          let verdicts: Awaited<ReturnType<RequestPool['check']>>
          try {
            verdicts = await limits.workers.pool.check(req.body as Uint8Array, contentTypeOf(req), limits.workers.now())
            limits.workers.onRoute?.(verdicts === undefined ? 'main-thread' : Array.isArray(verdicts) ? 'worker' : verdicts)
            if (Array.isArray(verdicts)) {
              held = undefined
              turn.idle()
              await ticket.ready
              if (verdicts.length > 1) {
                const rest = limits.admission.request(verdicts.length - 1, context)
                if (rest !== undefined) return await tooMany(rest)
              }
              const limited = (waits = new Map<number, number>())
              outcomes = limits.workers.sequence(verdicts, context, (i, seconds) => limited.set(i, seconds))
            }
          } finally {
            ticket.done()
          }
          if (verdicts === 'busy') return await tooMany(1, true)
          if (outcomes !== undefined && waits !== undefined && Array.isArray(verdicts)) {
            const headers = { 'content-type': contentTypeOf(req), accept: headerOf(req, 'accept') }
            const pool = limits.workers.pool
            // The receipts are encoded on a worker from the provisional outcomes, while this
            // thread makes them durable (the replay guard's commit), and sent only once every
            // outcome is final and the same; any that differs has the whole response encoded again.
            const early = outcomes.provisional.then((p) => (waits.size === verdicts.length ? undefined : { p, response: pool.encode(p, headers) }))
            const answered = await outcomes.outcomes
            // Every invocation refused by a rate limit: nothing ran, so the answer is 429 as below.
            if (waits.size === verdicts.length) return await tooMany(Math.max(...waits.values()))
            const pre = await early
            const encoded = pre !== undefined && pre.p.every((o, i) => sameOutcome(o, answered[i]!)) ? await pre.response : await pool.encode(answered, headers)
            return encoded ?? (await encodeResponse(answered, headers, server.id as API.Signer))
          }
        }
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
        // The signatures and canonical encodings of the request's UCANs, checked on another core
        // (preverify.ts) while this thread serves other requests; what it vouches for is skipped
        // below for these very bytes, the rest is checked here as always.
        // The request gives its turn back while it waits (other requests decode meanwhile).
        if (limits.preverify !== undefined && invocations.length - refused.size >= PREVERIFY_MIN_INVOCATIONS) {
          const preverifying = limits.preverify(req.body as Uint8Array, contentTypeOf(req))
          held = undefined
          turn.idle()
          const pre = await preverifying
          await turn.busy()
          held = turn
          if (pre !== undefined) applyPreverified(pre, invocations, limits.ucans)
        }
        // A request that reads reserves its response budget from the service-wide pool until its
        // response is encoded; when the pool is spent, that request is refused and nothing runs.
        const reads = invocations.some((inv) => inv.capabilities[0]?.can === 'tlog/read')
        const responses = reads ? limits.responses.reserve(context.client) : undefined
        if (reads && responses === undefined) {
          return text(503, 'ReadCapacityExhausted: too many read responses in flight; retry later', { 'retry-after': '1' })
        }
        try {
          // Invocations refused by a rate limit → seconds to wait (429 when all of the request's were).
          const rateLimited = new Map<API.Invocation, number>()
          let busy = false
          // ucanto's execute, except that an invocation without exactly one capability, or of an
          // ability not implemented, gets our InvalidCapability (ucanto's InvocationCapabilityError
          // would echo every capability's nb, its HandlerNotFound carries a server stack trace),
          // and that every receipt's `ran` is the invocation's link (run-invocation.ts): the
          // response does not send the client's own invocation DAG back to it.
          // Each invocation that runs takes a turn of its own (round-robin across client addresses,
          // so a request of 64 invocations takes 64 turns, interleaved with other addresses'), which
          // its handler gives back while it only waits. The request gives its own turn back meanwhile.
          // Charges are taken in the request's order, whatever order the checks finish in.
          const order = new ChargeOrder(invocations.length)
          const run = async (inv: API.Invocation, chargePlace: ChargePlace): Promise<unknown> => {
            const own = createTurn((always) => limits.admission.turn(context, { always }))
            try {
              await own.busy()
            } catch (err) {
              chargePlace.pass()
              const name = (err as Error | undefined)?.name
              if (name !== 'SchedulerFull' && name !== 'ServiceBusy') throw err
              rateLimited.set(inv, 1)
              busy ||= name === 'ServiceBusy'
              const why = name === 'ServiceBusy' ? 'ServiceBusy: too many requests waiting in the service' : 'too many requests waiting from this address'
              return Receipt.issue({ issuer: server.id as API.Signer, ran: inv.link(), result: { error: new RateLimited(`${why}; retry later`) } })
            }
            try {
              const can = inv.capabilities[0]!.can
              if (!implemented.has(can)) {
                return await Receipt.issue({ issuer: server.id as API.Signer, ran: inv.link(), result: { error: new InvalidCapability(`service does not implement ${truncate(can)}`) } })
              }
              // Its handler gets ucanto's context plus this request's response budget and the invocation's own request context.
              const handlerContext: HandlerContext = {
                ...(responses && { responses }),
                request: { ...context, turn: own },
                rateLimited: (seconds) => rateLimited.set(inv, seconds),
                chargePlace,
              }
              const runner = Object.create(server, { context: { value: { ...server.context, ...handlerContext } } })
              return await runInvocation(inv, runner)
            } finally {
              chargePlace.pass()
              own.idle()
            }
          }
          const running: Promise<unknown>[] = invocations.map((inv, i) => {
            const place = order.place(i)
            if (!refused.has(inv) && inv.capabilities.length === 1) return run(inv, place)
            place.pass()
            return refused.has(inv)
              ? Receipt.issue({ issuer: server.id as API.Signer, ran: inv.link() as never, result: { error: refused.get(inv) as ProofGraphFailure } })
              : Receipt.issue({
                  issuer: server.id as API.Signer,
                  ran: inv.link(),
                  result: { error: new InvalidCapability('invocation must carry exactly one capability') },
                })
          })
          held = undefined
          turn.idle()
          const receipts = await Promise.all(running)
          await turn.busy()
          held = turn
          // Every invocation refused by a rate limit: nothing ran, so the answer is 429 as above.
          const waits = invocations.map((inv) => rateLimited.get(inv))
          if (waits.length > 0 && waits.every((w) => w !== undefined)) return tooMany(Math.max(...(waits as number[])), busy)
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

/** The request's `content-type` header, whatever its case. */
function contentTypeOf(req: API.HTTPRequest): string {
  return headerOf(req, 'content-type')
}

/** The request's header `name` (lower case), whatever its case; '' when absent. */
function headerOf(req: API.HTTPRequest, name: string): string {
  const headers = req.headers as Record<string, string | undefined>
  const found = headers[name] ?? Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1]
  return found ?? ''
}

/**
 * A place in the order requests were handed to the workers: `ready` once every earlier request
 * has started sequencing (or left the worker path); `done` when this one has (call it exactly
 * once, on every path: the next request waits for it).
 */
interface Ticket {
  ready: Promise<void>
  done(): void
}

/** The sequencing order of `workers`' requests, kept on the object (one chain per transport). */
const tails = new WeakMap<RequestWorkers, Promise<void>>()

/** Takes the next {@link Ticket} of `workers`. */
function takeTicket(workers: RequestWorkers): Ticket {
  const ready = tails.get(workers) ?? Promise.resolve()
  let release!: () => void
  const mine = new Promise<void>((r) => (release = r))
  tails.set(workers, mine)
  // Done only after every earlier one is: whatever path this request takes, the order holds.
  return { ready, done: () => void ready.then(release) }
}

/** How the transport hands requests to worker threads (request-pool.ts, request-sequencer.ts). */
export interface RequestWorkers {
  pool: RequestPool
  /** The service's clock, Unix seconds (sent with each request: the worker checks time bounds at it). */
  now: () => number
  /** request-sequencer.ts `sequenceAppends` bound to the service. */
  sequence: (verdicts: AppendVerdict[], request: RequestContext, rateLimited: (index: number, seconds: number) => void) => SequencedAppends
  /** Told where each request went: checked by a `worker`, `fallback` (not only appends: run here), `main-thread` (no worker answered), `busy` (refused 503). */
  onRoute?: (by: 'worker' | 'fallback' | 'main-thread' | 'busy') => void
}

/**
 * Takes what the pre-verification thread vouches for: each invocation it verified is noted on
 * its object (once its bytes hash to the CID, verified-ucans.ts `markPreverified`); delegations
 * and proofs go to the verified-UCAN cache by CID (which re-hashes the bytes it is later shown).
 */
function applyPreverified(pre: Preverified, invocations: readonly API.Invocation[], ucans: VerifiedUcanCache | undefined): void {
  if (pre.invocations.length > 0) {
    const ids = new Set(pre.invocations)
    for (const inv of invocations) if (ids.has(inv.cid.toString())) markPreverified(inv)
  }
  if (ucans === undefined) return
  for (const id of pre.proofs) ucans.addCid(id)
  for (const id of pre.delegations) ucans.addCid(id, { delegation: true })
}

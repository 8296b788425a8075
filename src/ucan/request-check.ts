/**
 * The CPU-heavy half of an RPC request, for a request worker thread (request-worker.ts, issue 11
 * item 2): everything that needs no shared state. {@link checkRequest} decodes the request's CAR
 * agent message and runs every check of a `tlog/append` but revocation (authorize.ts
 * `checkAppend`: the invocation's block, audience, time bounds and signature, the entry, the
 * delegation and its chain), and answers a small structured verdict per invocation. The main
 * thread then does only what needs the service's state, in order (request-sequencer.ts: the replay
 * guard, creation limits, rate limits, revocation lookups, the log), and
 * {@link encodeResponse} (again on a worker) signs the receipts and encodes the response CAR.
 *
 * Only the common request is handled so: every invocation a single-capability `tlog/append`
 * whose proof graph passes proof-graph.ts and whose chain needs no ucanto validator (no
 * `did:mailto`). Anything else (another ability, a body that does not decode, too many
 * invocations, a refused proof graph, a mailto chain) answers {@link FALLBACK}: the main thread
 * runs the whole request as without workers (transport.ts), so every such refusal keeps its code.
 *
 * Nothing here is trusted beyond what it checked: a verdict names the invocation by the CID its
 * bytes hash to (checkInvocation), and a worker that fails or is full means the main thread does
 * everything itself.
 */
import * as CAR from '@ucanto/transport/car'
import { Message, Receipt } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { Failure } from '@ucanto/core'
import { parse as parseLink } from 'multiformats/link'
import { chargeId } from './admission.js'
import { type AuthorizeAppendOptions, NEEDS_VALIDATOR, checkAppend } from './authorize.js'
import { SpaceDID } from './capabilities.js'
import { checkContentAddressed } from './delegation.js'
import { type FailureJSON, InternalError } from './errors.js'
import { verifyInvocationSignature } from './invocation.js'
import { checkProofGraph } from './proof-graph.js'
import { encodeReceiptsCar } from './receipt-encoder.js'
import { issuerOf } from './signed-payload.js'
import { isCanonical } from './verified-ucans.js'
import type { AppendResult } from './wire.js'

/** What {@link checkRequest} answers when the main thread must run the whole request itself. */
export const FALLBACK = 'fallback' as const

/** One `tlog/append` of a request, as the worker found it. Plain data (posted between threads). */
export interface AppendVerdict {
  /** The invocation's CID (its block's bytes hash to it). */
  cid: string
  /** Its `exp`, Unix seconds (`Infinity` when none). */
  exp: number
  /** Its block is the canonical encoding under `cid` (delegation.ts `checkContentAddressed`, without proofs): a replay may be answered from the replay guard. */
  canonical: boolean
  /** Its capability's `with` when that reads as a did:key space (what creation limits are asked about), else undefined. */
  with: string | undefined
  /** Its issuer (unverified unless `signatureVerified`). */
  issuer: string
  /** admission.ts `chargeId` of the invocation. */
  chargeId: string
  /** Its own signature verified (so its issuer pays for it). */
  signatureVerified: boolean
  /** Every check but revocation passed (`ok`), or the first that failed by its name. */
  result:
    | {
        ok: {
          space: string
          /** The entry, 1..65535 bytes (its own buffer, transferable). */
          entry: Uint8Array
          /** `nb.delegation`, checked: the main thread decodes it only if the log asks (log-service.ts `DelegationRef`). */
          delegation: string
          /** Its CID. */
          delegationCid: string
          /** Check (5)'s query: UCAN CID → the DIDs that may revoke it. */
          revocation: [string, string[]][]
        }
        error?: undefined
      }
    | { error: FailureJSON; ok?: undefined }
}

/** Settings of {@link checkRequest}: the service's, fixed for the worker's life. */
export interface RequestCheckContext {
  /** authorize.ts options without the clock (given per request) and revocations (the main thread's). */
  authorize: Omit<AuthorizeAppendOptions, 'now' | 'revocations' | 'signatureVerified' | 'withoutValidator'>
  /** Most invocations per request (more: the main thread answers 413). */
  maxInvocations: number
}

/**
 * Decodes one request (`body` with its `content-type`, as ucanto's `CAR.inbound` reads it) and
 * checks each of its invocations at time `now` (Unix seconds), see the module comment. Never
 * throws: anything unexpected is {@link FALLBACK}.
 */
export async function checkRequest(body: Uint8Array, contentType: string, now: number, ctx: RequestCheckContext): Promise<AppendVerdict[] | typeof FALLBACK> {
  try {
    const req = { headers: { 'content-type': contentType }, body }
    const selection = CAR.inbound.accept(req as never)
    if (selection.error) return FALLBACK
    const message = (await selection.ok.decoder.decode(req as never)) as API.AgentMessage
    const invocations = message.invocations as API.Invocation[]
    if (invocations.length === 0 || invocations.length > ctx.maxInvocations) return FALLBACK
    for (const inv of invocations) {
      if (inv.capabilities.length !== 1 || inv.capabilities[0]?.can !== 'tlog/append') return FALLBACK
      if (checkProofGraph(inv).error) return FALLBACK
    }
    const options: AuthorizeAppendOptions = { ...ctx.authorize, now: () => now }
    const verdicts: AppendVerdict[] = []
    for (const inv of invocations) {
      const verdict = await checkOne(inv, options)
      if (verdict === FALLBACK) return FALLBACK
      verdicts.push(verdict)
    }
    return verdicts
  } catch {
    return FALLBACK
  }
}

/** {@link AppendVerdict} of one invocation, or {@link FALLBACK} when its chain needs ucanto's validator. */
async function checkOne(inv: API.Invocation, options: AuthorizeAppendOptions): Promise<AppendVerdict | typeof FALLBACK> {
  const capability = inv.capabilities[0] as API.Capability
  const nb = capability.nb as { delegation?: unknown } | undefined
  const space = SpaceDID.read(capability.with)
  const principal = options.principal as API.PrincipalParser
  const signatureVerified = await verifyInvocationSignature(inv, principal)
  // A chain through did:mailto is judged by ucanto's validator with the attester: on the main thread.
  const checked = await checkAppend(inv, { ...options, signatureVerified, withoutValidator: true })
  if (checked.error === NEEDS_VALIDATOR) return FALLBACK
  const base = {
    cid: inv.cid.toString(),
    exp: inv.expiration,
    // checkInvocation (inside checkAppend) found it so already unless it failed earlier: a note on this object, not a second encoding.
    canonical: isCanonical(inv) || (await checkContentAddressed(inv, { proofs: false })),
    with: space.ok,
    issuer: issuerOf(inv),
    chargeId: chargeId(inv),
    signatureVerified,
  }
  if (checked.error) return { ...base, result: { error: toFailureJSON(checked.error) } }
  const { space: target, entry, delegation, revocation } = checked.ok
  return {
    ...base,
    result: {
      ok: {
        space: target,
        // Its own buffer: decoded base64 is often a view of a larger pooled one, which posting would copy whole.
        entry: new Uint8Array(entry),
        delegation: nb?.delegation as string,
        delegationCid: delegation.cid.toString(),
        revocation: [...revocation].map(([cid, dids]) => [cid, [...dids]]),
      },
    },
  }
}

/** A failure's wire form (`toJSON()`: `{ name, message }` for ours). */
function toFailureJSON(error: API.Failure): FailureJSON {
  const json = (error as { toJSON?: () => unknown }).toJSON?.() as Partial<FailureJSON> | undefined
  return { name: String(json?.name ?? error.name), message: String(json?.message ?? error.message) }
}

/** A failure rebuilt from its wire form: encodes (`toJSON()`) exactly as the original did. */
class WireFailure extends Failure {
  override readonly name: string
  readonly #message: string
  constructor(json: FailureJSON) {
    super()
    this.name = json.name
    this.#message = json.message
  }
  override describe(): string {
    return this.#message
  }
  override toJSON(): ReturnType<Failure['toJSON']> {
    return { name: this.name, message: this.message } as ReturnType<Failure['toJSON']>
  }
}

/** One invocation's outcome as the main thread decided it: the append's wire result or a named failure. */
export interface AppendOutcome {
  /** The invocation's CID (the receipt's `ran`). */
  cid: string
  result: { ok: AppendResult; error?: undefined } | { error: FailureJSON; ok?: undefined }
}

/**
 * Whether `final` is what `provisional` said (request-sequencer.ts `SequencedAppends`): the same
 * outcome, or the same ok result object (the replay guard resolves to the very value its task
 * returned; a failed commit makes the final outcome an error).
 */
export function sameOutcome(provisional: AppendOutcome, final: AppendOutcome): boolean {
  return provisional === final || (provisional.result.ok !== undefined && provisional.result.ok === final.result.ok)
}

/**
 * The HTTP response of a request whose invocations ended as `outcomes`: one receipt each, signed by
 * `signer`, `ran` = the invocation's link (run-invocation.ts: the same signed receipt as ucanto's),
 * in a CAR agent message encoded for the request's `accept`/`content-type` headers. A failure is
 * encoded as `{ name, message }`, as errors.ts's failures are. The bytes and headers are
 * {@link encodeResponseWithUcanto}'s, written by receipt-encoder.ts (each CBOR value encoded once)
 * whenever the headers select ucanto's CAR response encoder and there is an outcome, and by
 * ucanto otherwise.
 * @throws InternalError if the headers select no encoder (the main thread checked they do); an
 * outcome's `cid` that is not a CID throws multiformats' parse error.
 */
export async function encodeResponse(outcomes: readonly AppendOutcome[], headers: Record<string, string>, signer: API.Signer): Promise<API.HTTPResponse> {
  const encoder = responseEncoder(headers)
  if ((encoder as unknown) === CAR.response) {
    const body = await encodeReceiptsCar(outcomes, signer)
    if (body !== undefined) return { headers: { 'content-type': CAR.response.contentType }, body } as API.HTTPResponse
  }
  return encodeWithUcanto(outcomes, encoder, signer)
}

/**
 * {@link encodeResponse} as ucanto builds it (`Receipt.issue` per outcome, `Message.build`, the
 * selected encoder): the reference the direct encoder is tested against, and its fallback.
 * @throws InternalError if the headers select no encoder.
 */
export async function encodeResponseWithUcanto(outcomes: readonly AppendOutcome[], headers: Record<string, string>, signer: API.Signer): Promise<API.HTTPResponse> {
  return encodeWithUcanto(outcomes, responseEncoder(headers), signer)
}

type ResponseEncoder = API.Transport.ResponseEncoder

/** The response encoder ucanto's `CAR.inbound` selects for these request headers. */
function responseEncoder(headers: Record<string, string>): ResponseEncoder {
  const selection = CAR.inbound.accept({ headers, body: new Uint8Array() } as never)
  if (selection.error) throw new InternalError('no encoder for this request')
  return selection.ok.encoder
}

/** ucanto's receipts of `outcomes` signed by `signer`, in its agent message, encoded by `encoder`. */
async function encodeWithUcanto(outcomes: readonly AppendOutcome[], encoder: ResponseEncoder, signer: API.Signer): Promise<API.HTTPResponse> {
  const receipts = await Promise.all(
    outcomes.map((o) =>
      Receipt.issue({
        issuer: signer,
        ran: parseLink(o.cid) as never,
        result: (o.result.error ? { error: new WireFailure(o.result.error) } : { ok: o.result.ok }) as API.Result<{}, {}>,
      }),
    ),
  )
  const message = await Message.build({ receipts: receipts as never })
  return (await encoder.encode(message as never)) as API.HTTPResponse
}

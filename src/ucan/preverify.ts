/**
 * Pre-verification of an RPC request's UCANs, off the main thread (issue 11: both cores). A pure
 * function over the request's bytes that a worker thread runs (preverify-worker.ts) while the
 * main thread decodes the same request: it finds which UCANs of the request are the canonical
 * dag-cbor block under their sha2-256 CID and carry a valid signature by their issuer, and
 * answers their CIDs. The main thread then skips exactly those two checks for exactly those
 * bytes (`markPreverified` and the verified-UCAN cache, verified-ucans.ts); every other check
 * (audiences, time bounds, the chain, capabilities, revocation, replay) runs there as before.
 *
 * Sound across threads because a CID names bytes: a UCAN is reported only after its block's bytes
 * were hashed to its CID here, and the main thread re-hashes the bytes it holds before it trusts a
 * reported CID (verified-ucans.ts `sameBytes`). A UCAN not reported (a signature that does not
 * verify, an issuer that is not an Ed25519 did:key, anything over a bound, a worker that crashed)
 * is simply checked on the main thread as if there were no pool: the answer is never "invalid",
 * only "verified" or "not known".
 *
 * Cost bound: at most `maxInvocations` invocations, and for each the UCANs of its `nb.delegation`
 * (delegation.ts bounds the graph: {@link MAX_CHAIN_UCANS} UCANs), each distinct CID verified once
 * per request; CIDs verified before are remembered in `known` (bounded by the caller).
 */
import { isDelegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { CAR } from '@ucanto/transport'
import { MAX_CHAIN_UCANS, parseDelegation } from './delegation.js'
import { createPrincipalParser } from './principal.js'
import { issuerOf, verifyIssuerSignature } from './signed-payload.js'
import { isCanonicalUcan } from './canonical-ucan.js'
import { sameBytes } from './verified-ucans.js'

/** CIDs (strings) of a request's UCANs found canonical and validly signed, by role. */
export interface Preverified {
  /** The request's invocations. */
  invocations: string[]
  /** The Agent→Service delegations their `nb.delegation` carries (the top of each chain). */
  delegations: string[]
  /** The UCANs below those delegations (chiefly Space→Agent proofs). */
  proofs: string[]
}

/**
 * Fewest invocations (not refused by the proof-graph check) a request needs to be pre-verified on
 * another thread. Below it the main thread checks them itself: handing a request over costs the
 * main thread about what verifying one invocation saves it (posting, answering, a second turn),
 * and the worker decodes the whole request again. Measured on 2 cores (BENCHMARKS.md, 2026-11-30):
 * with one invocation per request the pool cost ~1,100 µs of CPU per append for no main-thread
 * saving; with 16, the main thread spent 730 µs per append instead of 1,060.
 */
export const PREVERIFY_MIN_INVOCATIONS = 4

/** Options of {@link preverifyRequest}. */
export interface PreverifyOptions {
  /** Most invocations looked at (the transport refuses more with 413 anyway); integer ≥ 1. */
  maxInvocations: number
  /**
   * CIDs verified by earlier calls (a bounded set the caller owns): found there, a UCAN whose
   * bytes hash to its CID is reported without verifying again; verified here, it is added.
   */
  known?: { has(cid: string): boolean; add(cid: string): void }
  /** Verifier of issuers' DIDs; default a fresh `createPrincipalParser()`. */
  principal?: API.PrincipalParser
}

/**
 * The UCANs of one CAR agent message (ucanto's `CAR.inbound`: `body` with its `content-type`)
 * found canonical and validly signed (see the module comment). Never throws: a body that does not
 * decode yields empty lists (the main thread refuses it by its own decode).
 */
export async function preverifyRequest(body: Uint8Array, contentType: string, options: PreverifyOptions): Promise<Preverified> {
  const out: Preverified = { invocations: [], delegations: [], proofs: [] }
  const principal = options.principal ?? createPrincipalParser()
  const seen = new Set<string>()
  /** Reports `ucan` into `into` when canonical, hashing to its CID and validly signed. */
  const check = async (ucan: API.Delegation, into: string[]): Promise<void> => {
    const id = ucan.cid.toString()
    if (seen.has(id)) return
    seen.add(id)
    if (!sameBytes(ucan)) return
    if (options.known?.has(id) !== true) {
      if (!(await canonicalAndSigned(ucan, principal))) return
      options.known?.add(id)
    }
    into.push(id)
  }
  try {
    const req = { headers: { 'content-type': contentType }, body }
    const selection = CAR.inbound.accept(req as never)
    if (selection.error) return out
    const message = (await selection.ok.decoder.decode(req as never)) as API.AgentMessage
    const invocations = (message.invocations as API.Invocation[]).slice(0, options.maxInvocations)
    for (const invocation of invocations) {
      await check(invocation, out.invocations)
      const nb = invocation.capabilities[0]?.nb as { delegation?: unknown } | undefined
      if (typeof nb?.delegation !== 'string') continue
      const parsed = await parseDelegation(nb.delegation)
      if (parsed.error) continue
      await check(parsed.ok, out.delegations)
      const below: API.Delegation[] = parsed.ok.proofs.filter(isDelegation)
      for (let i = 0; i < below.length && i < MAX_CHAIN_UCANS; i++) {
        const proof = below[i] as API.Delegation
        await check(proof, out.proofs)
        for (const p of proof.proofs) if (isDelegation(p) && below.length < MAX_CHAIN_UCANS) below.push(p)
      }
    }
  } catch {
    // Whatever was reported so far stays true; the rest is checked on the main thread.
  }
  return out
}

/** Whether `ucan` (whose bytes hash to its CID) re-encodes to its own bytes (as delegation.ts `checkContentAddressed` requires) and its issuer's signature verifies. */
async function canonicalAndSigned(ucan: API.Delegation, principal: API.PrincipalParser): Promise<boolean> {
  try {
    // The block already hashes to its CID (verified-ucans.ts `sameBytes`): what delegation.ts
    // `checkContentAddressed` asks besides is the same `isCanonicalUcan`.
    if (!isCanonicalUcan(ucan)) return false
    if (!issuerOf(ucan).startsWith('did:key:')) return false
    return await verifyIssuerSignature(ucan, principal)
  } catch {
    return false
  }
}

/**
 * Checks of the invocation itself, before anything it asks for (docs/wire.md, check 1): its shape
 * (exactly one capability of the expected ability on a space), its block, audience, time bounds
 * and its issuer's signature; and the DIDs that are never a space.
 *
 * Time: these checks use the injected `now` (Unix seconds) and accept `nbf ≤ now ≤ exp`. The
 * delegation chain's bounds are ucanto's (`now < exp`, `nbf < now`), on the same injected clock
 * (chain.ts), except for chains left to ucanto's validator (`did:mailto`), which reads the system
 * clock (grants.ts).
 */
import type { API } from '@ucanto/core'
import { SpaceDID } from './capabilities.js'
import { checkContentAddressed } from './delegation.js'
import { audienceOf, issuerOf, verifyIssuerSignature } from './signed-payload.js'
import { isPreverified } from './verified-ucans.js'
import { Expired, InvalidAudience, InvalidCapability, InvalidExpiry, InvalidSignature, NotValidBefore, truncate } from './errors.js'

/** Longest an invocation may be valid for, by default: its `exp` at most this many seconds ahead. */
export const DEFAULT_MAX_INVOCATION_LIFETIME = 3600

/**
 * Exactly one capability, of ability `can`, whose `with` is a did:key space; otherwise
 * `InvalidCapability` (naming what is wrong, never echoing `nb`).
 */
export function readCapability(
  invocation: API.Invocation,
  can: string,
): API.Result<{ capability: API.Capability; space: SpaceDID }, InvalidCapability> {
  if (invocation.capabilities.length !== 1) {
    return { error: new InvalidCapability('invocation must carry exactly one capability') }
  }
  const capability = invocation.capabilities[0] as API.Capability
  if (capability.can !== can) {
    return { error: new InvalidCapability(`expected ${can}, got ${truncate(capability.can)}`) }
  }
  const space = SpaceDID.read(capability.with)
  if (space.error) return { error: new InvalidCapability(`with must be a did:key space, got ${truncate(capability.with)}`) }
  return { ok: { capability, space: space.ok } }
}

/**
 * Whether `space` is a DID the service itself controls: `service`'s own DID (the grant probe it
 * signs would be self-issued there, so any delegation would "grant" it) or one of `reserved`.
 * Such a `with` is refused as `ReservedSpace` before any signature or chain work.
 */
export function isReservedSpace(space: string, service: API.Principal, reserved: ReadonlySet<string> | undefined): boolean {
  return space === service.did() || (reserved?.has(space) ?? false)
}

/** Options of {@link checkInvocation}. */
export interface InvocationCheckOptions {
  /** The DID the invocation must be addressed to: the service. */
  audience: API.DID
  /** Verifies the issuer's signature; default ucanto's `Verifier`. */
  principal: API.PrincipalParser
  /** Current time, Unix seconds. */
  now: number
  /**
   * If set, the invocation must carry an `exp` at most this many seconds after `now`
   * (`InvalidExpiry` otherwise). Unset: no `exp` is fine.
   */
  maxLifetime?: number
  /**
   * The outcome of {@link verifyInvocationSignature} for this invocation under `principal`, when
   * the caller has it already (the service verifies first, to charge a verified issuer): the
   * signature is then not verified again. Default: verified here.
   */
  signatureVerified?: boolean
}

/** Failures {@link checkInvocation} returns. */
export type InvocationFailure = InvalidSignature | InvalidAudience | Expired | NotValidBefore | InvalidExpiry

/**
 * Check (1): the invocation's block is the canonical encoding under its CID (and so is each proof
 * it embeds, at most delegation.ts's `MAX_CHAIN_UCANS` UCANs in all), its audience is the
 * service, `nbf ≤ now ≤ exp`, `exp` is present and bounded when `maxLifetime` is set, and the
 * issuer's signature verifies. Cheap checks first; the signature last.
 */
export async function checkInvocation(
  invocation: API.Delegation,
  options: InvocationCheckOptions,
): Promise<API.Result<API.Unit, InvocationFailure>> {
  if (!(await checkContentAddressed(invocation, { proofs: false }))) {
    return { error: new InvalidSignature('invocation block does not match its CID') }
  }
  // Its own proofs too: they are what authorizes a `ucan/revoke` (ucanto's `access`), and ucanto
  // reports a proof under the CID it is stored at, so a revoked proof's bytes under another CID
  // would pass the revocation lookup. (A `tlog/append` is authorized by `nb.delegation`, checked
  // apart; honest clients attach no proofs to it, so it costs nothing there.)
  if (invocation.proofs.length > 0 && !(await checkContentAddressed(invocation))) {
    return { error: new InvalidSignature('a proof of the invocation does not match its CID') }
  }
  if (audienceOf(invocation) !== options.audience) {
    return { error: new InvalidAudience(`invocation audience is ${truncate(audienceOf(invocation))}, not the service`) }
  }
  const { now, maxLifetime } = options
  const exp = invocation.expiration
  const nbf = invocation.notBefore
  if (maxLifetime !== undefined && !Number.isFinite(exp)) {
    return { error: new InvalidExpiry('invocation has no expiry') }
  }
  if (now > exp) return { error: new Expired(`invocation expired at ${exp}`) }
  if (nbf !== undefined && now < nbf) return { error: new NotValidBefore(`invocation not valid before ${nbf}`) }
  if (maxLifetime !== undefined && exp - now > maxLifetime) {
    return { error: new InvalidExpiry(`invocation expiry is more than ${maxLifetime} s ahead`) }
  }
  try {
    options.principal.parse(issuerOf(invocation))
  } catch {
    return { error: new InvalidSignature(`cannot verify signatures of ${truncate(issuerOf(invocation))}`) }
  }
  if (!(options.signatureVerified ?? (await verifyInvocationSignature(invocation, options.principal)))) {
    return { error: new InvalidSignature('invocation signature does not verify') }
  }
  return { ok: {} }
}

/**
 * Whether the invocation's own signature verifies (its UCAN payload signed by its issuer's key;
 * the payload written by signed-payload.ts, or by ucanto for values that file leaves to it), or
 * was found so for these bytes by the pre-verification thread (verified-ucans.ts `markPreverified`).
 * Never throws: an issuer `principal` cannot parse is `false`.
 */
export async function verifyInvocationSignature(invocation: API.Delegation, principal: API.PrincipalParser): Promise<boolean> {
  // Verified for these very bytes by the pre-verification thread (preverify.ts).
  return isPreverified(invocation) || (await verifyIssuerSignature(invocation, principal))
}

/**
 * Authorization of a write to a space's log: `tlog/append` and `tlog/create` (docs/wire.md, checks
 * 1–5, in that order). The invocation is authorized by the delegation it carries in
 * `nb.delegation`, not by its own proofs: an agent proves it may write to the space by handing the
 * service an Agent→Service delegation that Storacha will accept for the three Storacha
 * capabilities (storacha-capabilities.ts). This file composes the checks; each lives in its own
 * file: the invocation (invocation.ts), the grants (grants.ts), revocation (revocation.ts). Every
 * check has its own named failure (errors.ts); nothing is written unless all hold.
 */
import type { API } from '@ucanto/core'
import { Verifier } from '@ucanto/principal'
import { decodeBase64 } from '../tlog/encoding.js'
import { MAX_ENTRY_SIZE } from '../tlog/bundle.js'
import type { TrustedAttester } from './attester.js'
import { type SpaceDID, TlogAppendCaveats, TlogCreateCaveats } from './capabilities.js'
import { systemNow } from './clock.js'
import { checkContentAddressed, parseDelegation } from './delegation.js'
import {
  type AppendFailure,
  type CreateFailure,
  DelegationIssuerMismatch,
  EntryTooLarge,
  InternalError,
  InvalidAudience,
  InvalidCapability,
  InvalidData,
  InvalidDelegation,
  ReservedSpace,
  Revoked,
  truncate,
} from './errors.js'
import { type GrantCache, findGrants } from './grants.js'
import { addPathToRevocationQuery, checkChain, needsValidator } from './chain.js'
import { audienceOf, issuerOf } from './signed-payload.js'
import { DEFAULT_MAX_INVOCATION_LIFETIME, checkInvocation, isReservedSpace, readCapability } from './invocation.js'
import { type RevocationChecker, type RevocationQuery, noRevocations, toRevocationQuery } from './revocation.js'

/** Options of {@link authorizeAppend} and {@link authorizeCreate}. */
export interface AuthorizeAppendOptions {
  /**
   * The service identity: invocations and the delegation must be addressed to its DID (and, for
   * chains left to ucanto, it signs the in-process probe that asks ucanto what Storacha will ask).
   */
  service: API.Signer
  /** Verifies every signature; default ucanto's `Verifier`. Pass principal.ts's fast parser. */
  principal?: API.PrincipalParser
  /** Clock, Unix seconds; default the system clock. */
  now?: () => number
  /** Seconds; default {@link DEFAULT_MAX_INVOCATION_LIFETIME}. */
  maxInvocationLifetime?: number
  /** Revocation store; default {@link noRevocations}. A rejection fails closed (`InternalError`). */
  revocations?: RevocationChecker
  /**
   * Remembers UCANs already found canonical and validly signed (`grants.ucans`: a Space→Agent
   * proof is verified once, not on every append), and chains through `did:mailto` already found
   * to grant the capabilities. Default: none (every call verifies every signature).
   */
  grants?: GrantCache
  /**
   * The one service whose `ucan/attest` attestations of `did:mailto` account delegations are
   * trusted (Storacha's email login). Default: none, so chains through a `did:mailto` account fail
   * (`Unauthorized`). Pinned in configuration, never fetched.
   */
  attester?: TrustedAttester
  /**
   * DIDs the service controls besides its own (e.g. the bundled witness's did:key): refused as a
   * space (`ReservedSpace`) like `service.did()`, which always is. Default: none.
   */
  reservedSpaces?: ReadonlySet<string>
  /** The invocation's signature outcome when the caller verified it already (see {@link checkInvocation}). */
  signatureVerified?: boolean
  /**
   * A thread without ucanto's validator setup (request-check.ts): a chain that needs it (chain.ts
   * `needsValidator`, i.e. through `did:mailto`) is not judged; the check fails with
   * {@link NEEDS_VALIDATOR} (never sent to a client: the caller runs the request the usual way).
   */
  withoutValidator?: boolean
}

/** What a check with `withoutValidator` fails with for a chain only ucanto's validator can judge (compared by identity). */
export const NEEDS_VALIDATOR: InternalError = new InternalError('this chain is judged by ucanto\'s validator')

/** What an authorized `tlog/append` asks for. */
export interface AuthorizedAppend {
  /** The space DID: the log id. */
  space: SpaceDID
  /** The entry, 1..65535 bytes. */
  entry: Uint8Array
  /** The Agent→Service delegation, chain verified; the service writes to the space with it. */
  delegation: API.Delegation
}

/**
 * Decides whether `invocation` may append. Checks, each with its own failure:
 * - exactly one capability, `tlog/append`, `with` a did:key, `nb` of strings → `InvalidCapability`;
 * - `with` is not a DID the service controls ({@link isReservedSpace}) → `ReservedSpace`;
 * - (1) {@link checkInvocation} with `maxLifetime` = `maxInvocationLifetime`;
 * - `nb.data` canonical base64 → `InvalidData`, non-empty → `InvalidData`, ≤ 65535 bytes → `EntryTooLarge`;
 * - `nb.delegation` parses and is content addressed → `InvalidDelegation`;
 * - (2) delegation issuer = invocation issuer → `DelegationIssuerMismatch`;
 * - (3) delegation audience = service → `InvalidAudience`;
 * - (4) the delegation's chain, rooted at the space `with` names, grants each Storacha capability
 *   (wildcards `space/*`, `*` and `ucan:*` count) with valid signatures and time bounds (on the
 *   injected clock) (chain.ts `checkChain`; chains through a `did:mailto` account: {@link findGrants})
 *   → `Unauthorized` naming the first missing capability, or the identifiable cause:
 *   `InvalidSignature`, `Expired`, `NotValidBefore`;
 * - (5) nothing on the invocation or the authorizing chain is revoked (scoped as `ucan/revoke`)
 *   → `Revoked`; the store failing → `InternalError`.
 * Never throws for bad input; may reject only on a bug.
 */
export async function authorizeAppend(
  invocation: API.Invocation,
  options: AuthorizeAppendOptions,
): Promise<API.Result<AuthorizedAppend, AppendFailure>> {
  const checked = await checkAppend(invocation, options)
  if (checked.error) return checked
  const revocation = await checkRevocation(checked.ok.revocation, options.revocations)
  if (revocation.error) return revocation
  return { ok: { space: checked.ok.space, entry: checked.ok.entry, delegation: checked.ok.delegation } }
}

/** What {@link checkAppend} found: an append authorized but for check (5), and that check's query. */
export interface CheckedAppend extends AuthorizedAppend {
  /** The UCANs (by CID) whose revocation check (5) must look up, each with the DIDs that may revoke it. */
  revocation: RevocationQuery
}

/**
 * Every check of {@link authorizeAppend} except (5), revocation, which needs the service's store:
 * the same failures, in the same order; `options.revocations` is not used. For a thread that holds
 * no shared state (request-check.ts): the caller runs {@link checkRevocation} over `revocation`.
 * Never throws for bad input.
 */
export async function checkAppend(invocation: API.Invocation, options: AuthorizeAppendOptions): Promise<API.Result<CheckedAppend, AppendFailure>> {
  const shape = readCapability(invocation, 'tlog/append')
  if (shape.error) return shape
  const nb = TlogAppendCaveats.read((shape.ok.capability as { nb?: unknown }).nb ?? {})
  if (nb.error) return { error: new InvalidCapability('nb must be { data: string, delegation: string }') }
  const data = nb.ok.data
  const checked = await checkWrite(invocation, shape.ok.space, nb.ok.delegation, options, () => decodeEntry(data))
  if (checked.error) return checked
  return { ok: { space: shape.ok.space, entry: checked.ok.entry, delegation: checked.ok.delegation, revocation: checked.ok.revocation } }
}

/** What an authorized `tlog/create` asks for. */
export interface AuthorizedCreate {
  /** The space DID: the log id. */
  space: SpaceDID
  /** The Agent→Service delegation, chain verified. */
  delegation: API.Delegation
}

/**
 * Decides whether `invocation` may create the space's log (`tlog/create`): every check of
 * {@link authorizeAppend} except those of the entry, with the same failures.
 * Never throws for bad input.
 */
export async function authorizeCreate(
  invocation: API.Invocation,
  options: AuthorizeAppendOptions,
): Promise<API.Result<AuthorizedCreate, CreateFailure>> {
  const shape = readCapability(invocation, 'tlog/create')
  if (shape.error) return shape
  const nb = TlogCreateCaveats.read((shape.ok.capability as { nb?: unknown }).nb ?? {})
  if (nb.error) return { error: new InvalidCapability('nb must be { delegation: string }') }
  const authorized = await authorizeWrite(invocation, shape.ok.space, nb.ok.delegation, options, () => ({ ok: undefined }))
  if (authorized.error) return authorized as { error: CreateFailure }
  return { ok: { space: shape.ok.space, delegation: authorized.ok.delegation } }
}

/** Checks (1)–(5) for a write to `space`, running `payload` (the entry check) after (1). */
async function authorizeWrite<T>(
  invocation: API.Invocation,
  space: SpaceDID,
  delegationString: string,
  options: AuthorizeAppendOptions,
  payload: () => API.Result<T, InvalidData | EntryTooLarge>,
): Promise<API.Result<{ entry: T; delegation: API.Delegation }, AppendFailure>> {
  const checked = await checkWrite(invocation, space, delegationString, options, payload)
  if (checked.error) return checked
  const revocation = await checkRevocation(checked.ok.revocation, options.revocations)
  if (revocation.error) return revocation
  return { ok: { entry: checked.ok.entry, delegation: checked.ok.delegation } }
}

/** Checks (1)–(4) for a write to `space` (see {@link authorizeWrite}); on success, the revocation query of check (5). */
async function checkWrite<T>(
  invocation: API.Invocation,
  space: SpaceDID,
  delegationString: string,
  options: AuthorizeAppendOptions,
  payload: () => API.Result<T, InvalidData | EntryTooLarge>,
): Promise<API.Result<{ entry: T; delegation: API.Delegation; revocation: RevocationQuery }, AppendFailure>> {
  const service = options.service
  const principal = options.principal ?? Verifier
  const now = (options.now ?? systemNow)()
  const maxLifetime = options.maxInvocationLifetime ?? DEFAULT_MAX_INVOCATION_LIFETIME

  // The service's own keys are not spaces: refused before any signature or chain work.
  if (isReservedSpace(space, service, options.reservedSpaces)) {
    return { error: new ReservedSpace('this DID belongs to the service itself and is not a space') }
  }

  // (1) The invocation.
  const checked = await checkInvocation(invocation, {
    audience: service.did(),
    principal,
    now,
    maxLifetime,
    ...(options.signatureVerified !== undefined && { signatureVerified: options.signatureVerified }),
  })
  if (checked.error) return checked

  // The entry.
  const entry = payload()
  if (entry.error) return entry

  // The delegation.
  const parsed = await parseDelegation(delegationString)
  if (parsed.error) return parsed
  const delegation = parsed.ok
  const ucans = options.grants?.ucans
  if (!(await checkContentAddressed(delegation, { ucans }))) {
    return { error: new InvalidDelegation('a UCAN in the delegation does not match its CID') }
  }
  // (2)
  if (issuerOf(delegation) !== issuerOf(invocation)) {
    return { error: new DelegationIssuerMismatch('delegation was not issued by the invoker') }
  }
  // (3)
  if (audienceOf(delegation) !== service.did()) {
    return { error: new InvalidAudience(`delegation audience is ${truncate(audienceOf(delegation))}, not the service`) }
  }

  // (4): directly over the decoded chain (chain.ts), or through ucanto's validator for chains it
  // alone can judge (did:mailto sessions); the same outcomes.
  const query: RevocationQuery = new Map()
  if (needsValidator(delegation)) {
    if (options.withoutValidator === true) return { error: NEEDS_VALIDATOR }
    const paths = await findGrants(space, delegation, { service, principal, attester: options.attester, grants: options.grants })
    if (paths.error) return paths
    for (const auth of paths.ok) for (const proof of auth.proofs) toRevocationQuery(proof, query)
  } else {
    const paths = await checkChain(space, delegation, { service, principal, now, ucans })
    if (paths.error) return paths
    for (const path of paths.ok) addPathToRevocationQuery(path, query)
  }

  // (5) is the caller's (authorizeWrite, or the main thread for a request checked by a worker).
  const upstream = query.get(delegation.cid.toString()) ?? new Set<API.DID>()
  query.set(invocation.cid.toString(), new Set([issuerOf(invocation), audienceOf(invocation), ...upstream]))
  return { ok: { entry: entry.ok, delegation, revocation: query } }
}

/**
 * Check (5): nothing named in `query` (the invocation and its authorizing chain, scoped as
 * `ucan/revoke`) is revoked in `revocations` → `Revoked`; the store failing → `InternalError`.
 */
export async function checkRevocation(query: RevocationQuery, revocations: RevocationChecker | undefined): Promise<API.Result<API.Unit, Revoked | InternalError>> {
  let revoked: string | undefined
  try {
    revoked = await (revocations ?? noRevocations).findRevoked(query)
  } catch {
    return { error: new InternalError('revocation store unavailable') }
  }
  if (revoked !== undefined) return { error: new Revoked(`UCAN ${truncate(revoked)} has been revoked`) }
  return { ok: {} }
}

/** Decodes `nb.data`: canonical base64 of 1..{@link MAX_ENTRY_SIZE} bytes. */
function decodeEntry(data: string): API.Result<Uint8Array, InvalidData | EntryTooLarge> {
  // 4 characters per 3 bytes; a longer string cannot be a small-enough entry, so don't decode it.
  if (data.length > 4 * Math.ceil(MAX_ENTRY_SIZE / 3)) {
    return { error: new EntryTooLarge(`entry larger than ${MAX_ENTRY_SIZE} bytes`) }
  }
  let entry: Uint8Array
  try {
    entry = decodeBase64(data)
  } catch {
    return { error: new InvalidData('data is not canonical padded standard base64') }
  }
  if (entry.length === 0) return { error: new InvalidData('entry is empty') }
  if (entry.length > MAX_ENTRY_SIZE) return { error: new EntryTooLarge(`entry larger than ${MAX_ENTRY_SIZE} bytes`) }
  return { ok: entry }
}

/**
 * Authorization of `tlog/append` (DESIGN.md "UCAN RPC", checks 1–5) and of the invocation itself.
 *
 * The invocation is authorized by the delegation it carries in `nb.delegation`, not by its own
 * proofs: an agent proves it may write to the space by handing the service an Agent→Service
 * delegation that Storacha will accept for `space/blob/add`, `space/index/add` and `upload/add`.
 * Every check has its own named failure (errors.ts); nothing is appended unless all hold.
 *
 * Time: our own checks of the invocation use the injected `now` (Unix seconds) and accept
 * `nbf ≤ now ≤ exp`. ucanto checks the delegation chain's time bounds against the system clock
 * (`exp ≤ now` is expired, `now ≤ nbf` is too early); it has no clock option.
 */
import { UCAN, delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { claim } from '@ucanto/validator'
import { Verifier } from '@ucanto/principal'
import * as SpaceBlob from '@storacha/capabilities/space/blob'
import * as SpaceIndex from '@storacha/capabilities/space/index'
import * as Upload from '@storacha/capabilities/upload'
import * as Digest from 'multiformats/hashes/digest'
import * as Link from 'multiformats/link'
import { decodeBase64 } from '../tlog/encoding.js'
import { MAX_ENTRY_SIZE, SpaceDID, TlogAppendCaveats, TlogCreateCaveats } from './capabilities.js'
import { checkContentAddressed, embeddedUCANs, parseDelegation } from './delegation.js'
import {
  type AppendFailure,
  type CreateFailure,
  DelegationIssuerMismatch,
  EntryTooLarge,
  Expired,
  InternalError,
  InvalidAudience,
  InvalidCapability,
  InvalidData,
  InvalidDelegation,
  InvalidExpiry,
  InvalidSignature,
  NotValidBefore,
  ReservedSpace,
  Revoked,
  Unauthorized,
  truncate,
} from './errors.js'
import { type RevocationChecker, type RevocationQuery, noRevocations, toRevocationQuery } from './revocation.js'

/** Longest an invocation may be valid for, by default: its `exp` at most this many seconds ahead. */
export const DEFAULT_MAX_INVOCATION_LIFETIME = 3600

/** The Storacha capabilities the Agent→Service delegation must grant on the space, in check order. */
export const REQUIRED_CAPABILITIES = ['space/blob/add', 'space/index/add', 'upload/add'] as const

/** Unix seconds from the system clock. */
export const systemNow = (): number => Math.floor(Date.now() / 1000)

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
}

/** Failures {@link checkInvocation} returns. */
export type InvocationFailure = InvalidSignature | InvalidAudience | Expired | NotValidBefore | InvalidExpiry

/**
 * Check (1): the invocation's block is the canonical encoding under its CID, its audience is the
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
  if (invocation.audience.did() !== options.audience) {
    return { error: new InvalidAudience(`invocation audience is ${truncate(invocation.audience.did())}, not the service`) }
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
    options.principal.parse(invocation.issuer.did())
  } catch {
    return { error: new InvalidSignature(`cannot verify signatures of ${truncate(invocation.issuer.did())}`) }
  }
  if (!(await verifyInvocationSignature(invocation, options.principal))) {
    return { error: new InvalidSignature('invocation signature does not verify') }
  }
  return { ok: {} }
}

/**
 * Outcomes of signature checks per decoded UCAN object. The same decoded object is checked twice
 * per request (once to charge the rate limit to a verified issuer, once to authorize); an object's
 * bytes never change, so its outcome under a given principal parser is fixed. Keyed weakly by the
 * object itself — never by CID, which a client could put on different bytes.
 */
const signatureOutcomes = new WeakMap<object, { principal: API.PrincipalParser; ok: boolean }>()

/**
 * Whether the invocation's own signature verifies (UCAN payload signed by its issuer's key),
 * remembered per decoded invocation object. Never throws: an unparseable issuer is `false`.
 */
export async function verifyInvocationSignature(invocation: API.Delegation, principal: API.PrincipalParser): Promise<boolean> {
  const known = signatureOutcomes.get(invocation.data)
  if (known && known.principal === principal) return known.ok
  let ok: boolean
  try {
    ok = await UCAN.verifySignature(invocation.data, principal.parse(invocation.issuer.did()))
  } catch {
    ok = false
  }
  signatureOutcomes.set(invocation.data, { principal, ok })
  return ok
}

/** Options of {@link authorizeAppend}. */
export interface AuthorizeAppendOptions {
  /**
   * The service identity: invocations and the delegation must be addressed to its DID, and it
   * signs the in-process probe that asks ucanto what Storacha will ask.
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
   * Remembers chains already found to grant the capabilities, so the same Agent→Service
   * delegation is walked once, not on every append. Default: none (every call walks the chain).
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
}

/**
 * Whether `space` is a DID the service itself controls: `service`'s own DID (the grant probe it
 * signs would be self-issued there, so any delegation would "grant" it) or one of `reserved`.
 */
export function isReservedSpace(space: string, service: API.Principal, reserved: ReadonlySet<string> | undefined): boolean {
  return space === service.did() || (reserved?.has(space) ?? false)
}

/**
 * A trusted `ucan/attest` issuer (notes §2.10): its DID (production Storacha:
 * `did:web:up.storacha.network`) and the `did:key` its attestations are signed with.
 */
export interface TrustedAttester {
  did: API.DID
  key: API.DIDKey
}

/**
 * The ucanto validator options that make `claim`/`access` accept `attester`'s attestations: a
 * DID resolver mapping `attester.did` to `attester.key`, and the service's own `ucan/attest`
 * delegation to the attester (ucanto's `verifySession` accepts attestations whose `with` is the
 * authority or the audience of such a proof). Empty when `attester` is undefined.
 */
export async function attesterTrust(
  service: API.Signer,
  attester: TrustedAttester | undefined,
): Promise<{ proofs?: API.Delegation[]; resolveDIDKey?: (did: API.DID) => API.Result<API.DIDKey[], API.DIDKeyResolutionError> }> {
  if (attester === undefined) return {}
  const proof = await delegate({
    issuer: service,
    audience: { did: () => attester.did },
    capabilities: [{ can: 'ucan/attest', with: service.did() }],
    expiration: Infinity,
  })
  return {
    proofs: [proof],
    resolveDIDKey: (did) =>
      did === attester.did
        ? { ok: [attester.key] }
        : { error: new DIDKeyUnresolvable(did) as unknown as API.DIDKeyResolutionError },
  }
}

/** ucanto's `DIDKeyResolutionError` shape, for DIDs other than the trusted attester's. */
class DIDKeyUnresolvable extends Error {
  override name = 'DIDKeyResolutionError'
  constructor(readonly did: API.DID) {
    super(`Unable to resolve '${truncate(did)}' key`)
  }
  describe(): string {
    return this.message
  }
  toJSON(): { name: string; message: string } {
    return { name: this.name, message: this.message }
  }
}

/** What an authorized `tlog/append` asks for. */
export interface AuthorizedAppend {
  /** The space DID: the log id. */
  space: API.DIDKey
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
 * - (4) the delegation's chain, rooted at the space `with` names, grants each of
 *   {@link REQUIRED_CAPABILITIES} (wildcards `space/*`, `*` and `ucan:*` count) with valid
 *   signatures and time bounds → `Unauthorized` naming the first missing capability, or the
 *   identifiable cause: `InvalidSignature`, `Expired`, `NotValidBefore`;
 * - (5) nothing on the invocation or the authorizing chain is revoked (scoped as `ucan/revoke`)
 *   → `Revoked`; the store failing → `InternalError`.
 * Never throws for bad input; may reject only on a bug.
 */
export async function authorizeAppend(
  invocation: API.Invocation,
  options: AuthorizeAppendOptions,
): Promise<API.Result<AuthorizedAppend, AppendFailure>> {
  const shape = readCapability(invocation, 'tlog/append')
  if (shape.error) return shape
  const nb = TlogAppendCaveats.read((shape.ok.capability as { nb?: unknown }).nb ?? {})
  if (nb.error) return { error: new InvalidCapability('nb must be { data: string, delegation: string }') }
  const data = nb.ok.data
  const authorized = await authorizeWrite(invocation, shape.ok.space, nb.ok.delegation, options, () => decodeEntry(data))
  if (authorized.error) return authorized
  return { ok: { space: shape.ok.space, entry: authorized.ok.entry, delegation: authorized.ok.delegation } }
}

/** What an authorized `tlog/create` asks for. */
export interface AuthorizedCreate {
  /** The space DID: the log id. */
  space: API.DIDKey
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

/** Exactly one capability of ability `can` on a did:key space, or `InvalidCapability`. */
function readCapability(
  invocation: API.Invocation,
  can: string,
): API.Result<{ capability: API.Capability; space: API.DIDKey }, InvalidCapability> {
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

/** Checks (1)–(5) for a write to `space`, running `payload` (the entry check) after (1). */
async function authorizeWrite<T>(
  invocation: API.Invocation,
  space: API.DIDKey,
  delegationString: string,
  options: AuthorizeAppendOptions,
  payload: () => API.Result<T, InvalidData | EntryTooLarge>,
): Promise<API.Result<{ entry: T; delegation: API.Delegation }, AppendFailure>> {
  const service = options.service
  const principal = options.principal ?? Verifier
  const now = (options.now ?? systemNow)()
  const maxLifetime = options.maxInvocationLifetime ?? DEFAULT_MAX_INVOCATION_LIFETIME

  // The service's own keys are not spaces: refused before any signature or chain work.
  if (isReservedSpace(space, service, options.reservedSpaces)) {
    return { error: new ReservedSpace('this DID belongs to the service itself and is not a space') }
  }

  // (1) The invocation.
  const checked = await checkInvocation(invocation, { audience: service.did(), principal, now, maxLifetime })
  if (checked.error) return checked

  // The entry.
  const entry = payload()
  if (entry.error) return entry

  // The delegation.
  const parsed = await parseDelegation(delegationString)
  if (parsed.error) return parsed
  const delegation = parsed.ok
  if (!(await checkContentAddressed(delegation))) {
    return { error: new InvalidDelegation('a UCAN in the delegation does not match its CID') }
  }
  // (2)
  if (delegation.issuer.did() !== invocation.issuer.did()) {
    return { error: new DelegationIssuerMismatch('delegation was not issued by the invoker') }
  }
  // (3)
  if (delegation.audience.did() !== service.did()) {
    return { error: new InvalidAudience(`delegation audience is ${truncate(delegation.audience.did())}, not the service`) }
  }

  // (4) A grant depends on the service, the space, the trusted attester (its DID and key) and the
  // exact UCANs sent (every embedded one: the top CID names its proofs but not whether they came).
  const attesterKey = options.attester === undefined ? '' : `${options.attester.did}=${options.attester.key}`
  const grantKey = `${service.did()} ${space} ${attesterKey} ${embeddedUCANs(delegation)
    .map((u) => u.cid.toString())
    .sort()
    .join(' ')}`
  let paths = options.grants?.get(grantKey)
  if (paths === undefined) {
    const granted = await checkGrants(space, delegation, service, principal, options.attester)
    if (granted.error) return granted
    paths = granted.ok
    options.grants?.set(grantKey, paths)
  }

  // (5)
  const query: RevocationQuery = new Map()
  for (const auth of paths) for (const proof of auth.proofs) toRevocationQuery(proof, query)
  const upstream = query.get(delegation.cid.toString()) ?? new Set<API.DID>()
  query.set(invocation.cid.toString(), new Set([invocation.issuer.did(), invocation.audience.did(), ...upstream]))
  let revoked: string | undefined
  try {
    revoked = await (options.revocations ?? noRevocations).findRevoked(query)
  } catch {
    return { error: new InternalError('revocation store unavailable') }
  }
  if (revoked !== undefined) return { error: new Revoked(`UCAN ${truncate(revoked)} has been revoked`) }

  return { ok: { entry: entry.ok, delegation } }
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

/** How many granting chains {@link createGrantCache} remembers by default. */
export const DEFAULT_MAX_GRANT_ENTRIES = 10_000

/**
 * Chains (keyed by service, space, trusted attester and the CIDs of every UCAN the delegation embeds) that were found
 * to grant {@link REQUIRED_CAPABILITIES}, with their ucanto authorization paths. A chain's grant is
 * a function of those content-addressed UCANs and of time, so an entry holds until the earliest
 * `exp` on its paths (system clock, as ucanto checks it). Revocation is not cached: it is checked
 * on every call from the remembered paths.
 */
export interface GrantCache {
  /** The paths remembered for `key`, or undefined if none or expired. */
  get(key: string): API.Authorization[] | undefined
  /** Remembers `paths` for `key` until the earliest expiration among them. */
  set(key: string, paths: API.Authorization[]): void
}

/**
 * An in-memory {@link GrantCache} of at most `maxEntries` (least recently used evicted).
 * @param now system clock in Unix seconds; injectable for tests only (ucanto itself uses the system clock).
 */
export function createGrantCache(options: { maxEntries?: number; now?: () => number } = {}): GrantCache {
  const max = options.maxEntries ?? DEFAULT_MAX_GRANT_ENTRIES
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxEntries must be a positive integer')
  const now = options.now ?? systemNow
  const entries = new Map<string, { paths: API.Authorization[]; expiresAt: number }>()
  return {
    get(key) {
      const entry = entries.get(key)
      if (entry === undefined) return undefined
      entries.delete(key)
      // ucanto: a UCAN is expired when exp <= now.
      if (now() >= entry.expiresAt) return undefined
      entries.set(key, entry)
      return entry.paths
    },
    set(key, paths) {
      let expiresAt = Infinity
      const visit = (auth: API.Authorization): void => {
        expiresAt = Math.min(expiresAt, auth.delegation.expiration)
        for (const proof of auth.proofs) visit(proof)
      }
      for (const path of paths) for (const proof of path.proofs) visit(proof)
      entries.delete(key)
      entries.set(key, { paths, expiresAt })
      if (entries.size > max) entries.delete(entries.keys().next().value as string)
    },
  }
}

/** A throwaway digest/links for the probe's `nb` (any well-formed values do). */
const PROBE_DIGEST = Digest.create(0x12, new Uint8Array(32))
const PROBE_NB = {
  'space/blob/add': { blob: { digest: PROBE_DIGEST.bytes, size: 1 } },
  'space/index/add': { index: Link.create(0x0202, PROBE_DIGEST) },
  'upload/add': { root: Link.create(0x55, PROBE_DIGEST) },
} as const
const PARSERS = {
  'space/blob/add': SpaceBlob.add,
  'space/index/add': SpaceIndex.add,
  'upload/add': Upload.add,
} as const

/**
 * Check (4), the way Storacha will check it: the service signs a probe delegation (never sent)
 * claiming the three capabilities on `space` with `delegation` as its only proof, and ucanto's
 * `claim` looks for a valid path from the probe through `delegation` to a self-issued capability
 * of the space. Storacha's own capability parsers decide what derives from what, so a delegation
 * constrained to particular blobs or roots does not count.
 * @returns the authorization path of each capability (probe at the top).
 */
async function checkGrants(
  space: API.DIDKey,
  delegation: API.Delegation,
  service: API.Signer,
  principal: API.PrincipalParser,
  attester: TrustedAttester | undefined,
): Promise<API.Result<API.Authorization[], Unauthorized | InvalidSignature | Expired | NotValidBefore | Revoked>> {
  const probe = await delegate({
    issuer: service,
    audience: service,
    capabilities: REQUIRED_CAPABILITIES.map((can) => ({ can, with: space, nb: PROBE_NB[can] })) as unknown as API.Capabilities,
    proofs: [delegation],
    expiration: Infinity,
  })
  const config = {
    authority: service,
    principal: memoizeVerification(principal),
    validateAuthorization: () => ({ ok: {} }),
    ...(await attesterTrust(service, attester)),
  }
  const paths: API.Authorization[] = []
  for (const can of REQUIRED_CAPABILITIES) {
    const result = await claim(PARSERS[can] as API.CapabilityParser<API.Match<API.ParsedCapability>>, [probe], config)
    if (result.error) return { error: classify(result.error, can) }
    paths.push(result.ok as API.Authorization)
  }
  return { ok: paths }
}

/**
 * Maps ucanto's collapsed `Unauthorized` tree (from `claim`/`access`) to our most specific
 * identifiable name: `Revoked`, `InvalidSignature`, `Expired`, `NotValidBefore`, else
 * `Unauthorized` saying `can` is not granted. Never includes the invocation's `nb`.
 */
export function classify(error: API.Failure, can: string): Unauthorized | InvalidSignature | Expired | NotValidBefore | Revoked {
  const found = new Map<string, { delegation?: API.Delegation }>()
  const seen = new Set<unknown>()
  const walk = (node: unknown, depth: number): void => {
    if (node === null || typeof node !== 'object' || seen.has(node) || depth > 64 || seen.size > 10_000) return
    seen.add(node)
    const e = node as Record<string, unknown>
    if (typeof e.name === 'string' && !found.has(e.name)) found.set(e.name, e as { delegation?: API.Delegation })
    for (const key of ['cause', 'causes', 'failedProofs', 'invalidProofs', 'delegationErrors', 'info']) {
      const child = Object.getOwnPropertyDescriptor(e, key)?.value ?? (key === 'cause' ? safeGet(e, key) : undefined)
      if (Array.isArray(child)) for (const c of child) walk(c, depth + 1)
      else walk(child, depth + 1)
    }
  }
  walk(error, 0)
  const cid = (name: string): string => truncate(found.get(name)?.delegation?.cid?.toString() ?? '')
  if (found.has('Revoked')) return new Revoked(`UCAN ${cid('Revoked')} has been revoked`)
  if (found.has('InvalidSignature')) return new InvalidSignature(`UCAN ${cid('InvalidSignature')} has an invalid signature`)
  if (found.has('Expired')) return new Expired(`UCAN ${cid('Expired')} has expired`)
  if (found.has('NotValidBefore')) return new NotValidBefore(`UCAN ${cid('NotValidBefore')} is not valid yet`)
  return new Unauthorized(`delegation does not grant ${can} on the space`)
}

/** Reads a possibly-getter property without letting a throwing getter escape. */
function safeGet(o: Record<string, unknown>, key: string): unknown {
  try {
    return o[key]
  } catch {
    return undefined
  }
}

/**
 * Wraps `principal` so that, within one authorization, the same (DID, payload, signature) is
 * verified once: the three claims walk the same chain. The memo is keyed by the exact bytes, so it
 * cannot confuse two different payloads.
 */
function memoizeVerification(principal: API.PrincipalParser): API.PrincipalParser {
  const verifiers = new Map<string, API.Verifier>()
  return {
    parse(did) {
      const known = verifiers.get(did)
      if (known !== undefined) return known
      const inner = principal.parse(did)
      const memo = new Map<string, boolean>()
      const verifier: API.Verifier = {
        did: () => inner.did(),
        toDIDKey: () => inner.toDIDKey(),
        withDID: (id) => inner.withDID(id),
        async verify(payload, signature) {
          const key = `${Buffer.from(signature).toString('base64')}.${Buffer.from(payload).toString('base64')}`
          const hit = memo.get(key)
          if (hit !== undefined) return hit
          const valid = await inner.verify(payload, signature)
          memo.set(key, valid)
          return valid
        },
      }
      verifiers.set(did, verifier)
      return verifier
    },
  }
}

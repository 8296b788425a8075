/**
 * Check (4) of docs/wire.md (check 11 of its table) through ucanto's validator: does the
 * Agent→Service delegation grant the service the three Storacha capabilities on the space, the way
 * Storacha itself will decide it? Asked of ucanto with a probe the service signs and never sends;
 * the paths found are remembered per exact chain (the grant cache). authorize.ts uses this only
 * for chains with an issuer that is not a did:key (`did:mailto` accounts and their attestations);
 * every other chain is checked directly (chain.ts), with the same outcomes (test/ucan/chain.test.ts
 * compares the two).
 */
import { delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { claim } from '@ucanto/validator'
import * as Digest from 'multiformats/hashes/digest'
import * as Link from 'multiformats/link'
import { type TrustedAttester, attesterTrust } from './attester.js'
import { type AuthorizationFailure, authorizationFailure } from './authorization-failure.js'
import type { SpaceDID } from './capabilities.js'
import { systemNow } from './clock.js'
import { embeddedUCANs } from './delegation.js'
import { STORACHA_CAPABILITIES, type StorachaAbility } from '../storage/storacha-capabilities.js'
import { type VerifiedUcanCache, createVerifiedUcanCache } from './verified-ucans.js'

/** How many granting chains {@link createGrantCache} remembers by default. */
export const DEFAULT_MAX_GRANT_ENTRIES = 10_000

/**
 * Chains (keyed by service, space, trusted attester and the CIDs of every UCAN the delegation
 * embeds) that were found to grant the Storacha capabilities, with their ucanto authorization
 * paths. A chain's grant is a function of those content-addressed UCANs and of time, so an entry
 * holds until the earliest `exp` on its paths (system clock, as ucanto checks it). Revocation is
 * not cached: it is checked on every call from the remembered paths.
 */
export interface GrantCache {
  /** The paths remembered for `key`, or undefined if none or expired. */
  get(key: string): API.Authorization[] | undefined
  /** Remembers `paths` for `key` until the earliest expiration among them. */
  set(key: string, paths: API.Authorization[]): void
  /**
   * UCANs known canonical and validly signed, by CID (verified-ucans.ts): what the direct chain
   * check (chain.ts) and the content-address check reuse across appends, chiefly the Space→Agent
   * proof an agent sends with every append. The chain-keyed entries above serve only chains left
   * to ucanto's validator (`did:mailto`).
   */
  readonly ucans: VerifiedUcanCache
}

/** Options of {@link createGrantCache}. */
export interface GrantCacheOptions {
  /** Chains remembered (chains left to ucanto only); positive integer, default {@link DEFAULT_MAX_GRANT_ENTRIES}. */
  maxEntries?: number
  /** System clock in Unix seconds; injectable for tests only (ucanto itself uses the system clock). */
  now?: () => number
  /** Entries of {@link GrantCache.ucans}; default verified-ucans.ts `DEFAULT_MAX_VERIFIED_UCANS`. */
  maxUcans?: number
  /** Bytes of {@link GrantCache.ucans}; default verified-ucans.ts `DEFAULT_MAX_VERIFIED_UCAN_BYTES`. */
  maxUcanBytes?: number
}

/**
 * An in-memory {@link GrantCache} of at most `maxEntries` chains (least recently used evicted) and
 * a verified-UCAN cache bounded by `maxUcans` entries and `maxUcanBytes` bytes.
 * @throws RangeError for a bound that is not a positive integer.
 */
export function createGrantCache(options: GrantCacheOptions = {}): GrantCache {
  const max = options.maxEntries ?? DEFAULT_MAX_GRANT_ENTRIES
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxEntries must be a positive integer')
  const now = options.now ?? systemNow
  const entries = new Map<string, { paths: API.Authorization[]; expiresAt: number }>()
  const ucans = createVerifiedUcanCache({
    ...(options.maxUcans !== undefined && { maxEntries: options.maxUcans }),
    ...(options.maxUcanBytes !== undefined && { maxBytes: options.maxUcanBytes }),
  })
  return {
    ucans,
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

/** What {@link findGrants} needs besides the space and the delegation. */
export interface GrantOptions {
  /** The service: it signs the probe, and the delegation's chain must reach it. */
  service: API.Signer
  /** Verifies every signature of the chain. */
  principal: API.PrincipalParser
  /** The trusted `ucan/attest` issuer for `did:mailto` chains, if any. */
  attester?: TrustedAttester | undefined
  /** Where found paths are remembered; default none (every call walks the chain). */
  grants?: GrantCache | undefined
}

/**
 * The authorization path of each Storacha capability through `delegation` on `space`, from the
 * grant cache or found now ({@link checkGrants}), or the named failure of the first one missing.
 */
export async function findGrants(
  space: SpaceDID,
  delegation: API.Delegation,
  options: GrantOptions,
): Promise<API.Result<API.Authorization[], AuthorizationFailure>> {
  // A grant depends on the service, the space, the trusted attester (its DID and key) and the
  // exact UCANs sent (every embedded one: the top CID names its proofs but not whether they came).
  const { service, attester } = options
  const attesterKey = attester === undefined ? '' : `${attester.did}=${attester.key}`
  const key = `${service.did()} ${space} ${attesterKey} ${embeddedUCANs(delegation)
    .map((u) => u.cid.toString())
    .sort()
    .join(' ')}`
  const known = options.grants?.get(key)
  if (known !== undefined) return { ok: known }
  const granted = await checkGrants(space, delegation, service, options.principal, attester)
  if (granted.ok) options.grants?.set(key, granted.ok)
  return granted
}

/** A throwaway digest/links for the probe's `nb` (any well-formed values do). */
const PROBE_DIGEST = Digest.create(0x12, new Uint8Array(32))
const PROBE_NB: Record<StorachaAbility, Record<string, unknown>> = {
  'space/blob/add': { blob: { digest: PROBE_DIGEST.bytes, size: 1 } },
  'space/index/add': { index: Link.create(0x0202, PROBE_DIGEST) },
  'upload/add': { root: Link.create(0x55, PROBE_DIGEST) },
}

/**
 * Check (4), the way Storacha will check it: the service signs a probe delegation (never sent)
 * claiming the three capabilities on `space` with `delegation` as its only proof, and ucanto's
 * `claim` looks for a valid path from the probe through `delegation` to a self-issued capability
 * of the space. Storacha's own capability parsers decide what derives from what, so a delegation
 * constrained to particular blobs or roots does not count.
 * @returns the authorization path of each capability (probe at the top).
 */
async function checkGrants(
  space: SpaceDID,
  delegation: API.Delegation,
  service: API.Signer,
  principal: API.PrincipalParser,
  attester: TrustedAttester | undefined,
): Promise<API.Result<API.Authorization[], AuthorizationFailure>> {
  const probe = await delegate({
    issuer: service,
    audience: service,
    capabilities: STORACHA_CAPABILITIES.map(({ can }) => ({ can, with: space, nb: PROBE_NB[can] })) as unknown as API.Capabilities,
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
  for (const parser of STORACHA_CAPABILITIES) {
    const result = await claim(parser as unknown as API.CapabilityParser<API.Match<API.ParsedCapability>>, [probe], config)
    if (result.error) return { error: authorizationFailure(result.error, parser.can) }
    paths.push(result.ok as API.Authorization)
  }
  return { ok: paths }
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

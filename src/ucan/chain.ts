/**
 * Check 11 of docs/wire.md computed directly: does the Agent→Service delegation grant the service
 * `space/blob/add`, `space/index/add` and `upload/add` on the space, as Storacha will decide it?
 *
 * This is ucanto's `claim` (validator `claim`/`authorize`/`resolveSources`/`validate`) over a probe
 * the service would sign with the delegation as its only proof (grants.ts), walked over the
 * decoded delegations without the probe and without ucanto's per-claim re-validation:
 * - the same depth-first search, in the same order: at each UCAN, its embedded proofs whose
 *   audience is its issuer (principal alignment; proof links not embedded are unavailable), each
 *   validated (`exp ≤ now` → Expired, `now ≤ nbf` → NotValidBefore, then the issuer's signature →
 *   InvalidSignature), then every capability of the valid ones offered to the claimed capability
 *   by the Storacha parser itself (`@storacha/capabilities`, copied by lean-parsers.ts so that an
 *   absent optional caveat costs no error object: ability patterns `*`, `space/*`…,
 *   `with` equal or `ucan:*`, the caveat schema and the parser's `derives`), and the first match
 *   that is self-issued (`with` = its UCAN's issuer) ends the path;
 * - a failure is named as authorization-failure.ts names ucanto's: the most specific name met
 *   anywhere in the search (Revoked > InvalidSignature > Expired > NotValidBefore), else
 *   `Unauthorized` naming the first capability not granted.
 * Differences, none of which changes an outcome: time bounds are read from the injected clock
 * (ucanto reads the system clock); each UCAN's DIDs are formatted once; each signature is verified
 * at most once per call (its signed payload written directly, signed-payload.ts) and not at all for a UCAN the
 * verified-UCAN cache holds (verified-ucans.ts); a chain with an issuer that is not a did:key
 * (a `did:mailto` account, an attester) is left to ucanto (`needsValidator`: grants.ts).
 */
import { UCAN, isDelegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as Digest from 'multiformats/hashes/digest'
import * as Link from 'multiformats/link'
import { STORACHA_CAPABILITIES, type StorachaAbility } from '../storage/storacha-capabilities.js'
import type { AuthorizationFailure } from './authorization-failure.js'
import type { SpaceDID } from './capabilities.js'
import { embeddedUCANs } from './delegation.js'
import { Expired, InvalidSignature, NotValidBefore, Unauthorized, truncate } from './errors.js'
import { leanParser } from './lean-parsers.js'
import type { RevocationQuery } from './revocation.js'
import { audienceOf, didsOf, issuerOf, verifyUcanSignature } from './signed-payload.js'
import { type VerifiedUcanCache, isCanonical } from './verified-ucans.js'

/** What {@link checkChain} needs besides the space and the delegation. */
export interface ChainOptions {
  /** The service: the audience the delegation must be addressed to (the probe's issuer in ucanto's terms). */
  service: API.Principal
  /** Verifies the chain's signatures (principal.ts's node:crypto parser in the service). */
  principal: API.PrincipalParser
  /** Current time, Unix seconds: a UCAN is expired when `exp ≤ now`, not yet valid when `now ≤ nbf` (ucanto's bounds). */
  now: number
  /** UCANs known canonical and validly signed; those verified here are added if their content was checked. Default none. */
  ucans?: VerifiedUcanCache | undefined
}

/**
 * Whether `delegation` must be checked by ucanto's validator (grants.ts) instead of
 * {@link checkChain}: some UCAN it embeds is issued by a DID that is not a did:key, whose
 * authorization ucanto resolves through `ucan/attest` sessions and DID resolution (or by a DID
 * that does not decode).
 */
export function needsValidator(delegation: API.Delegation): boolean {
  try {
    for (const ucan of embeddedUCANs(delegation)) if (!issuerOf(ucan).startsWith('did:key:')) return true
  } catch {
    // An issuer DID that does not decode: ucanto decides what that means, as it did before.
    return true
  }
  return false
}

/**
 * Check 11: for each Storacha capability in order, the first path (the delegation first, the
 * UCAN rooted at the space last) that grants it on `space`; or the failure of the first one not
 * granted. `space` must not be the service's DID (the caller refuses it as `ReservedSpace`).
 * Call only when {@link needsValidator} is false. May reject where ucanto's `claim` would (an
 * embedded UCAN whose issuer DID does not parse).
 */
export async function checkChain(
  space: SpaceDID,
  delegation: API.Delegation,
  options: ChainOptions,
): Promise<API.Result<API.Delegation[][], AuthorizationFailure>> {
  const search = new Search(options)
  const paths: API.Delegation[][] = []
  for (const parser of LEAN_STORACHA_CAPABILITIES) {
    search.failures.clear()
    const found = await search.claim(parser as unknown as Parser, space, delegation)
    if (found === undefined) return { error: search.failure(parser.can) }
    paths.push(found)
  }
  return { ok: paths }
}

/**
 * Adds the revocation query of `path` (a path of {@link checkChain}: the delegation first, the
 * root last) to `into`, as revocation.ts `toRevocationQuery` does for a ucanto authorization path:
 * each UCAN maps to its own issuer and audience and those of every UCAN after it (upstream).
 * Returns the principals of the whole path (the first UCAN's set).
 */
export function addPathToRevocationQuery(path: readonly API.Delegation[], into: RevocationQuery): Set<API.DID> {
  let upstream = new Set<API.DID>()
  for (let i = path.length - 1; i >= 0; i--) {
    const ucan = path[i] as API.Delegation
    const { iss, aud } = didsOf(ucan)
    const scope = new Set<API.DID>([iss, aud, ...upstream])
    const id = ucan.cid.toString()
    const existing = into.get(id)
    if (existing === undefined) into.set(id, scope)
    else for (const p of scope) existing.add(p)
    upstream = scope
  }
  return upstream
}

/**
 * The Storacha parsers with caveat schemas that read the same without an error object per absent
 * optional caveat (`space/index/add`'s `content`, `upload/add`'s `shards`): lean-parsers.ts.
 */
const LEAN_STORACHA_CAPABILITIES = STORACHA_CAPABILITIES.map((parser) => leanParser(parser))

/** The probe's `nb` per ability: any well-formed values do (grants.ts uses the same). */
const PROBE_DIGEST = Digest.create(0x12, new Uint8Array(32))
const PROBE_NB: Record<StorachaAbility, Record<string, unknown>> = {
  'space/blob/add': { blob: { digest: PROBE_DIGEST.bytes, size: 1 } },
  'space/index/add': { index: Link.create(0x0202, PROBE_DIGEST) },
  'upload/add': { root: Link.create(0x55, PROBE_DIGEST) },
}

/** A match of a Storacha parser (a parsed capability and the source it came from). */
type ParsedMatch = API.Match<API.ParsedCapability>
/** A Storacha capability parser. */
type Parser = API.TheCapabilityParser<ParsedMatch>

/** The failure names authorization-failure.ts looks for, most specific first. */
type Named = 'InvalidSignature' | 'Expired' | 'NotValidBefore'

/**
 * ucanto's `resolveAbility`: whether a delegated ability `pattern` covers the claimed `can`
 * (`*`, `ns/*` prefixes, or equal). A source that does not is "unknown" to the parser and never
 * matches, so it is left out before the parser sees it (saving its error object).
 */
function abilityCovers(pattern: string, can: string): boolean {
  return pattern === can || pattern === '*' || (pattern.endsWith('/*') && can.startsWith(pattern.slice(0, -1)))
}

/** One {@link checkChain} call: its memo of validations and the failures met in the current claim. */
class Search {
  /** First CID met per failure name, in the current claim. */
  readonly failures = new Map<Named, string>()
  /** Validation outcome per UCAN object (valid: undefined). */
  readonly #validated = new Map<API.Delegation, Named | undefined>()

  /** The service's DID (formatted once per call). */
  readonly service: API.DID
  /** The delegation being checked (cached in the delegations' share of the verified-UCAN cache). */
  top: API.Delegation | undefined

  constructor(readonly options: ChainOptions) {
    this.service = options.service.did()
  }

  /** ucanto `claim(parser, [probe])` where the probe claims `parser.can` on `space` with `delegation` as its proof. */
  async claim(parser: Parser, space: SpaceDID, delegation: API.Delegation): Promise<API.Delegation[] | undefined> {
    const service = this.service
    const probe = parser.match({
      capability: { can: parser.can, with: space, nb: PROBE_NB[parser.can as StorachaAbility] },
      delegation: { issuer: { did: () => service } } as unknown as API.Delegation,
    } as API.Source)
    if (probe.error) throw new TypeError(`the probe of ${parser.can} does not parse: ${probe.error.message}`)
    this.top = delegation
    // Self-issued by the service (space = service): ucanto grants it outright.
    if (probe.ok.value.with === service) return []
    return this.#authorize(probe.ok, service, [delegation])
  }

  /**
   * ucanto `authorize(match)`: the sources of `proofs` (the proofs of the UCAN whose issuer is
   * `issuer`), matched against `match`'s capability; the first match self-issued, or authorized
   * further up, is the path.
   */
  async #authorize(match: ParsedMatch, issuer: API.DID, proofs: readonly API.Proof[]): Promise<API.Delegation[] | undefined> {
    const sources = await this.#sources(issuer, proofs, match.value.can as string)
    if (sources.length === 0) return undefined
    const selection = match.select(sources)
    for (const matched of selection.matches as ParsedMatch[]) {
      const ucan = matched.source[0]?.delegation as API.Delegation
      // ucanto's prune: self-issued when the capability's `with` is its UCAN's issuer.
      if (matched.value.with === issuerOf(ucan)) return [ucan]
      const above = await this.#authorize(matched, issuerOf(ucan), ucan.proofs)
      if (above !== undefined) return [ucan, ...above]
    }
    return undefined
  }

  /** ucanto `resolveSources`: the capabilities (covering `can`) of the valid embedded proofs addressed to `issuer`. */
  async #sources(issuer: API.DID, proofs: readonly API.Proof[], can: string): Promise<API.Source[]> {
    const sources: API.Source[] = []
    for (const proof of proofs) {
      if (!isDelegation(proof) || audienceOf(proof) !== issuer) continue
      if ((await this.#validate(proof)) !== undefined) continue
      for (const capability of proof.capabilities) {
        if (abilityCovers((capability as API.Capability).can, can)) sources.push({ capability, delegation: proof } as API.Source)
      }
    }
    return sources
  }

  /** ucanto `validate` of a did:key-issued UCAN: time bounds, then the signature; the failure name met, or undefined. */
  async #validate(ucan: API.Delegation): Promise<Named | undefined> {
    let outcome: Named | undefined
    if (this.#validated.has(ucan)) {
      outcome = this.#validated.get(ucan)
    } else {
      const { now } = this.options
      if (ucan.expiration <= now) outcome = 'Expired'
      else if (ucan.notBefore != null && now <= ucan.notBefore) outcome = 'NotValidBefore'
      else if (!(await this.#verify(ucan))) outcome = 'InvalidSignature'
      this.#validated.set(ucan, outcome)
    }
    if (outcome !== undefined && !this.failures.has(outcome)) this.failures.set(outcome, ucan.cid.toString())
    return outcome
  }

  /** The issuer's signature over the UCAN's signed payload: from the cache, or verified once (and cached if canonical). */
  async #verify(ucan: API.Delegation): Promise<boolean> {
    const { ucans, principal } = this.options
    if (ucans?.has(ucan) === true) return true
    const verifier = principal.parse(issuerOf(ucan))
    const valid = await verifyUcanSignature(ucan, verifier, didsOf(ucan), () => UCAN.verifySignature(ucan.data, verifier))
    if (valid && ucans !== undefined && isCanonical(ucan)) ucans.add(ucan, { delegation: ucan === this.top })
    return valid
  }

  /** authorization-failure.ts's naming of the failures met. */
  failure(can: string): AuthorizationFailure {
    const cid = (name: Named): string => truncate(this.failures.get(name) ?? '')
    if (this.failures.has('InvalidSignature')) return new InvalidSignature(`UCAN ${cid('InvalidSignature')} has an invalid signature`)
    if (this.failures.has('Expired')) return new Expired(`UCAN ${cid('Expired')} has expired`)
    if (this.failures.has('NotValidBefore')) return new NotValidBefore(`UCAN ${cid('NotValidBefore')} is not valid yet`)
    return new Unauthorized(`delegation does not grant ${can} on the space`)
  }
}

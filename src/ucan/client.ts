/**
 * Client-side helpers for ucanlog's UCAN RPC: keys, the Space→Agent and Agent→Service delegations,
 * the `tlog/append` / `tlog/read` invocations, and a connection. Used by the CLI and the tests.
 *
 * Expirations are Unix seconds. ucanto's default (30 s after creation) is never relied on.
 */
import { randomBytes } from 'node:crypto'
import * as Client from '@ucanto/client'
import { delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import * as CAR from '@ucanto/transport/car'
import * as HTTP from '@ucanto/transport/http'
import { encodeBase64 } from '../tlog/encoding.js'
import { systemNow } from './clock.js'
import { TlogAppend, TlogCreate, TlogRead, UCANRevoke } from './capabilities.js'
import { formatDelegation } from './delegation.js'
import { STORACHA_ABILITIES } from '../storage/storacha-capabilities.js'
import type { TlogService } from './wire.js'

/** Default lifetime of a delegation made here: one year, in seconds. */
export const DEFAULT_DELEGATION_LIFETIME = 365 * 24 * 60 * 60

/** Default lifetime of an invocation made here, in seconds (the service accepts at most 3600). */
export const DEFAULT_INVOCATION_LIFETIME = 300

/** An Ed25519 ucanto signer: an agent's, a space's, or the service's key. */
export type Key = ed25519.EdSigner

/** Generates a new Ed25519 key (`did:key:z6Mk…`). */
export function generateKey(): Promise<Key> {
  return ed25519.generate()
}

/**
 * Formats a key as ucanto and the Storacha CLI do (`storacha key create`): multibase base64pad
 * (`M` prefix) of the multicodec-tagged private and public key (68 bytes). Secret: store it 0600.
 */
export function formatKey(key: Key): string {
  return ed25519.format(key)
}

/**
 * Parses {@link formatKey}'s format.
 * @throws if `s` is not base64pad multibase of a 68-byte ed25519 key pair.
 */
export function parseKey(s: string): Key {
  return ed25519.parse(s.trim())
}

/**
 * Delegates the Storacha capabilities (`space/blob/add`, `space/index/add`, `upload/add`, or
 * `capabilities`) on `space` to `agent`, like `storacha delegation create <agent> --can …`.
 * @param expiration Unix seconds; default one year from now.
 */
export function delegateSpaceToAgent(args: {
  space: API.Signer<API.DIDKey>
  agent: API.Principal
  expiration?: number
  capabilities?: readonly API.Ability[]
}): Promise<API.Delegation> {
  return delegate({
    issuer: args.space,
    audience: args.agent,
    capabilities: capabilitiesOn(args.space.did(), args.capabilities ?? STORACHA_ABILITIES),
    expiration: args.expiration ?? systemNow() + DEFAULT_DELEGATION_LIFETIME,
  })
}

/**
 * Re-delegates the Storacha capabilities on the space from `agent` to the ucanlog service, with
 * `proofs` (the Space→Agent chain) embedded. This is what `nb.delegation` carries.
 * @param space the space DID; default: the `with` of the first proof's first capability.
 * @param expiration Unix seconds; default one year from now (no longer than the proofs is wise).
 * @throws TypeError if `space` is absent and cannot be taken from `proofs`.
 */
export function delegateAgentToService(args: {
  agent: API.Signer
  service: API.DID | API.Principal
  proofs: API.Delegation[]
  space?: API.DIDKey
  expiration?: number
  capabilities?: readonly API.Ability[]
}): Promise<API.Delegation> {
  const space = args.space ?? spaceOf(args.proofs)
  return delegate({
    issuer: args.agent,
    audience: principal(args.service),
    capabilities: capabilitiesOn(space, args.capabilities ?? STORACHA_ABILITIES),
    proofs: args.proofs,
    expiration: args.expiration ?? systemNow() + DEFAULT_DELEGATION_LIFETIME,
  })
}

/**
 * Builds a `tlog/append` invocation from `agent` to `service` for `space`: `nb.data` = standard
 * base64 of `entry`, `nb.delegation` = `agentToService` (or one made from `spaceToAgent`) in the
 * Storacha string format. A random nonce makes every call a distinct invocation, so appending the
 * same bytes twice appends twice (while resending the built invocation does not).
 * @param lifetime seconds until `exp`; default {@link DEFAULT_INVOCATION_LIFETIME}.
 * @returns a ucanto invocation: `.execute(connection)` or `.delegate()` it.
 * @throws TypeError if neither `agentToService` nor `spaceToAgent` is given.
 */
export async function appendInvocation(args: {
  agent: API.Signer
  service: API.DID | API.Principal
  space: API.DIDKey
  entry: Uint8Array
  spaceToAgent?: API.Delegation
  agentToService?: API.Delegation
  lifetime?: number
}): Promise<API.IssuedInvocationView<API.InferInvokedCapability<typeof TlogAppend>>> {
  let delegation = args.agentToService
  if (delegation === undefined) {
    if (args.spaceToAgent === undefined) throw new TypeError('appendInvocation needs agentToService or spaceToAgent')
    delegation = await delegateAgentToService({
      agent: args.agent,
      service: args.service,
      proofs: [args.spaceToAgent],
      space: args.space,
      expiration: args.spaceToAgent.expiration,
    })
  }
  return TlogAppend.invoke({
    issuer: args.agent,
    audience: principal(args.service),
    with: args.space,
    nb: { data: encodeBase64(args.entry), delegation: await formatDelegation(delegation) },
    expiration: systemNow() + (args.lifetime ?? DEFAULT_INVOCATION_LIFETIME),
    nonce: randomBytes(12).toString('base64'),
  })
}

/**
 * Builds a `tlog/read` invocation (public: any key may read).
 * @param offset integer ≥ 0; @param limit integer 1..1000 (server default 100).
 */
export function readInvocation(args: {
  issuer: API.Signer
  service: API.DID | API.Principal
  space: API.DIDKey
  offset?: number
  limit?: number
  lifetime?: number
}): API.IssuedInvocationView<API.InferInvokedCapability<typeof TlogRead>> {
  return TlogRead.invoke({
    issuer: args.issuer,
    audience: principal(args.service),
    with: args.space,
    nb: {
      ...(args.offset !== undefined && { offset: args.offset }),
      ...(args.limit !== undefined && { limit: args.limit }),
    },
    expiration: systemNow() + (args.lifetime ?? DEFAULT_INVOCATION_LIFETIME),
  })
}

/**
 * Builds a `ucan/revoke` invocation (storacha's capability) from `issuer` to `service`: `with`
 * `scope` (default the issuer's DID), `nb.ucan` the revoked delegation's CID, its blocks attached
 * (as `@storacha/client`'s `revokeDelegation` does). It takes effect for a chain only if `scope`
 * is in that chain at or above the revoked UCAN; when `scope` is above it (neither its issuer nor
 * its audience), `nb.proof` is set to the path of attached proofs from the UCAN up to one that
 * `scope` issued or received ({@link revocationPath}), which the service requires (it refuses an
 * unrelated revocation with `UnrelatedRevocation`).
 * @param proofs delegations of `ucan/revoke` from `scope` to `issuer`, when they differ.
 */
export function revokeInvocation(args: {
  issuer: API.Signer
  service: API.DID | API.Principal
  ucan: API.Delegation
  scope?: API.DID
  proofs?: API.Delegation[]
  lifetime?: number
}): API.IssuedInvocationView<API.InferInvokedCapability<typeof UCANRevoke>> {
  const scope = args.scope ?? args.issuer.did()
  const path = revocationPath(args.ucan, scope) ?? []
  return UCANRevoke.invoke({
    issuer: args.issuer,
    audience: principal(args.service),
    with: scope,
    nb: { ucan: args.ucan.cid, ...(path.length > 0 && { proof: path.map((d) => d.cid) }) },
    proofs: [args.ucan, ...(args.proofs ?? [])], // the path's blocks come with the UCAN's own proofs
    expiration: systemNow() + (args.lifetime ?? DEFAULT_INVOCATION_LIFETIME),
    nonce: randomBytes(12).toString('base64'),
  })
}

/**
 * The shortest path of attached proofs from `ucan` up to a UCAN that `scope` issued or received
 * (breadth first, each UCAN visited once): `[]` when `scope` is the issuer or audience of `ucan`
 * itself, `undefined` when no attached proof leads to it.
 */
export function revocationPath(ucan: API.Delegation, scope: API.DID): API.Delegation[] | undefined {
  const involves = (d: API.Delegation) => d.issuer.did() === scope || d.audience.did() === scope
  if (involves(ucan)) return []
  const seen = new Set<string>([ucan.cid.toString()])
  let frontier: API.Delegation[][] = [[ucan]]
  while (frontier.length > 0) {
    const next: API.Delegation[][] = []
    for (const path of frontier) {
      for (const proof of path[path.length - 1]!.proofs) {
        if (!('issuer' in proof)) continue // a proof linked but not attached
        const id = proof.cid.toString()
        if (seen.has(id)) continue
        seen.add(id)
        const longer = [...path, proof]
        if (involves(proof)) return longer.slice(1)
        next.push(longer)
      }
    }
    frontier = next
  }
  return undefined
}

/**
 * Builds a `tlog/create` invocation: create the space's log now (idempotent), authorized by the
 * Agent→Service delegation exactly as `tlog/append`.
 */
export async function createInvocation(args: {
  agent: API.Signer
  service: API.DID | API.Principal
  space: API.DIDKey
  agentToService: API.Delegation
  lifetime?: number
}): Promise<API.IssuedInvocationView<API.InferInvokedCapability<typeof TlogCreate>>> {
  return TlogCreate.invoke({
    issuer: args.agent,
    audience: principal(args.service),
    with: args.space,
    nb: { delegation: await formatDelegation(args.agentToService) },
    expiration: systemNow() + (args.lifetime ?? DEFAULT_INVOCATION_LIFETIME),
    nonce: randomBytes(12).toString('base64'),
  })
}

/**
 * A ucanto connection to a ucanlog service at `url` (its `POST /rpc` or `POST /` route) whose DID is
 * `service`. Non-2xx HTTP statuses make `execute` throw; failures are receipts' `out.error`.
 */
export function connect(url: string | URL, service: API.DID): API.ConnectionView<TlogService> {
  return Client.connect<TlogService>({
    id: principal(service),
    codec: CAR.outbound,
    channel: HTTP.open<TlogService>({ url: new URL(url), method: 'POST' }),
  })
}

function principal(p: API.DID | API.Principal): API.Principal {
  return typeof p === 'string' ? { did: () => p } : p
}

function capabilitiesOn(space: API.DIDKey, abilities: readonly API.Ability[]): API.Capabilities {
  return abilities.map((can) => ({ can, with: space })) as unknown as API.Capabilities
}

function spaceOf(proofs: API.Delegation[]): API.DIDKey {
  const resource = proofs[0]?.capabilities[0]?.with
  if (typeof resource !== 'string' || !resource.startsWith('did:key:')) {
    throw new TypeError('cannot tell the space from the proofs; pass space')
  }
  return resource as API.DIDKey
}

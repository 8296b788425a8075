/**
 * The trusted `ucan/attest` issuer: Storacha's email login makes `did:mailto` account delegations
 * that carry no signature of their own, and a service attests them instead. ucanlog trusts exactly
 * one such service, pinned in configuration (never fetched), and teaches ucanto's validator to
 * accept its attestations.
 */
import { delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { truncate } from './errors.js'

/**
 * A trusted `ucan/attest` issuer: its DID (production Storacha: `did:web:up.storacha.network`)
 * and the `did:key` its attestations are signed with.
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

// The stock ucanto server of bench/stock-server.js (HTTP) and bench/request-check.js (in process):
// no log, no replay guard, no revocations, no rate limits; it accepts ucanlog's own `tlog/append`
// invocations and checks the same chain with ucanto's validator: the invocation's signature
// (Server.provide's access(), the agent may invoke on any space), then `claim()` of
// `space/blob/add` over the Agent→Service delegation of `nb.delegation` with its embedded
// Space→Agent proof, rooted at the space — three Ed25519 verifies through `principal`.
import * as Server from '@ucanto/server'
import { Delegation } from '@ucanto/core'
import { CAR } from '@ucanto/transport'
import { DID, capability } from '@ucanto/validator'
import { base64 } from 'multiformats/bases/base64'
import * as Link from 'multiformats/link'

/** `space/blob/add` without caveats: what an Agent→Service delegation grants (any blob on the space). */
const BlobAdd = capability({ can: 'space/blob/add', with: DID.match({ method: 'key' }) })

/**
 * A ucanto server signing with `signer`, verifying with `principal`, serving `TlogAppend` (the
 * build's capability parser); each authorized append answers `result(space)` in a signed receipt.
 */
export function createStockServer({ signer, principal, TlogAppend, result }) {
  const service = {
    tlog: {
      append: Server.provide(TlogAppend, async ({ capability: cap, invocation }) => {
        const link = Link.parse(cap.nb.delegation, base64)
        const extracted = await Delegation.extract(link.multihash.digest)
        if (extracted.error) return { error: extracted.error }
        const delegation = extracted.ok
        if (delegation.issuer.did() !== invocation.issuer.did() || delegation.audience.did() !== signer.did()) {
          return { error: { name: 'InvalidDelegation', message: 'not from the invoker to this service' } }
        }
        const claimed = await Server.claim(BlobAdd, [delegation], { authority: signer, principal, validateAuthorization: () => ({ ok: {} }) })
        if (claimed.error) return { error: claimed.error }
        if (claimed.ok.capability.with !== cap.with) return { error: { name: 'WrongSpace', message: 'the delegation is for another space' } }
        return { ok: result(cap.with) }
      }),
    },
  }
  return Server.create({
    id: signer,
    service,
    codec: CAR.inbound,
    principal,
    canIssue: () => true, // the authority is checked on nb.delegation, as ucanlog does
    validateAuthorization: () => ({ ok: {} }),
  })
}

/**
 * `ucan/revoke` (docs/wire.md), as Storacha declares it: the invoker must hold `ucan/revoke` for
 * `with` (ucanto's `access`); the revoked UCAN (and any `nb.proof`) must be attached and related
 * to `with`, so that the record can have an effect. Records go to the revocation store and the
 * public revocation log (revocation.ts `RevocationRecorder`).
 */
import { Delegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { access, DID as DIDSchema, Schema } from '@ucanto/validator'
import { authorizationFailure } from '../authorization-failure.js'
import { UCANRevoke } from '../capabilities.js'
import { checkContentAddressed } from '../delegation.js'
import {
  InternalError,
  InvalidCapability,
  RateLimited,
  type RevokeFailure,
  Revoked,
  TooManyRevocations,
  UCANNotFound,
  UnrelatedRevocation,
  logRefusal,
  truncate,
} from '../errors.js'
import { checkInvocation } from '../invocation.js'
import { RevocationScopeFull, toRevocationQuery } from '../revocation.js'
import type { RevokeResult } from '../wire.js'
import { type HandlerContext, type Service, admitted, internal, waiting } from './context.js'

/** Caveats of `ucan/revoke` (storacha's schema), read before authorization to name a malformed `nb`. */
const RevokeCaveats = Schema.struct({
  ucan: Schema.link({ version: 1 }),
  proof: Schema.link({ version: 1 }).array().optional(),
})

/** The `ucan/revoke` handler of service `s`. */
export function revokeHandler(s: Service) {
  return async (invocation: API.Invocation, context?: HandlerContext): Promise<API.Result<RevokeResult, RevokeFailure>> => {
    try {
      if (invocation.capabilities.length !== 1) {
        return { error: new InvalidCapability('invocation must carry exactly one capability') }
      }
      const capability = invocation.capabilities[0] as API.Capability
      const scope = DIDSchema.read(capability.with)
      if (scope.error) return { error: new InvalidCapability(`with must be a DID, got ${truncate(capability.with)}`) }
      const nb = RevokeCaveats.read((capability as { nb?: unknown }).nb ?? {})
      if (nb.error) return { error: new InvalidCapability('nb must be { ucan: link, proof?: link[] }') }
      const checked = await admitted(s, invocation, context, () => undefined, (signatureVerified) =>
        checkInvocation(invocation, { audience: s.signer.did(), principal: s.principal, now: s.now(), maxLifetime: s.maxInvocationLifetime, signatureVerified }),
      )
      if (checked.error) return checked
      // The invoker must hold ucan/revoke for `with`: it is `with` itself, or holds a delegation
      // from it (ucanto's access, with our revocation store and attester trust).
      let storeFailed = false
      const authorized = await access(invocation as API.Invocation<API.InferInvokedCapability<typeof UCANRevoke>>, {
        capability: UCANRevoke,
        authority: s.signer,
        principal: s.principal,
        ...(await s.trust),
        validateAuthorization: async (auth: API.Authorization) => {
          let revoked: string | undefined
          try {
            revoked = await s.revocations.findRevoked(toRevocationQuery(auth))
          } catch {
            storeFailed = true
            return { error: new Revoked('revocation store unavailable') as unknown as API.Revoked }
          }
          return revoked === undefined ? { ok: {} } : { error: new Revoked(`UCAN ${truncate(revoked)} has been revoked`) as unknown as API.Revoked }
        },
      })
      if (storeFailed) return { error: new InternalError('revocation store unavailable') }
      if (authorized.error) return { error: authorizationFailure(authorized.error, 'ucan/revoke') }
      // The revoked UCAN (and any nb.proof) must be attached, as storacha's handler requires.
      const path: API.Delegation[] = []
      for (const [role, link] of [['nb.ucan', nb.ok.ucan] as const, ...(nb.ok.proof ?? []).map((l, i) => [`nb.proof[${i}]`, l] as const)]) {
        const ucan = Delegation.view({ root: link as API.UCANLink, blocks: invocation.blocks }, null)
        if (ucan === null || !(await checkContentAddressed(ucan, { proofs: false }))) {
          return { error: new UCANNotFound(`${role} ${truncate(link)} is not attached; a revocation must include it`) }
        }
        path.push(ucan)
      }
      const unrelated = checkRevocationPath(scope.ok, path)
      if (unrelated !== undefined) return { error: unrelated }
      if (s.revocationRecorder === undefined) return internal(s, new Error('no revocation recorder'), invocation, 'ucan/revoke')
      const wait = s.admitRevocation?.(context?.request?.client)
      if (wait !== undefined) {
        context?.rateLimited?.(wait)
        return { error: new RateLimited(`too many revocations from this address; retry in ${Math.max(1, Math.ceil(wait))} s`) }
      }
      const recorder = s.revocationRecorder
      const recorded = await waiting(context, () => recorder
        .record({
          ucan: nb.ok.ucan.toString(),
          scope: scope.ok,
          revoker: invocation.issuer.did(),
          invocation: invocation.cid.toString(),
          time: s.now(),
        })
        .catch((err: unknown) => {
          if (err instanceof RevocationScopeFull) return new TooManyRevocations(`${truncate(err.scope)} has ${err.limit} revocation records, its cap; nothing recorded`)
          throw err
        }))
      if (recorded instanceof TooManyRevocations) return { error: recorded }
      return {
        ok: {
          time: recorded.record.time * 1000,
          ucan: recorded.record.ucan,
          scope: recorded.record.scope,
          ...(recorded.index !== undefined && { index: recorded.index }),
          // Said only when this scope had revoked this UCAN before: the call changed nothing.
          ...(!recorded.created && { alreadyRevoked: true as const }),
        },
      }
    } catch (cause) {
      // A failed write of the revocation store or log is named (issue 15 item 2), and so is the
      // revocation log held by another instance or the database not answering (PostgreSQL: the
      // record is in force, its log entry made by the retry); anything else hidden.
      const refusal = logRefusal(cause)
      if (refusal?.name === 'StorageFull' || refusal?.name === 'StorageFailed') {
        s.logger.error({ err: cause, invocation: invocation.cid.toString(), can: 'ucan/revoke' }, 'ucan/revoke: storage write failed')
        if (refusal.name === 'StorageFull') s.onStorageFull?.(cause)
        return { error: refusal }
      }
      if (refusal?.name === 'LeaseHeld' || refusal?.name === 'LeaseLost' || refusal?.name === 'DatabaseUnavailable') return { error: refusal }
      return internal(s, cause, invocation, 'ucan/revoke failed')
    }
  }
}

/**
 * Whether a revocation by `scope` of `path[0]` (`nb.ucan`) can have any effect: `path` is
 * `nb.ucan` followed by the UCANs `nb.proof` names, each of which must be a proof (`prf` link) of
 * the one before it, and `scope` must be the issuer or audience of one of them — exactly the
 * principals whose revocation the authorizer honours for chains through `nb.ucan`
 * (revocation.ts `toRevocationQuery`). Returns the refusal, or undefined when it is related.
 */
function checkRevocationPath(scope: API.DID, path: readonly API.Delegation[]): UnrelatedRevocation | undefined {
  for (let i = 1; i < path.length; i++) {
    const cid = path[i]!.cid.toString()
    if (!path[i - 1]!.data.proofs.some((link) => link.toString() === cid)) {
      return new UnrelatedRevocation(`nb.proof[${i - 1}] ${truncate(cid)} is not a proof of ${i === 1 ? 'nb.ucan' : `nb.proof[${i - 2}]`}`)
    }
  }
  if (path.some((ucan) => ucan.issuer.did() === scope || ucan.audience.did() === scope)) return undefined
  return new UnrelatedRevocation(
    `${truncate(scope)} is not the issuer or audience of nb.ucan or of a UCAN on its proof path (nb.proof); its revocation would have no effect`,
  )
}

/**
 * `tlog/create` (docs/wire.md): create the space's log now, authorized exactly like `tlog/append`
 * minus the entry (authorize.ts); idempotent. Answers the log's id, origin, verifier key and size.
 */
import type { API } from '@ucanto/core'
import { type AuthorizedCreate, authorizeCreate } from '../authorize.js'
import type { CreateFailure } from '../errors.js'
import type { CreateResult } from '../wire.js'
import { type HandlerContext, type Service, admitted, authorizeOptions, creationRefusal, failed } from './context.js'

/** The `tlog/create` handler of service `s`. */
export function createHandler(s: Service) {
  return async (invocation: API.Invocation, context?: HandlerContext): Promise<API.Result<CreateResult, CreateFailure>> => {
    try {
      // Cheap, before any signature or chain work: a log this client may not create now.
      const refusal = await creationRefusal(s, invocation, context)
      if (refusal) return { error: refusal }
      const authorized = await admitted(s, invocation, context, (ok: AuthorizedCreate) => ok.space, (verified) => authorizeCreate(invocation, authorizeOptions(s, verified)))
      if (authorized.error) return authorized
      const r = await s.log.create(authorized.ok.space, context?.request ?? {})
      // Exactly the wire fields: nothing else the log returns leaks into a receipt.
      return { ok: { logId: r.logId, origin: r.origin, vkey: r.vkey, treeSize: r.treeSize } }
    } catch (cause) {
      return failed(s, cause, invocation, 'tlog/create failed')
    }
  }
}

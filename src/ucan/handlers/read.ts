/**
 * `tlog/read` (docs/wire.md): a page of a space's published entries, base64 on the wire. Public:
 * any principal's signed invocation addressed to the service may read, as anyone may fetch the
 * tiles over HTTP. The entries of all reads of one request share its response budget
 * (response-budget.ts).
 */
import type { API } from '@ucanto/core'
import { encodeBase64 } from '../../tlog/encoding.js'
import { DEFAULT_READ_LIMIT, TlogReadCaveats } from '../capabilities.js'
import { InvalidCapability, type ReadFailure, ReservedSpace, ResponseTooLarge, UnknownLog } from '../errors.js'
import { checkInvocation, isReservedSpace, readCapability } from '../invocation.js'
import type { ReadResult } from '../wire.js'
import { type HandlerContext, type Service, admitted, failed } from './context.js'

/** The `tlog/read` handler of service `s`. */
export function readHandler(s: Service) {
  return async (invocation: API.Invocation, context?: HandlerContext): Promise<API.Result<ReadResult, ReadFailure>> => {
    try {
      const shape = readCapability(invocation, 'tlog/read')
      if (shape.error) return shape
      const space = shape.ok.space
      if (isReservedSpace(space, s.signer, s.reservedSpaces)) {
        return { error: new ReservedSpace('this DID belongs to the service itself and is not a space') }
      }
      const nb = TlogReadCaveats.read((shape.ok.capability as { nb?: unknown }).nb ?? {})
      if (nb.error) return { error: new InvalidCapability('nb must be { offset?: integer ≥ 0, limit?: integer 1..1000 }') }
      // A bounded exp, as for appends: one signed read cannot be replayed forever.
      const checked = await admitted(s, invocation, context, () => undefined, (signatureVerified) =>
        checkInvocation(invocation, { audience: s.signer.did(), principal: s.principal, now: s.now(), maxLifetime: s.maxInvocationLifetime, signatureVerified }),
      )
      if (checked.error) return checked
      const budget = context?.responses ?? s.responses.unpooled()
      const offset = nb.ok.offset ?? 0
      // Reads of one request take turns, so each sees what the ones before it spent.
      return await budget.serialize(async () => {
        const remaining = budget.remaining()
        // The engine counts raw bytes: base64 is 4/3 of them (plus ≤ 2 padding characters each).
        const page = await s.log.read(space, offset, nb.ok.limit ?? DEFAULT_READ_LIMIT, Math.floor((remaining * 3) / 4))
        if (page === undefined) return { error: new UnknownLog('no log for this space') }
        const entries: string[] = []
        let bytes = 0
        for (const entry of page.entries) {
          const text = encodeBase64(entry)
          if (bytes + text.length > remaining) break
          entries.push(text)
          bytes += text.length
        }
        if (entries.length === 0 && offset < page.total) {
          return { error: new ResponseTooLarge('this request\'s response budget is spent; read these entries in another request') }
        }
        budget.charge(bytes)
        return { ok: { entries, total: page.total } }
      })
    } catch (cause) {
      return failed(s, cause, invocation, 'tlog/read failed')
    }
  }
}

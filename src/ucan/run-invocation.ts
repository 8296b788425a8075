/**
 * ucanto's `Server.run` for one invocation the transport has already admitted (exactly one
 * capability, of an ability the service implements), issuing a lean receipt: its `ran` is the
 * invocation's link, not the invocation itself.
 *
 * ucanto's receipt signs `ran` as a link either way (`ocm.ran` is the invocation's CID), so the
 * signed receipt is byte for byte the same; what changes is the response CAR, which no longer
 * re-embeds the invocation's DAG (the invocation block, its proofs, its `nb.delegation` archive).
 * The client already holds that DAG: ucanto's client (`connection.execute`) and ours look a
 * receipt up by the link of the invocation it sent (`message.get(link)`), and a decoded receipt's
 * `ran` falls back to that link when the invocation's blocks are absent.
 */
import { Receipt } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { Error as ServerError } from '@ucanto/server'

/**
 * Runs `invocation` as ucanto's `Server.run` does once its capability count and handler are known
 * good: calls the service method at the ability's path (`tlog/append` → `service.tlog.append`) with
 * `server.context`, takes `outcome.do.out`/`.fx` if the handler returned a joined effect, and
 * issues the receipt signed by `server.id` with `ran` = the invocation's link. A handler that
 * throws gets ucanto's `HandlerExecutionError` (reported to `server.catch` first), as in ucanto.
 * The caller must have checked that the handler exists and the invocation has one capability.
 */
export async function runInvocation(invocation: API.Invocation, server: API.ServerView<Record<string, unknown>>): Promise<API.Receipt> {
  const capability = invocation.capabilities[0] as API.Capability
  const path = capability.can.split('/')
  const method = path.pop() as string
  let target: unknown = server.service
  for (const key of path) target = (target as Record<string, unknown>)[key]
  const handler = (target as Record<string, (inv: API.Invocation, context: unknown) => Promise<Outcome>>)[method] as (
    inv: API.Invocation,
    context: unknown,
  ) => Promise<Outcome>
  const ran = invocation.link()
  try {
    const outcome = await handler.call(target, invocation, server.context)
    const result = outcome.do ? outcome.do.out : outcome
    const fx = outcome.do ? outcome.do.fx : undefined
    return await Receipt.issue({ issuer: server.id as API.Signer, ran, result: result as API.Result<{}, {}>, ...(fx !== undefined && { fx }) })
  } catch (cause) {
    const error = new ServerError.HandlerExecutionError(capability, cause as Error)
    server.catch(error)
    return (await Receipt.issue({ issuer: server.id as API.Signer, ran, result: { error } })) as unknown as API.Receipt
  }
}

/** What a ucanto service method resolves to: a result, or a joined effect (`{ do: { out, fx } }`). */
type Outcome = API.Result<{}, {}> & { do?: { out: API.Result<{}, {}>; fx: API.Effects } }

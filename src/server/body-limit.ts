/**
 * The request body cap of `POST /rpc`: hono's `bodyLimit`, answered from the `Content-Length`
 * header alone when the request has one (and no `Transfer-Encoding`), without touching
 * `c.req.raw.body`.
 *
 * Why not hono's middleware as is: it reads `c.req.raw.body` first, and on @hono/node-server that
 * getter builds the full WHATWG Request (an undici Request, a ReadableStream over the socket, an
 * AbortController) for every request. The body is then read through that stream, where
 * @hono/node-server would otherwise read the node:http request directly. On the RPC hot path that
 * was the largest share of the main thread's HTTP cost (issue 11). The decision is the same as
 * hono's for every request: with a `Content-Length` (node:http has already refused a malformed or
 * duplicated one, and ends the body at exactly that many bytes) its value is compared with the cap;
 * a chunked body (or none) goes through hono's own middleware, which counts the bytes as they come.
 */
import type { IncomingMessage } from 'node:http'
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'

/** Options of {@link rpcBodyLimit}. */
export interface BodyLimitOptions {
  /** Largest body accepted, bytes (≥ 0). */
  maxSize: number
  /** The answer to a body over `maxSize` (the service answers 413). */
  onError: (c: Context) => Response | Promise<Response>
}

/**
 * A middleware that answers `onError` for a body over `maxSize` bytes and otherwise passes the
 * request on with its body unread (see the module comment).
 * @throws RangeError if `maxSize` is not a non-negative integer.
 */
export function rpcBodyLimit(o: BodyLimitOptions): MiddlewareHandler {
  if (!Number.isSafeInteger(o.maxSize) || o.maxSize < 0) throw new RangeError('maxSize must be a non-negative integer')
  const counted = bodyLimit({ maxSize: o.maxSize, onError: o.onError })
  return async (c, next) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
    const headers = incoming?.headers
    if (headers !== undefined && headers['transfer-encoding'] === undefined && headers['content-length'] !== undefined) {
      return Number.parseInt(headers['content-length'], 10) > o.maxSize ? o.onError(c) : next()
    }
    return counted(c, next)
  }
}

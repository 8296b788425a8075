/**
 * CORS for the public read routes (issue 13, docs/auditing.md "Read API"): browser tools on any
 * origin may read a log's checkpoint, tiles, entry bundles, /head, /entries, /lookup, /info, /did
 * and /logs.txt. Every such response carries `Access-Control-Allow-Origin: *` and an OPTIONS
 * preflight is answered 204 with the allowed methods (GET, HEAD) and headers.
 *
 * Never on `POST /rpc` (nor `POST /`), `/metrics`, `/healthz` or `/witness`: appends are UCAN-signed,
 * so CORS there would grant nothing a page could not forge anyway, but no browser tool needs it and
 * keeping it off keeps the write surface exactly what non-browser clients see.
 */
import { cors } from 'hono/cors'
import type { MiddlewareHandler } from 'hono'

/**
 * Response headers a cross-origin script may read beyond the CORS-safelisted ones (Cache-Control,
 * Content-Length, Content-Type, Expires, Last-Modified, Pragma): Retry-After of a 503, and
 * Content-Encoding for a tool checking what it got.
 */
export const CORS_EXPOSED_HEADERS = ['Retry-After', 'Content-Encoding']

/** How long a browser may cache a preflight answer, seconds. */
export const CORS_PREFLIGHT_MAX_AGE = 86_400

/** The CORS middleware of the public read routes (see the module comment): any origin, GET and HEAD, no credentials. */
export function readCors(): MiddlewareHandler {
  return cors({ origin: '*', allowMethods: ['GET', 'HEAD'], exposeHeaders: CORS_EXPOSED_HEADERS, maxAge: CORS_PREFLIGHT_MAX_AGE })
}

/**
 * The HTTP listener of `ucanlog serve`: @hono/node-server's `serve()` (a node:http Server) with
 * bounded connections and request timeouts, so that slow or idle clients cannot hold descriptors
 * the service needs. A connection over a cap is closed as soon as it is accepted.
 */
import { serve } from '@hono/node-server'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import { clientKey } from './rate-limit.js'

/** Longest wait for a request's complete headers, ms (node:http `headersTimeout`; 408 then close). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
/** Longest wait for a complete request, headers and body, ms (node:http `requestTimeout`; 408 then close). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/** How long an idle keep-alive connection is kept between requests, ms. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000
/** A socket with no bytes in either direction for this long is closed, ms (e.g. a client that never reads its answer). */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000
/** The most connections derived from the descriptor budget when `maxConnections` is not set. */
export const DEFAULT_MAX_CONNECTIONS_CEILING = 4096

/** The bounds of the listener, all resolved (no zeros meaning "derive"). */
export interface ListenerLimits {
  /** Concurrent TCP connections in total (≥ 1); over it, a new connection is closed at once. */
  maxConnections: number
  /** Concurrent connections per client address ({@link clientKey}, ≥ 1); over it, that client's new connection is closed at once. */
  maxConnectionsPerClient: number
  /** See {@link DEFAULT_HEADERS_TIMEOUT_MS} (ms, ≤ requestTimeoutMs). */
  headersTimeoutMs: number
  /** See {@link DEFAULT_REQUEST_TIMEOUT_MS} (ms). */
  requestTimeoutMs: number
  /** See {@link DEFAULT_KEEP_ALIVE_TIMEOUT_MS} (ms). */
  keepAliveTimeoutMs: number
  /** See {@link DEFAULT_IDLE_TIMEOUT_MS} (ms). */
  idleTimeoutMs: number
}

/** Why a connection was closed on arrival: the total cap or its client's cap. */
export type RefusalReason = 'total' | 'per_client'

/**
 * What the listener did with one TCP connection, for observers (tests, metrics): `accepted`
 * (within both caps; counted against them), `refused` on arrival by `reason`'s cap (closed at
 * once), or `closed` (an accepted connection has closed; its place under the caps is free again).
 * `client` is the connection's {@link clientKey}.
 */
export type ConnectionEvent = { kind: 'accepted' | 'closed'; client: string } | { kind: 'refused'; reason: RefusalReason; client: string }

/**
 * The answer to a request whose body had not fully arrived when the answer was made (e.g. a 413
 * refused on its Content-Length): marked `Connection: close` (RFC 9112 §9.6), since the server
 * will not read that body and closes the connection after the answer. Without it a client reuses
 * the keep-alive connection and its next request fails with "other side closed".
 * `incoming`: the node:http request (@hono/node-server passes it as `env.incoming`).
 */
export function closeIfBodyUnread(res: Response, incoming: IncomingMessage | undefined): Response {
  if (incoming === undefined || incoming.complete) return res
  const headers = new Headers(res.headers)
  headers.set('connection', 'close')
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers })
}

/**
 * Listens on `hostname:port` and serves `fetch` with the connection caps and timeouts of `limits`;
 * an answer made before its request's body arrived closes the connection ({@link closeIfBodyUnread}).
 * Resolves once listening.
 * @param onRefused called for each connection closed on arrival (for metrics and logs).
 * @param onConnection called synchronously with each {@link ConnectionEvent}, in order, for each connection.
 * @throws the listener's error (e.g. EADDRINUSE).
 */
export async function listen(opts: {
  fetch: (req: Request, env: unknown) => Response | Promise<Response>
  port: number
  hostname: string
  limits: ListenerLimits
  onRefused?: (reason: RefusalReason, client: string) => void
  onConnection?: (event: ConnectionEvent) => void
}): Promise<Server> {
  const { limits: l } = opts
  const server = serve({
    fetch: async (req, env) => closeIfBodyUnread(await opts.fetch(req, env), (env as { incoming?: IncomingMessage } | undefined)?.incoming),
    port: opts.port,
    hostname: opts.hostname,
    serverOptions: {
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      // Node checks the header/request deadlines on this interval (default 30 s): a fraction of the shortest.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(l.headersTimeoutMs / 4))),
    },
  }) as Server
  server.timeout = l.idleTimeoutMs // no handler for 'timeout': node:http destroys the socket
  server.maxConnections = l.maxConnections // net.Server closes each connection over it on accept ('drop')
  const refuse = (reason: RefusalReason, client: string) => {
    opts.onRefused?.(reason, client)
    opts.onConnection?.({ kind: 'refused', reason, client })
  }
  server.on('drop', (data?: { remoteAddress?: string }) => refuse('total', clientKey(data?.remoteAddress)))

  const perClient = new Map<string, number>()
  // Before node:http's own listener, so a refused socket never gets a parser.
  server.prependListener('connection', (socket: Socket) => {
    const key = clientKey(socket.remoteAddress)
    const n = perClient.get(key) ?? 0
    if (n >= l.maxConnectionsPerClient) {
      socket.destroy()
      refuse('per_client', key)
      return
    }
    perClient.set(key, n + 1)
    opts.onConnection?.({ kind: 'accepted', client: key })
    socket.once('close', () => {
      const left = (perClient.get(key) ?? 1) - 1
      if (left > 0) perClient.set(key, left)
      else perClient.delete(key)
      opts.onConnection?.({ kind: 'closed', client: key })
    })
  })

  await new Promise<void>((ok, fail) => {
    server.once('listening', ok)
    server.once('error', fail)
  })
  return server
}

/** Stops listening and closes every connection still open (slow clients would otherwise hold shutdown for their timeouts). */
export function closeListener(server: Server): Promise<void> {
  return new Promise<void>((ok) => {
    server.close(() => ok())
    server.closeAllConnections()
  })
}

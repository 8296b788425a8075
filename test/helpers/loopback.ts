import type { AddressInfo } from 'node:net'

/** A server the tests start: node's http.Server or what @hono/node-server's `serve` returns. */
interface Closable {
  close(callback: () => void): unknown
}

/**
 * Listens on 127.0.0.1 on an ephemeral port (never a fixed one, never every interface).
 * @returns the base URL, `http://127.0.0.1:<port>`.
 */
export async function listenOnLoopback(server: Closable & { listen(port: number, host: string, ready: () => void): unknown; address(): unknown }): Promise<string> {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Closes `server` and drops its open connections (a keep-alive socket would hold `close` open). */
export function closeServer(server: Closable): Promise<void> {
  return new Promise<void>((ok) => {
    server.close(() => ok())
    ;(server as unknown as { closeAllConnections(): void }).closeAllConnections()
  })
}

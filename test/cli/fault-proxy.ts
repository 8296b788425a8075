/**
 * A fault-injecting HTTP proxy in front of a real ucanlog service, for the journal tests: it
 * forwards every request and, as its mode says, drops the answer of some `POST /rpc` requests
 * after the service has run them (the client sees the connection reset, the append did happen),
 * drops a request unanswered without forwarding it, or refuses a request itself with an HTTP
 * status (the service never sees either). Forged answers: test/helpers/forging-proxy.ts.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/** What the proxy does with the n-th `POST /rpc` request (1-based) and its body. */
export type Fault = (n: number, body: Buffer) => 'pass' | 'drop-answer' | 'drop-request' | { status: number }

/** A running proxy: its URL, how many RPC requests it saw, and `close`. */
export interface FaultProxy {
  url: string
  requests(): number
  /** Changes the fault from now on. */
  setFault(f: Fault): void
  close(): Promise<void>
}

/** Starts a proxy on 127.0.0.1 (port 0) forwarding to `target` (a base URL). */
export async function startFaultProxy(target: string, fault: Fault): Promise<FaultProxy> {
  let n = 0
  let current = fault
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const rpc = req.method === 'POST'
      const action = rpc ? current(++n, body) : 'pass'
      if (action === 'drop-request') {
        req.socket.destroy() // the service never sees it
        return
      }
      if (typeof action === 'object') {
        res.writeHead(action.status, { 'content-type': 'text/plain' }).end(`refused by the fault proxy\n`)
        return
      }
      const headers = { ...req.headers }
      delete headers.host
      fetch(new URL(req.url ?? '/', target), { method: req.method, headers: headers as Record<string, string>, body: rpc ? body : undefined })
        .then(async (answer) => {
          const bytes = Buffer.from(await answer.arrayBuffer())
          if (action === 'drop-answer') {
            req.socket.destroy() // the service ran it; the client never hears
            return
          }
          res.writeHead(answer.status, Object.fromEntries([...answer.headers].filter(([k]) => k !== 'content-length' && k !== 'transfer-encoding' && k !== 'content-encoding')))
          res.end(bytes)
        })
        .catch(() => req.socket.destroy())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => n,
    setFault: (f) => void (current = f),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

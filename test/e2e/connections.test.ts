/**
 * Connections and bodies (issue 8, hole 7): one client address holding hundreds of half-sent
 * requests must not use up the descriptors the service needs, so another address's appends still
 * get through; slow headers and slow bodies are closed within their timeouts; and a connection cap
 * above the descriptor budget is refused at start. Over real TCP on loopback, against the built CLI
 * (a real process under a low `ulimit -n`) or the in-process service.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { type Socket, connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import * as CAR from '@ucanto/transport/car'
import { afterAll, describe, expect, it } from 'vitest'
import { DEFAULT_CONFIG } from '../../src/server/config.js'
import { connectionLimits } from '../../src/server/connection-limits.js'
import { defaultFdReserve } from '../../src/server/fd-budget.js'
import type { ConnectionEvent, RefusalReason } from '../../src/server/listener.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { encodeRequest, type Out } from '../ucan/helpers.js'
import { REPO, spawnCli, spawnServe, startTestService } from './helpers.js'

const children: ChildProcess[] = []
const sockets: Socket[] = []
afterAll(() => {
  for (const s of sockets) s.destroy()
  for (const c of children) c.kill('SIGKILL')
})

/** The attacker's address: Linux routes all of 127/8 to lo, so this is a second client address. */
const ATTACKER = '127.0.0.2'
/** A descriptor limit low enough that 400 connections would use it all up. */
const NOFILE = 256

/**
 * Opens a TCP connection from `localAddress` and sends part of a request: its headers never end
 * (`headers`), or its headers end but the body never does (`body`). Resolves once connected (or
 * refused) with the socket and whether the server has closed it yet.
 */
function halfSent(port: number, kind: 'headers' | 'body', localAddress = ATTACKER): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve) => {
    let closed = false
    const socket = tcpConnect({ host: '127.0.0.1', port, localAddress })
    sockets.push(socket)
    socket.on('error', () => {})
    socket.resume() // read what the server sends, so its close is seen
    socket.on('close', () => {
      closed = true
      resolve({ socket, closed: () => closed })
    })
    socket.on('connect', () => {
      socket.write(
        kind === 'headers'
          ? 'POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.ipld.car\r\n'
          : 'POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 100000\r\n\r\nabc',
      )
      resolve({ socket, closed: () => closed })
    })
  })
}

/**
 * Polls `done` (every 10 ms) until it holds; fails naming `what` after a generous `timeoutMs`. For
 * conditions that must come true (a verdict, a close), never for "nothing happened".
 */
async function waitFor(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** The listener's connection events (ServiceHooks.onConnection), tallied per client address. */
function connectionEvents(): { hook: (e: ConnectionEvent) => void; tally(client: string): { accepted: number; closed: number } & Record<RefusalReason, number>; decided(client: string): number } {
  const events: ConnectionEvent[] = []
  const tally = (client: string) => {
    const t = { accepted: 0, closed: 0, total: 0, per_client: 0 }
    for (const e of events) if (e.client === client) e.kind === 'refused' ? t[e.reason]++ : t[e.kind]++
    return t
  }
  return {
    hook: (e) => void events.push(e),
    tally,
    /** Connections from `client` the listener has accepted or refused so far. */
    decided: (client) => {
      const t = tally(client)
      return t.accepted + t.total + t.per_client
    },
  }
}

/** POSTs one CAR request to /rpc on a fresh connection (no pooled keep-alive socket), with a deadline. */
function postOnce(url: string, req: { headers: Record<string, string>; body: Uint8Array }, timeoutMs: number): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const r = request(`${url}/rpc`, { method: 'POST', agent: false, headers: { ...req.headers, connection: 'close' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: new Uint8Array(Buffer.concat(chunks)) }))
      res.on('error', reject)
    })
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    r.on('error', reject)
    r.end(req.body)
  })
}

/** The `out` of the one receipt in an RPC answer, or a description of why there is none. */
async function appendOut(url: string, did: string, agent: API.Signer, space: API.Signer<API.DIDKey>, entry: string): Promise<Out | string> {
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent })
  try {
    const res = await postOnce(url, await encodeRequest([(await inv.buildIPLDView()) as unknown as API.Invocation]), 8_000)
    if (res.status !== 200) return `HTTP ${res.status}: ${new TextDecoder().decode(res.body).slice(0, 200)}`
    const message = (await CAR.response.decode(res as never)) as API.AgentMessage
    const [receipt] = [...message.receipts.values()]
    return receipt!.out as Out
  } catch (err) {
    return `request failed: ${(err as Error).message}`
  }
}

describe('connection caps and the descriptor budget', () => {
  it('one address holding 400 half-sent requests (headers and bodies never finished) does not keep another address out', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-conn-'))
    try {
      // Default connection caps: they come from the descriptor budget of this low limit, once 16 open
      // logs (not the default 256, whose reserve alone exceeds 256 descriptors) are set aside. The
      // header and request timeouts are far beyond this test's length, so only the caps close
      // connections while it runs (the timeouts have their own test below).
      const { url, did, child } = await spawnServe(
        ['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt'), '--headers-timeout', '300000', '--request-timeout', '300000'],
        'inherit',
        { nofile: NOFILE, env: { UCANLOG_MAX_OPEN_LOGS: '16' } },
      )
      // What the server derives from that budget: the attacker's address may hold this many.
      const perClient = connectionLimits({ ...DEFAULT_CONFIG, maxOpenLogs: 16 }, { soft: NOFILE, source: 'test' }, defaultFdReserve(16 + 1)).maxConnectionsPerClient
      children.push(child)
      const port = Number(new URL(url).port)
      // A client already connected (a pooled keep-alive connection) before the attack starts.
      const agent = await generateKey()
      const pooled = connect(`${url}/rpc`, did as API.DID)
      const pooledAppend = async (space: API.Signer<API.DIDKey>, entry: string): Promise<Out | string> => {
        const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent: await delegateSpaceToAgent({ space, agent }) })
        try {
          return (await pooled.execute(inv))[0]!.out as Out
        } catch (err) {
          return `request failed: ${(err as Error).message}`
        }
      }
      expect(await pooledAppend(await generateKey(), 'before')).toHaveProperty('ok')

      const attack = await Promise.all(Array.from({ length: 400 }, (_, i) => halfSent(port, i % 2 ? 'body' : 'headers')))
      // Wait until the server has refused all it will: the attacker keeps at most its per-client cap
      // (a connection the server has not yet accepted still looks open, so this only counts down).
      await waitFor(() => attack.filter((a) => !a.closed()).length <= perClient, `${ATTACKER} holds at most ${perClient} connections`, 20_000)
      const held = attack.filter((a) => !a.closed()).length

      // Another address appends, each to a new space (a new log: new descriptors) and to one space
      // again, on new connections and on the connection it already had.
      const spaces = await Promise.all(Array.from({ length: 4 }, () => generateKey()))
      const outs: (Out | string)[] = []
      for (const [i, space] of [...spaces, spaces[0]!].entries()) outs.push(await appendOut(url, did, agent, space, `entry ${i}`))
      for (const i of [0, 1, 2]) outs.push(await pooledAppend(await generateKey(), `pooled ${i}`))
      const failures = outs.filter((o) => typeof o === 'string' || !o.ok)
      expect(failures, `appends from 127.0.0.1 while ${ATTACKER} holds ${held} of 400 connections`).toEqual([])
      // The attacker's address holds no more than its share; the rest were closed at once.
      expect(held, 'connections the attacker still holds').toBeLessThan(NOFILE / 4)
      expect(held, 'connections the attacker still holds').toBe(perClient)
      child.kill('SIGKILL')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 30_000)

  it('refuses at start a connection cap above the descriptor budget, saying what to do', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-conn-'))
    try {
      const child = spawnCli(['serve', '--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt'), '--max-connections', '1000'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        nofile: NOFILE,
      })
      children.push(child)
      let stdout = ''
      let stderr = ''
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
      expect(stdout).not.toMatch(/serving on/)
      expect(code).toBe(1)
      expect(stderr).toMatch(/--max-connections \/ UCANLOG_MAX_CONNECTIONS/)
      expect(stderr).toMatch(/ulimit -n/)
      expect(stderr).toMatch(new RegExp(`\\b${NOFILE}\\b`)) // the limit it found
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 20_000)
})

describe('connection caps', () => {
  it('closes at once a client\'s connection over its cap, and any connection over the total; other addresses are served', async () => {
    // The listener's verdicts, seen in-process: asking /metrics would itself take a connection.
    const seen = connectionEvents()
    const svc = await startTestService({ maxConnections: 6, maxConnectionsPerClient: 3 }, { onConnection: seen.hook })
    try {
      const port = Number(new URL(svc.url).port)
      const first = await Promise.all(Array.from({ length: 5 }, () => halfSent(port, 'headers')))
      await waitFor(() => seen.decided(ATTACKER) === 5, `the listener decided on the 5 connections from ${ATTACKER}`)
      expect(seen.tally(ATTACKER)).toMatchObject({ accepted: 3, per_client: 2, total: 0 }) // the two over 3
      await waitFor(() => first.filter((c) => c.closed()).length >= 2, 'the two refused connections are closed at the client')
      expect(first.filter((c) => c.closed()).length).toBe(2)
      // Another address is unaffected by 127.0.0.2's cap…
      const other = await Promise.all(Array.from({ length: 3 }, () => halfSent(port, 'headers', '127.0.0.3')))
      await waitFor(() => seen.decided('127.0.0.3') === 3, 'the listener decided on the 3 connections from 127.0.0.3')
      expect(seen.tally('127.0.0.3')).toMatchObject({ accepted: 3, per_client: 0, total: 0 })
      expect(other.map((c) => c.closed())).toEqual([false, false, false])
      // …but the total (6) is now reached: any further connection is closed on arrival.
      const over = await halfSent(port, 'headers', '127.0.0.4')
      await waitFor(() => seen.decided('127.0.0.4') === 1, 'the listener decided on the connection from 127.0.0.4')
      expect(seen.tally('127.0.0.4')).toMatchObject({ accepted: 0, per_client: 0, total: 1 })
      await waitFor(() => over.closed(), 'the connection over the total is closed at the client')
      for (const c of [...first, ...other]) c.socket.destroy()
      // The server has seen the six it held close, so /metrics gets a place under the total.
      await waitFor(() => seen.tally(ATTACKER).closed + seen.tally('127.0.0.3').closed === 6, 'the server saw the 6 accepted connections close')
      const metrics = await (await fetch(`${svc.url}/metrics`)).text()
      expect(metrics).toMatch(/ucanlog_connections_refused_total\{cap="per_client"\} 2/)
      expect(metrics).toMatch(/ucanlog_connections_refused_total\{cap="total"\} 1/)
    } finally {
      for (const s of sockets) s.destroy()
      await svc.stop()
    }
  })
})

describe('slow requests', () => {
  it('closes a slow-headers, a slow-body and an idle connection within the configured timeouts', async () => {
    const svc = await startTestService({ headersTimeoutMs: 500, requestTimeoutMs: 1000, idleTimeoutMs: 1000, keepAliveTimeoutMs: 500, witnessTimeoutMs: 200 })
    try {
      const port = Number(new URL(svc.url).port)
      // Each keeps sending one byte every 100 ms, so only the header/request deadline can close it.
      const drip = (kind: 'headers' | 'body') =>
        halfSent(port, kind, '127.0.0.1').then(({ socket, closed }) => {
          const t = setInterval(() => (closed() ? clearInterval(t) : socket.write(kind === 'headers' ? 'x' : 'y')), 100)
          return { socket, closed }
        })
      const conns = { headers: await drip('headers'), body: await drip('body'), idle: await openIdle(port) }
      const deadline = Date.now() + 8_000 // generous: each must close within its 0.5–1 s bound plus the check interval
      while (Date.now() < deadline && !Object.values(conns).every((c) => c.closed())) await new Promise((r) => setTimeout(r, 50))
      expect({ headers: conns.headers.closed(), body: conns.body.closed(), idle: conns.idle.closed() }).toEqual({ headers: true, body: true, idle: true })
      // The service still answers.
      expect((await fetch(`${svc.url}/healthz`)).status).toBe(200)
    } finally {
      for (const s of sockets) s.destroy()
      await svc.stop()
    }
  }, 20_000)
})

/** A connection that sends nothing at all. */
function openIdle(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve) => {
    let closed = false
    const socket = tcpConnect({ host: '127.0.0.1', port })
    sockets.push(socket)
    socket.on('error', () => {})
    socket.on('close', () => (closed = true))
    socket.resume() // read what the server sends, so its close is seen
    socket.on('connect', () => resolve({ socket, closed: () => closed }))
  })
}

/**
 * Forwarding appends to the instance holding their log (src/server/forward.ts): the client address
 * of a forwarded request is trusted only with a valid MAC under the key the instances share; a
 * request with a valid MAC runs where it arrives and is never forwarded again; a forged address
 * is ignored; an unreachable holder (dead) means the request runs here; a request that is not a
 * single log's appends (or only `ucan/revoke`s, which go to the revocation log's holder) is never
 * forwarded; requests waiting while this instance takes a log that another instance won the race
 * for are forwarded to the winner, not run here after it lets go.
 */
import { Message } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import { describe, expect, it } from 'vitest'
import type { RpcHandler } from '../../src/server/app.js'
import { FORWARDED_FOR, FORWARD_MAC, forwardingRpc } from '../../src/server/forward.js'
import { appendInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, readInvocation, revokeInvocation } from '../../src/ucan/index.js'

type Req = Parameters<RpcHandler['request']>[0]

/** A request body of one `tlog/append` (or `tlog/read`, or `ucan/revoke`, or the revoke and the append together) invocation to a fresh space. */
async function request(can: 'append' | 'read' | 'revoke' | 'revoke+append' = 'append'): Promise<{ req: Req; space: string }> {
  const space = await generateKey()
  const agent = await generateKey()
  const service = await generateKey()
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const append = () => appendInvocation({ agent, service: service.did() as never, space: space.did(), entry: new TextEncoder().encode('x'), spaceToAgent })
  const revoke = async () =>
    revokeInvocation({ issuer: agent, service: service.did() as never, ucan: await delegateAgentToService({ agent, service: service.did() as never, proofs: [spaceToAgent] }) }).delegate()
  const invs =
    can === 'append' ? [await append()] : can === 'read' ? [readInvocation({ issuer: agent, service: service.did() as never, space: space.did() })] : can === 'revoke' ? [await revoke()] : [await revoke(), await append()]
  const enc = CAR.request.encode(await Message.build({ invocations: invs as never }))
  return { req: { headers: enc.headers as Record<string, string>, body: enc.body, client: '198.51.100.7' }, space: space.did() }
}

/** An instance: its inner handler records the client of every request it runs. */
function instance(secret: Uint8Array, o: { holder?: string; fetch?: typeof fetch; open?: boolean; revocationLog?: string }) {
  const ran: (string | undefined)[] = []
  const asked: string[] = []
  const rpc: RpcHandler = {
    request(req) {
      ran.push(req.client)
      return { status: 200, headers: { 'content-type': 'text/plain' }, body: new TextEncoder().encode('ran') }
    },
  }
  const handler = forwardingRpc({
    rpc,
    secret,
    otherHolder: async (id) => {
      asked.push(id)
      return o.holder === undefined ? undefined : { holder: 'other', url: o.holder }
    },
    openHere: () => o.open ?? false,
    hold: async () => () => {},
    timeoutMs: 1000,
    fetch: o.fetch,
    ...(o.revocationLog !== undefined && { revocationLog: o.revocationLog }),
  })
  return { handler, ran, asked }
}

const SECRET = new Uint8Array(32).fill(3)

describe('forwarding appends between instances', () => {
  it("forwards to the holder with the client's address vouched by a MAC; the holder runs it as the client's and never forwards it again", async () => {
    // b believes a holds the log (as after a race): with a valid MAC it must not send it back.
    const b = instance(SECRET, { holder: 'http://a.internal' })
    const sent: Request[] = []
    const a = instance(SECRET, {
      holder: 'http://b.internal',
      fetch: (async (url: string, init: RequestInit) => {
        const r = new Request(url, init)
        sent.push(r.clone())
        const res = await b.handler.request({ headers: Object.fromEntries(r.headers), body: new Uint8Array(await r.arrayBuffer()), client: '10.0.0.2' })
        return new Response(res.body, { status: res.status ?? 200, headers: res.headers })
      }) as typeof fetch,
    })
    const { req, space } = await request()
    const res = await a.handler.request(req)
    expect(new TextDecoder().decode(res.body)).toBe('ran')
    expect(sent.map((r) => r.url)).toEqual(['http://b.internal/rpc'])
    expect(a.asked).toEqual([space])
    expect(a.ran).toEqual([]) // not run at the forwarder
    expect(b.ran).toEqual(['198.51.100.7']) // the client's address, not the forwarding instance's
    expect(b.asked).toEqual([]) // never forwarded again
  })

  it('ignores a forged forwarded-for header (no valid MAC): the address stays the socket one', async () => {
    const b = instance(SECRET, {})
    const { req } = await request()
    await b.handler.request({ ...req, headers: { ...req.headers, [FORWARDED_FOR]: '203.0.113.9', [FORWARD_MAC]: '00'.repeat(32) } })
    // A MAC under another secret (another service's instances) is no better.
    const other = instance(new Uint8Array(32).fill(4), {
      holder: 'http://b.internal',
      fetch: (async (_url: string, init: RequestInit) => {
        const headers = Object.fromEntries(new Headers(init.headers))
        const res = await b.handler.request({ headers, body: init.body as Uint8Array, client: '10.0.0.3' })
        return new Response(res.body, { status: res.status ?? 200, headers: res.headers })
      }) as typeof fetch,
    })
    await other.handler.request(req)
    expect(b.ran).toEqual(['198.51.100.7', '10.0.0.3'])
  })

  it('runs the request here when the holder cannot be reached (it died), and never forwards what is not one log\'s appends', async () => {
    const a = instance(SECRET, {
      holder: 'http://dead.internal',
      fetch: (async () => {
        throw new TypeError('fetch failed')
      }) as typeof fetch,
    })
    const { req } = await request()
    expect(new TextDecoder().decode((await a.handler.request(req)).body)).toBe('ran')
    const read = await request('read')
    const asked = a.asked.length
    await a.handler.request(read.req)
    expect(a.asked.length).toBe(asked) // a read is never looked up nor forwarded
    expect(a.ran.length).toBe(2)
  })

  it("sends ucan/revoke requests to the revocation log's holder; a revoke mixed with an append, or without a revocation log, runs here", async () => {
    const sent: string[] = []
    const a = instance(SECRET, {
      holder: 'http://b.internal',
      revocationLog: 'service:revocations',
      fetch: (async (url: string) => {
        sent.push(url)
        return new Response('ran at b', { status: 200 })
      }) as typeof fetch,
    })
    const res = await a.handler.request((await request('revoke')).req)
    expect(new TextDecoder().decode(res.body)).toBe('ran at b')
    expect(a.asked).toEqual(['service:revocations'])
    expect(sent).toEqual(['http://b.internal/rpc'])
    expect(a.ran).toEqual([])
    await a.handler.request((await request('revoke+append')).req)
    expect(a.asked).toEqual(['service:revocations']) // not looked up: runs here
    expect(a.ran).toHaveLength(1)
    const c = instance(SECRET, { holder: 'http://b.internal' })
    await c.handler.request((await request('revoke')).req)
    expect([c.asked, c.ran]).toEqual([[], ['198.51.100.7']])
  })

  it('forwards the requests waiting while this instance takes a log another instance won the race for, instead of taking the log back when the winner lets go (no lease ping-pong)', async () => {
    // Two instances raced for a new log; b won. a's first request saw no holder yet and waits to
    // take the log; the next ones find a taking it. Injected: b lets the log go after 1 s (idle,
    // since every client waits on a), and then a's wait ends with the lease taken.
    let holderKnown = false
    let taking = false
    const forwarded: string[] = []
    const ran: (string | undefined)[] = []
    let released = 0
    let holds = 0
    let letGo: (() => void) | undefined
    const held = new Promise<void>((ok) => (letGo = ok))
    const timer = setTimeout(() => letGo!(), 1000)
    const a = forwardingRpc({
      rpc: {
        request(req) {
          ran.push(req.client)
          return { status: 200, headers: { 'content-type': 'text/plain' }, body: new TextEncoder().encode('ran at a') }
        },
      },
      secret: SECRET,
      otherHolder: async () => {
        const known = holderKnown
        holderKnown = true // b's lease row is there from the second look on
        return known ? { holder: 'b', url: 'http://b.internal' } : undefined
      },
      openHere: () => taking, // as the log manager answers while a log is opening
      hold: async () => {
        taking = true
        holds++
        await held
        return () => void released++
      },
      timeoutMs: 1000,
      fetch: (async (url: string) => {
        forwarded.push(url)
        return new Response('ran at b', { status: 200, headers: { 'content-type': 'text/plain' } })
      }) as typeof fetch,
    })
    const { req } = await request()
    const first = a.request(req)
    while (!taking) await new Promise((ok) => setTimeout(ok, 5))
    const second = a.request(req)
    const answers = await Promise.all([first, second])
    // a is still taking the log (its wait goes on alone): a request arriving now goes to b at once.
    answers.push(await a.request(req))
    clearTimeout(timer)
    letGo!()
    await new Promise((ok) => setTimeout(ok, 0))
    expect(answers.map((r) => new TextDecoder().decode(r.body))).toEqual(['ran at b', 'ran at b', 'ran at b'])
    expect(ran).toEqual([]) // nothing run at a: the log stays with b
    expect(forwarded).toEqual(['http://b.internal/rpc', 'http://b.internal/rpc', 'http://b.internal/rpc'])
    expect(holds).toBe(1) // only the first request waited to take the log
    expect(released).toBe(1) // the lease a took meanwhile is let go at once
  })
})

// One role of bench/attack.js, in its own process and bound to its own loopback address (Linux
// routes all of 127/8 to lo), so per-address limits see distinct clients. Roles:
//   legit    an honest agent appending at a steady rate, one invocation per request, then checking
//            that every acknowledged entry is at its index
//   replay   resends one of the honest agent's signed bodies as fast as it can
//   forged   64 appends per request, each signed with a key other than its issuer's
//   bomb     proof-graph bombs: an invocation whose proofs list the next proof twice (depth 24), and
//            an nb.delegation whose zero-capability proofs list the next one 20 times (depth 6)
//   reads    appends 64 KiB entries to its own space, then 64 tlog/read of 1000 entries per request
//   creator  fresh keys creating logs (tlog/create), then anonymous checkpoint GETs of them
//   slow     holds hundreds of half-sent requests open, reopening any the server closes
//   revoke   fresh keys revoking UCANs of their own
// Every role reports { role, requests, statuses, ... } to the parent over IPC when told to stop.
import http from 'node:http'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { CAR, Message, UCAN } from '@ucanto/core'
import * as Transport from '@ucanto/transport/car'
import * as dagCBOR from '@ipld/dag-cbor'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { base64 } from 'multiformats/bases/base64'
import * as Link from 'multiformats/link'
import {
  appendInvocation,
  createInvocation,
  delegateAgentToService,
  delegateSpaceToAgent,
  generateKey,
  readInvocation,
  revokeInvocation,
} from '../dist/src/ucan/index.js'

const [role, url, serviceDID, localAddress, rateArg] = process.argv.slice(2)
const target = new URL(url)
let stopping = false
const statuses = {}
let requests = 0
const count = (k) => (statuses[k] = (statuses[k] ?? 0) + 1)
const now = () => Math.floor(Date.now() / 1000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
// The honest agent never waits for a pooled socket (its latency is the server's); attackers use 16.
const agentOptions = { keepAlive: true, maxSockets: role === 'legit' ? Infinity : 16, localAddress }
const agent = new http.Agent(agentOptions)
/** Longest wait for one answer, ms (5× the 2 s latency goal); a request past it counts as `timeout`. */
const REQUEST_TIMEOUT_MS = 10_000

/** POST a CAR body to /rpc from this role's address; resolves { status, body } (body bytes). */
function post(req, path = '/rpc') {
  return new Promise((resolve) => {
    const r = http.request(
      { host: target.hostname, port: target.port, path, method: 'POST', headers: { ...req.headers, 'content-length': req.body.length }, agent },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: new Uint8Array(Buffer.concat(chunks)) }))
        res.on('error', () => resolve({ status: 'reset' }))
      },
    )
    r.on('error', (e) => resolve({ status: e.code ?? 'error' }))
    // A frozen server (the code before issue 8, under a proof bomb) must not hang the bench: a wall
    // clock, since a socket's own timeout starts only once connected (a full backlog never connects).
    const timer = setTimeout(() => {
      resolve({ status: 'timeout' })
      r.destroy()
    }, REQUEST_TIMEOUT_MS)
    r.on('close', () => clearTimeout(timer))
    r.end(Buffer.from(req.body))
  })
}

function get(path) {
  return new Promise((resolve) => {
    const r = http
      .get({ host: target.hostname, port: target.port, path, agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode))
      })
      .on('error', (e) => resolve(e.code ?? 'error'))
    const timer = setTimeout(() => {
      resolve('timeout')
      r.destroy()
    }, REQUEST_TIMEOUT_MS)
    r.on('close', () => clearTimeout(timer))
  })
}

async function encode(invocations) {
  return Transport.outbound.encode(await Message.build({ invocations }))
}

/** The receipts' outcomes of a 200 response, in order: { ok } or { error: { name } }. */
async function outcomes(res) {
  if (res.status !== 200) return []
  const message = await Transport.outbound.decode({ headers: { 'content-type': res.headers['content-type'] }, body: res.body })
  return [...message.receipts.values()].map((r) => r.out)
}

async function send(invocations) {
  requests++
  const res = await post(await encode(invocations))
  count(res.status)
  for (const out of await outcomes(res)) count(out.ok ? 'ok' : out.error?.name ?? 'error')
  return res
}

/** Runs `n` loops of `step` until told to stop. */
async function loops(n, step) {
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (!stopping) await step()
    }),
  )
}

async function writer() {
  const space = await generateKey()
  const agentKey = await generateKey()
  const spaceToAgent = await delegateSpaceToAgent({ space, agent: agentKey })
  const agentToService = await delegateAgentToService({ agent: agentKey, service: serviceDID, proofs: [spaceToAgent], space: space.did() })
  return { space, agentKey, agentToService }
}

/** A signer that claims `claimed`'s DID but signs with `actual`'s key. */
function impostorOf(claimed, actual) {
  return {
    did: () => claimed.did(),
    toDIDKey: () => claimed.did(),
    sign: (payload) => actual.sign(payload),
    signatureAlgorithm: actual.signatureAlgorithm,
    signatureCode: actual.signatureCode,
    verifier: claimed.verifier,
  }
}

// ---- roles ----

async function legit() {
  const rate = Number(rateArg ?? 20)
  const w = await writer()
  const acked = []
  const latencies = []
  let first = true
  const inflight = new Set()
  const t0 = Date.now()
  for (let i = 0; !stopping; i++) {
    const due = t0 + (i * 1000) / rate
    if (due > Date.now()) await sleep(due - Date.now())
    const entry = `legit ${i} ${randomBytes(4).toString('hex')}`
    const inv = await appendInvocation({ agent: w.agentKey, service: serviceDID, space: w.space.did(), entry: new TextEncoder().encode(entry), agentToService: w.agentToService })
    const req = await encode([inv])
    if (first) {
      process.send({ type: 'replay-body', headers: req.headers, body: Buffer.from(req.body).toString('base64') })
      first = false
    }
    const p = (async () => {
      const start = performance.now()
      requests++
      const res = await post(req)
      const [out] = await outcomes(res)
      latencies.push(performance.now() - start)
      count(out ? (out.ok ? 'ok' : out.error?.name ?? 'error') : res.status)
      if (out?.ok) acked.push({ index: out.ok.index, entry })
    })()
    inflight.add(p)
    p.finally(() => inflight.delete(p))
  }
  await Promise.all(inflight)
  // Every acknowledged entry must be in the log at its index (read back through tlog/read).
  let lost = 0
  const byIndex = new Map(acked.map((a) => [a.index, a.entry]))
  const max = Math.max(-1, ...byIndex.keys())
  const seen = new Map()
  for (let offset = 0; offset <= max; ) {
    const inv = readInvocation({ issuer: w.agentKey, service: serviceDID, space: w.space.did(), offset, limit: 1000 })
    const res = await post(await encode([inv]))
    const [out] = await outcomes(res)
    if (!out?.ok) return { acked: acked.length, lost: NaN, readBack: `failed: ${res.status} ${out?.error?.name ?? ''}`, ...quantiles(latencies) }
    out.ok.entries.forEach((e, i) => seen.set(offset + i, Buffer.from(e, 'base64').toString()))
    if (out.ok.entries.length === 0) break
    offset += out.ok.entries.length
  }
  for (const [index, entry] of byIndex) if (seen.get(index) !== entry) lost++
  return { acked: acked.length, lost, ...quantiles(latencies) }
}

/** p50, p99 and max of `ms` (NaN when empty). */
function quantiles(ms) {
  const sorted = [...ms].sort((a, b) => a - b)
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
  return { p50: q(0.5), p99: q(0.99), max: sorted.at(-1) ?? NaN }
}

async function replay() {
  const body = await new Promise((resolve) => process.on('message', (m) => m.type === 'replay-body' && resolve(m)))
  const req = { headers: body.headers, body: new Uint8Array(Buffer.from(body.body, 'base64')) }
  await loops(8, async () => {
    requests++
    const res = await post(req)
    count(res.status)
    for (const out of await outcomes(res)) count(out.ok ? 'ok' : out.error?.name ?? 'error')
  })
}

async function forged() {
  const w = await writer()
  const other = await generateKey()
  // Signs with `other`'s key while claiming the agent's DID: the signature never verifies.
  const impostor = impostorOf(w.agentKey, other)
  await loops(4, async () => {
    const invs = []
    for (let i = 0; i < 64; i++) {
      invs.push(await appendInvocation({ agent: impostor, service: serviceDID, space: w.space.did(), entry: randomBytes(16), agentToService: w.agentToService }))
    }
    await send(invs)
  })
}

/** A dag-cbor UCAN block per `UCAN.issue` options. */
async function ucanBlock(options) {
  const data = await UCAN.issue(options)
  return UCAN.write(data)
}

/** A CAR agent message executing `invocationCID`, every block once (no exponential export). */
async function rawMessage(invocationCID, blocks) {
  const root = { 'ucanto/message@7.0.0': { execute: [invocationCID] } }
  const bytes = dagCBOR.encode(root)
  const cid = Link.create(dagCBOR.code, await sha256.digest(bytes))
  const all = new Map(blocks.map((b) => [b.cid.toString(), b]))
  return { headers: { 'content-type': 'application/vnd.ipld.car', accept: 'application/vnd.ipld.car' }, body: CAR.encode({ roots: [{ cid, bytes }], blocks: all }) }
}

async function bomb() {
  const service = { did: () => serviceDID }
  let n = 0
  await loops(2, async () => {
    const key = await generateKey()
    const exp = now() + 300
    const blocks = []
    if (n++ % 2 === 0) {
      // Invocation proofs: each proof lists the next one twice → 2^24 paths in 25 blocks.
      let prev = await ucanBlock({ issuer: key, audience: key, capabilities: [{ can: 'tlog/read', with: key.did() }], expiration: exp })
      blocks.push(prev)
      for (let i = 0; i < 24; i++) {
        prev = await ucanBlock({ issuer: key, audience: key, capabilities: [{ can: 'tlog/read', with: key.did() }], proofs: [prev.cid, prev.cid], expiration: exp })
        blocks.push(prev)
      }
      const forgedSig = n % 4 === 1
      const signer = forgedSig ? impostorOf(key, await generateKey()) : key
      const inv = await ucanBlock({ issuer: signer, audience: service, capabilities: [{ can: 'tlog/read', with: key.did(), nb: {} }], proofs: [prev.cid], expiration: exp, nonce: randomBytes(8).toString('hex') })
      blocks.push(inv)
      requests++
      const res = await post(await rawMessage(inv.cid, blocks))
      count(`proofs:${res.status}`)
      for (const out of await outcomes(res)) count(out.ok ? 'proofs:ok' : `proofs:${out.error?.name}`)
    } else {
      // nb.delegation: Agent→Service whose zero-capability proofs list the next one 20 times.
      let prev = await ucanBlock({ issuer: key, audience: key, capabilities: [], expiration: exp })
      blocks.push(prev)
      for (let i = 0; i < 5; i++) {
        prev = await ucanBlock({ issuer: key, audience: key, capabilities: [], proofs: Array(20).fill(prev.cid), expiration: exp })
        blocks.push(prev)
      }
      const caps = ['space/blob/add', 'space/index/add', 'upload/add'].map((can) => ({ can, with: key.did() }))
      const top = await ucanBlock({ issuer: key, audience: service, capabilities: caps, proofs: Array(20).fill(prev.cid), expiration: exp })
      blocks.push(top)
      const rootBytes = dagCBOR.encode({ 'ucan@0.9.1': top.cid })
      const rootCID = Link.create(dagCBOR.code, await sha256.digest(rootBytes))
      const archive = CAR.encode({ roots: [{ cid: rootCID, bytes: rootBytes }], blocks: new Map(blocks.map((b) => [b.cid.toString(), b])) })
      const delegation = Link.create(0x0202, identity.digest(archive)).toString(base64)
      const inv = await ucanBlock({
        issuer: key,
        audience: service,
        capabilities: [{ can: 'tlog/append', with: key.did(), nb: { data: 'YQ==', delegation } }],
        expiration: exp,
        nonce: randomBytes(8).toString('hex'),
      })
      requests++
      const res = await post(await rawMessage(inv.cid, [inv]))
      count(`delegation:${res.status}`)
      for (const out of await outcomes(res)) count(out.ok ? 'delegation:ok' : `delegation:${out.error?.name}`)
    }
  })
}

async function reads() {
  const w = await writer()
  for (let i = 0; i < 64 && !stopping; i++) {
    const inv = await appendInvocation({ agent: w.agentKey, service: serviceDID, space: w.space.did(), entry: randomBytes(60_000), agentToService: w.agentToService })
    await send([inv])
  }
  let bytes = 0
  await loops(4, async () => {
    const invs = Array.from({ length: 64 }, () => readInvocation({ issuer: w.agentKey, service: serviceDID, space: w.space.did(), offset: 0, limit: 1000 }))
    requests++
    const res = await post(await encode(invs))
    count(res.status)
    bytes += res.body?.length ?? 0
  })
  return { responseBytes: bytes }
}

async function creator() {
  const created = []
  await loops(8, async () => {
    const w = await writer()
    const inv = await createInvocation({ agent: w.agentKey, service: serviceDID, space: w.space.did(), agentToService: w.agentToService })
    await send([inv])
    created.push(w.space.did())
    // Anonymous reads of logs made earlier, as a crawler would after a restart.
    const pick = created[Math.floor(Math.random() * created.length)]
    count(`GET checkpoint ${await get(`/logs/${pick}/checkpoint`)}`)
  })
  return { logsAttempted: created.length }
}

async function slow() {
  let open = 0
  let opened = 0
  const keep = () => {
    if (stopping) return
    const s = net.connect({ host: target.hostname, port: Number(target.port), localAddress })
    opened++
    open++
    s.on('connect', () => s.write(`POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 100000\r\n`))
    s.on('error', () => {})
    s.resume() // read (and drop) the server's 408, so its close is seen
    s.on('close', () => {
      open--
      count('closed by server')
      setTimeout(keep, 100)
    })
  }
  for (let i = 0; i < 400; i++) keep()
  while (!stopping) await sleep(200)
  requests = opened
  return { stillOpenAtEnd: open }
}

async function revoke() {
  await loops(4, async () => {
    const key = await generateKey()
    const other = await generateKey()
    const ucan = await delegateSpaceToAgent({ space: other, agent: key })
    await send([revokeInvocation({ issuer: key, service: serviceDID, ucan })])
  })
}

const roles = { legit, replay, forged, bomb, reads, creator, slow, revoke }
process.on('message', (m) => {
  if (m.type === 'stop') stopping = true
})
const extra = (await roles[role]()) ?? {}
process.send({ type: 'result', role, requests, statuses, ...extra })
agent.destroy()
process.disconnect()

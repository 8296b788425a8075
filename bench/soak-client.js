// The client half of bench/soak.js, in its own process (its CPU and event loop its own): one space,
// one agent, an open loop of `tlog/append` requests at a steady rate, one invocation per request,
// each with its own Agent→Service delegation and nonce (as bench/throughput-client.js signs them),
// signed when its send time comes.
//
// Retries as the real client does: an append that got no answer (connection refused or reset, no
// response within the client timeout, BENCH_SOAK_CLIENT_TIMEOUT_MS, default 30 s) or a "nothing ran" answer (HTTP 429 / 503) is sent again with
// the *same* signed request bytes (same invocation CID), after a pause, until it is answered or the
// give-up time has passed. An entry counts as acknowledged only on an ok receipt (its index); a
// receipt error (e.g. StorageFull) or another HTTP status is a final refusal, counted by name.
//
// Driven over IPC by bench/soak.js:
//   { cmd: 'init', url, did }        new space + agent keys; answers { space }
//   { cmd: 'one' }                   one append, retried like the others; answers its outcome
//   { cmd: 'run', rate, seconds }    the open loop; pushes { stats } every 5 s; answers, once every
//                                    append is settled, { acked: [[index, entry, sentAt ms, latency ms]], … }
import { Agent, request as httpRequest } from 'node:http'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { delegate, Message } from '@ucanto/core'
import { CAR } from '@ucanto/transport'

const DIST = resolve(process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname)
const U = await import(pathToFileURL(`${DIST}/src/ucan/index.js`).href)

const TIMEOUT_MS = Number(process.env.BENCH_SOAK_CLIENT_TIMEOUT_MS ?? 30_000) // no response this long after the request got its connection: resent
const RETRY_PAUSE_MS = [250, 500, 1000, 2000, 4000, 8000] // pauses before resending after a network error or a timeout, then 8 s each (a 429/503 waits its Retry-After, 0.2–5 s)
const GIVE_UP_S = Number(process.env.BENCH_SOAK_GIVE_UP_S ?? 900) // an append still unanswered this long after its send time is abandoned
const LIFETIME_S = GIVE_UP_S + 300 // every invocation outlives its last resend

// Sockets are capped so a paused server does not make the client open one connection per resend.
const agent = new Agent({ keepAlive: true, maxSockets: Number(process.env.BENCH_SOAK_MAX_SOCKETS ?? 64) })
let target // { url, did, space, agentKey, spaceToAgent }

const caps = (space) => U.STORACHA_ABILITIES.map((can) => ({ can, with: space }))

async function init({ url, did }) {
  const space = U.createFastSigner(await U.generateKey())
  const agentKey = U.createFastSigner(await U.generateKey())
  const exp = U.systemNow() + 24 * 3600
  const spaceToAgent = await delegate({ issuer: space, audience: agentKey, capabilities: caps(space.did()), expiration: exp, nonce: randomBytes(8).toString('hex') })
  target = { url: new URL('/rpc', url), did, space, agentKey, spaceToAgent }
  return { space: space.did() }
}

/** One signed request: an Agent→Service delegation with its own nonce and one append invocation. */
async function sign(entry) {
  const { did, space, agentKey, spaceToAgent } = target
  const exp = U.systemNow() + LIFETIME_S
  const agentToService = await delegate({ issuer: agentKey, audience: { did: () => did }, capabilities: caps(space.did()), proofs: [spaceToAgent], expiration: exp + 5, nonce: randomBytes(8).toString('hex') })
  const inv = await U.appendInvocation({ agent: agentKey, service: did, space: space.did(), entry: new TextEncoder().encode(entry), agentToService, lifetime: LIFETIME_S })
  const { headers, body } = CAR.request.encode(await Message.build({ invocations: [await inv.delegate()] }))
  return { headers, body }
}

/**
 * POSTs the request once. Resolves { ok: { index, published } } | { error: name, final: boolean,
 * wait?: ms }: final for a receipt error or an unexpected status, not final (resend) for a network
 * error, a timeout, a 429 or a 503.
 */
function sendOnce(r) {
  return new Promise((done) => {
    let settled = false
    const finish = (v) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      done(v)
    }
    const req = httpRequest(target.url, { method: 'POST', agent, headers: { ...r.headers, 'content-length': r.body.length } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('error', (err) => finish({ error: err.code ?? 'ResponseError', final: false }))
      res.on('end', async () => {
        if (res.statusCode === 429 || res.statusCode === 503) {
          const after = Number(res.headers['retry-after'] ?? 1)
          return finish({ error: `HTTP ${res.statusCode}`, final: false, wait: Math.min(5000, Math.max(200, after * 1000)) })
        }
        if (res.statusCode !== 200) return finish({ error: `HTTP ${res.statusCode}`, final: true })
        try {
          const message = await CAR.response.decode({ headers: res.headers, body: new Uint8Array(Buffer.concat(chunks)) })
          const receipt = [...message.receipts.values()][0]
          if (receipt?.out.ok) return finish({ ok: receipt.out.ok })
          finish({ error: receipt?.out.error?.name ?? 'NoReceipt', final: true, message: String(receipt?.out.error?.message ?? '').slice(0, 200) })
        } catch (err) {
          finish({ error: `BadResponse`, final: true, message: String(err?.message ?? err).slice(0, 120) })
        }
      })
    })
    // The timeout runs from when the request has a connection (not while it waits for one of the
    // agent's sockets), so a backlog in this client does not turn into resends.
    let timer
    req.once('socket', () => {
      timer = setTimeout(() => {
        finish({ error: 'ClientTimeout', final: false })
        req.destroy()
      }, TIMEOUT_MS)
    })
    req.on('error', (err) => finish({ error: err.code ?? err.message, final: false }))
    req.end(r.body)
  })
}

const counters = () => ({ sent: 0, acked: 0, unpublished: 0, refused: {}, resent: {}, gaveUp: 0, inflight: 0 })
let stats = counters()
const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1)

/** Sends `entry` (scheduled at `at`, performance.now() ms) until answered; resolves the outcome with its latency from `at`. */
async function append(entry, at) {
  stats.sent++
  stats.inflight++
  const r = await sign(entry)
  let network = 0
  const causes = new Set()
  try {
    for (let attempt = 0; ; attempt++) {
      const out = await sendOnce(r)
      if (out.ok) {
        stats.acked++
        if (!out.ok.published) stats.unpublished++
        return { ok: out.ok, latency: performance.now() - at, attempts: attempt + 1 }
      }
      if (out.final) {
        bump(stats.refused, out.error)
        return { error: out.error, message: out.message, latency: performance.now() - at, attempts: attempt + 1, resent: [...causes] }
      }
      bump(stats.resent, out.error)
      causes.add(out.error)
      if (performance.now() - at > GIVE_UP_S * 1000) {
        stats.gaveUp++
        return { error: 'GaveUp', latency: performance.now() - at, attempts: attempt + 1 }
      }
      await new Promise((res) => setTimeout(res, out.wait ?? RETRY_PAUSE_MS[Math.min(network++, RETRY_PAUSE_MS.length - 1)]))
    }
  } finally {
    stats.inflight--
  }
}

async function run({ rate, seconds }) {
  stats = counters()
  const acked = []
  const refused = []
  const lat = []
  const t0 = performance.now()
  const wall0 = Date.now()
  const total = Math.floor(rate * seconds)
  const pending = new Set()
  const push = setInterval(() => process.send({ stats: { t: Date.now() - wall0, ...stats, refused: { ...stats.refused }, resent: { ...stats.resent } } }), 5000)
  const c0 = process.cpuUsage()
  try {
    for (let i = 0; i < total; i++) {
      const at = t0 + (i * 1000) / rate
      const wait = at - performance.now()
      if (wait > 0) await new Promise((res) => setTimeout(res, wait))
      const entry = `soak ${i} ${randomBytes(6).toString('hex')} `.padEnd(100, '.')
      const sentAt = at - t0
      const p = append(entry, at).then((o) => {
        pending.delete(p)
        if (o.ok) acked.push([o.ok.index, entry, sentAt, o.latency, o.attempts])
        else refused.push([entry, sentAt, o.error, sentAt + o.latency, o.attempts, o.message, o.resent])
        lat.push(o.latency)
      })
      pending.add(p)
    }
    process.send({ stats: { t: Date.now() - wall0, ...stats, refused: { ...stats.refused }, resent: { ...stats.resent }, sending: 'done' } })
    while (pending.size) await Promise.race(pending)
  } finally {
    clearInterval(push)
  }
  const cpu = process.cpuUsage(c0)
  return { acked, refused, stats: { ...stats }, wallMs: performance.now() - t0, clientCpuMs: (cpu.user + cpu.system) / 1000 }
}

process.on('message', async (m) => {
  try {
    const out =
      m.cmd === 'init' ? await init(m)
      : m.cmd === 'one' ? await append(`soak warm-up ${randomBytes(6).toString('hex')}`, performance.now())
      : await run(m)
    process.send({ seq: m.seq, ok: out })
  } catch (err) {
    process.send({ seq: m.seq, error: String(err?.stack ?? err) })
  }
})
process.send({ ready: true })

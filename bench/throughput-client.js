// The client half of bench/throughput.js, in its own process (so its CPU is its own and measured):
// pre-signs every request before the timed phases (a fresh Space key per run, one Agent key, an
// Agent→Service delegation with its own nonce per append, a tlog/append invocation per append),
// then sends them over keep-alive HTTP/1.1 when told to, and reports wall time, its own CPU and
// latencies. Driven over IPC by bench/throughput.js and bench/instances.js:
//   { cmd: 'prepare', id, url, did, count, perRequest, spaceProof: 'shared' | 'fresh', spaces?, urls? }
//     spaces (default 1): append i goes to space i mod spaces (each its own Space key);
//     spaceSet: a name; prepares with the same name (and space count) reuse the same Space keys
//       (e.g. a warm-up opens the logs the timed runs append to); default fresh keys per prepare;
//     urls (default [url]): request j is sent to one of them picked by a fixed hash of j
//       (instances of one service behind a load balancer; independent of the space)
//   { cmd: 'run', id, inflight }   closed loop: `inflight` requests in flight until all are sent
//   { cmd: 'open', id, rate }      open loop: request i sent at start + i/rate s, whatever came back
import { Agent, request as httpRequest } from 'node:http'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { delegate, Message } from '@ucanto/core'
import { CAR } from '@ucanto/transport'

const DIST = resolve(process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname)
const U = await import(pathToFileURL(`${DIST}/src/ucan/index.js`).href)
const LIFETIME = 3000 // s: every pre-signed invocation must outlive the whole benchmark

const prepared = new Map()
const spaceSets = new Map()
const agent = new Agent({ keepAlive: true, maxSockets: Infinity })
// BENCH_TP_ADDRESSES (default 1): request j leaves from loopback address 127.0.0.(1 + j mod N), so
// the service sees N client addresses (its per-address turns and limits apply to each), as it would
// N apps; 1 is one app sending everything.
const ADDRESSES = Math.max(1, Number(process.env.BENCH_TP_ADDRESSES ?? 1))
let sent = 0

/** Storacha capabilities on `space`, as delegateSpaceToAgent grants them. */
const caps = (space) => U.STORACHA_ABILITIES.map((can) => ({ can, with: space }))

async function prepare({ id, url, did: serviceDid, count, perRequest, spaceProof, spaces = 1, spaceSet, urls = [url] }) {
  const echo = serviceDid === 'none' // the echo checks nothing: sign for a throwaway service key, same sizes
  const did = echo ? (await U.generateKey()).did() : serviceDid
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const agentKey = U.createFastSigner(await U.generateKey())
  const service = { did: () => did }
  const exp = U.systemNow() + LIFETIME
  const setKey = spaceSet === undefined ? undefined : `${spaceSet}/${spaces}`
  const spaceKeys = spaceSets.get(setKey) ?? []
  for (let s = spaceKeys.length; s < spaces; s++) spaceKeys.push(U.createFastSigner(await U.generateKey()))
  if (setKey !== undefined) spaceSets.set(setKey, spaceKeys)
  const shared = []
  for (const key of spaceKeys) shared.push(await delegate({ issuer: key, audience: agentKey, capabilities: caps(key.did()), expiration: exp + 10, nonce: randomBytes(8).toString('hex') }))
  const invocations = []
  for (let i = 0; i < count; i++) {
    const space = spaceKeys[i % spaces]
    const spaceToAgent = spaceProof === 'fresh'
      ? await delegate({ issuer: space, audience: agentKey, capabilities: caps(space.did()), expiration: exp + 10, nonce: randomBytes(8).toString('hex') })
      : shared[i % spaces]
    // Distinct delegations: Ed25519 is deterministic, so without a nonce every delegation made in
    // the same second would be the same bytes (one CID) and measure a cache, not validation.
    const agentToService = await delegate({ issuer: agentKey, audience: service, capabilities: caps(space.did()), proofs: [spaceToAgent], expiration: exp + 5, nonce: randomBytes(8).toString('hex') })
    const inv = await U.appendInvocation({ agent: agentKey, service: did, space: space.did(), entry: new TextEncoder().encode(`bench ${id} ${i} `.padEnd(100, '.')), agentToService, lifetime: LIFETIME })
    invocations.push(await inv.delegate())
  }
  const requests = []
  for (let i = 0; i < invocations.length; i += perRequest) {
    const batch = invocations.slice(i, i + perRequest)
    const { headers, body } = CAR.request.encode(await Message.build({ invocations: batch }))
    requests.push({ headers, body, n: batch.length, url: new URL('/rpc', urls[pick(requests.length, urls.length)]) })
  }
  prepared.set(id, { requests, echo })
  return { signMs: performance.now() - t0, signCpuMs: cpuMs(c0), count }
}

/** A fixed, evenly spread pick of 0..n-1 for request j (the top bits of a multiplicative hash: independent of j mod spaces). */
const pick = (j, n) => Math.floor(((Math.imul(j + 1, 0x9e3779b1) >>> 0) / 2 ** 32) * n)

function cpuMs(from) {
  const d = process.cpuUsage(from)
  return (d.user + d.system) / 1000
}

/** POSTs one request; resolves the number of invocations answered ok (echo: all, on a 200). */
function send(p, r) {
  return new Promise((resolve, reject) => {
    const localAddress = `127.0.0.${1 + (sent++ % ADDRESSES)}`
    const req = httpRequest(r.url, { method: 'POST', agent, localAddress, headers: { ...r.headers, 'content-length': r.body.length } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('error', reject)
      res.on('end', async () => {
        try {
          if (res.statusCode !== 200) return resolve({ ok: 0, status: res.statusCode })
          if (p.echo) return resolve({ ok: r.n, status: 200 })
          const body = new Uint8Array(Buffer.concat(chunks))
          const message = await CAR.response.decode({ headers: res.headers, body })
          let ok = 0
          for (const receipt of message.receipts.values()) if (receipt.out.ok) ok++
          resolve({ ok, status: 200, error: ok < r.n ? firstError(message) : undefined })
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('error', reject)
    req.end(r.body)
  })
}

function firstError(message) {
  for (const receipt of message.receipts.values()) if (receipt.out.error) return receipt.out.error.name ?? String(receipt.out.error.message).slice(0, 80)
}

const pct = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN

async function run({ id, inflight }) {
  const p = prepared.get(id)
  const lat = []
  const errors = {}
  let ok = 0
  let next = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(inflight, p.requests.length) }, async () => {
    while (next < p.requests.length) {
      const r = p.requests[next++]
      const s = performance.now()
      try {
        const out = await send(p, r)
        ok += out.ok
        if (out.ok < r.n) errors[out.error ?? `HTTP ${out.status}`] = (errors[out.error ?? `HTTP ${out.status}`] ?? 0) + r.n - out.ok
      } catch (err) {
        errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + r.n
      }
      lat.push(performance.now() - s)
    }
  }))
  const wallMs = performance.now() - t0
  lat.sort((a, b) => a - b)
  prepared.delete(id)
  return { wallMs, clientCpuMs: cpuMs(c0), ok, errors, p50: pct(lat, 0.5), p99: pct(lat, 0.99) }
}

async function open({ id, rate }) {
  const p = prepared.get(id)
  const lat = []
  const errors = {}
  let ok = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(p.requests.map(async (r, i) => {
    const at = t0 + (i * 1000) / rate
    const wait = at - performance.now()
    if (wait > 0) await new Promise((res) => setTimeout(res, wait))
    try {
      const out = await send(p, r)
      ok += out.ok
      if (out.ok < r.n) errors[out.error ?? `HTTP ${out.status}`] = (errors[out.error ?? `HTTP ${out.status}`] ?? 0) + r.n - out.ok
    } catch (err) {
      errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + r.n
    }
    lat.push(performance.now() - at) // from the scheduled send: no coordinated omission
  }))
  const wallMs = performance.now() - t0
  lat.sort((a, b) => a - b)
  prepared.delete(id)
  return { wallMs, clientCpuMs: cpuMs(c0), ok, errors, p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.at(-1) }
}

process.on('message', async (m) => {
  try {
    const out = m.cmd === 'prepare' ? await prepare(m) : m.cmd === 'run' ? await run(m) : await open(m)
    process.send({ seq: m.seq, ok: out })
  } catch (err) {
    process.send({ seq: m.seq, error: String(err?.stack ?? err) })
  }
})
process.send({ ready: true })

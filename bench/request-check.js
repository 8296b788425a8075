// A request worker's CPU per append, in one thread, in process (issue 11): what a request worker
// does for each request — request-check.ts `checkRequest` (decode the CAR agent message, every
// check of each `tlog/append` but revocation) and then `encodeResponse` (sign one receipt per
// append, encode the response CAR) — over the same pre-built requests as ucanto's stock path
// (bench/stock-service.js in process, `server.request`: decode, `access()` of the invocation,
// `claim()` of `space/blob/add` over `nb.delegation`, receipts, encode).
//
// Every request holds 16 appends, each with its own invocation and its own Agent→Service
// delegation carrying a nonce (distinct CIDs: no cache hit but the Space→Agent proof by CID, as
// in production). "warm": one Space→Agent proof for every append, verified once per repetition
// before measuring (a worker's cache holds it); "cold": a distinct Space→Agent proof per append.
//
// Figures: process.cpuUsage() (user + system, every thread of the process, V8's GC helpers
// included) per append, not wall clock (the machine is shared); each repetition starts with fresh
// caches and a full GC; ours and stock interleaved; min / median / max over the repetitions.
//
//   npm run bench:request-check
//   BENCH_RC_REQUESTS (requests per repetition, default 32), BENCH_RC_REPS (default 5),
//   BENCH_RC_PER_REQUEST (appends per request, default 16),
//   BENCH_RC_ONLY=ours|stock (one side only, e.g. under --cpu-prof),
//   BENCH_RC_BASE=<another built checkout> (its request-check.ts measured in the same run, interleaved),
//   BENCH_RC_PROFILE=<prefix> (a V8 CPU profile of each measured loop of ours, <prefix>-<n>.cpuprofile:
//   only the measured requests, not their building).
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import inspector from 'node:inspector'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Message, delegate } from '@ucanto/core'
import { CAR } from '@ucanto/transport'
import { createStockServer } from './stock-service.js'

const REQUESTS = Number(process.env.BENCH_RC_REQUESTS ?? 32)
const REPS = Number(process.env.BENCH_RC_REPS ?? 5)
const ONLY = process.env.BENCH_RC_ONLY
const PER_REQUEST = Number(process.env.BENCH_RC_PER_REQUEST ?? 16)
const PROFILE = process.env.BENCH_RC_PROFILE
let profiles = 0
const session = new inspector.Session()
session.connect()
const post = (method, params = {}) => new Promise((res, rej) => session.post(method, params, (err, r) => (err ? rej(err) : res(r))))
if (PROFILE !== undefined) {
  await post('Profiler.enable')
  await post('Profiler.setSamplingInterval', { interval: 100 })
}

v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
/** A full GC, then a pause for V8's background threads (process.cpuUsage counts every thread). */
async function settle() {
  gc()
  await new Promise((r) => setTimeout(r, 200))
}

const nonce = () => randomBytes(12).toString('base64')
const hour = () => Math.floor(Date.now() / 1000) + 3600

/** Loads the ucan modules of the build at `root` (its dist/). */
const load = (root) => import(pathToFileURL(join(root, 'dist/src/ucan/index.js')).href)

/** `REQUESTS` requests of 16 appends (see the header); `cold`: a Space→Agent proof per append. */
async function makeRequests(U, keys, cold, warmProof) {
  const { space, agent, service } = keys
  const caps = U.STORACHA_ABILITIES.map((can) => ({ can, with: space.did() }))
  const spaceProof = () => delegate({ issuer: space, audience: agent, capabilities: caps, expiration: hour() + 86400, nonce: nonce() })
  const requests = []
  for (let r = 0; r < REQUESTS; r++) {
    const invocations = []
    for (let i = 0; i < PER_REQUEST; i++) {
      const proof = cold ? await spaceProof() : warmProof
      const d = await delegate({ issuer: agent, audience: service, capabilities: caps, proofs: [proof], expiration: hour() + 86400, nonce: nonce() })
      const delegation = await U.formatDelegation(d)
      const inv = await U.TlogAppend.invoke({
        issuer: agent,
        audience: service,
        with: space.did(),
        nb: { data: Buffer.from(`entry ${r}.${i} ${nonce()}`).toString('base64'), delegation },
        expiration: Math.floor(Date.now() / 1000) + 3000,
        nonce: nonce(),
      }).delegate()
      invocations.push(inv)
    }
    const encoded = CAR.request.encode(await Message.build({ invocations }))
    requests.push({ headers: { ...encoded.headers }, body: new Uint8Array(encoded.body) })
  }
  return requests
}

/** The wire result the main thread would answer for append `i` (published, 8-hash proof). */
function appendResult(space, i) {
  const hash = Buffer.alloc(32, i % 251).toString('base64')
  return {
    logId: space,
    origin: `example.org/logs/${space}`,
    index: i,
    treeSize: i + 1,
    rootHash: hash,
    checkpoint: `example.org/logs/${space}\n${i + 1}\n${hash}\n\n— example.org/logs AAAAAA==\n— witness BBBBBB==\n`,
    inclusionProof: Array.from({ length: 8 }, () => hash),
    published: true,
  }
}

/** A worker's context (request-worker.ts), fresh caches. */
function workerContext(U, service) {
  return {
    authorize: {
      service,
      principal: U.createPrincipalParser(),
      maxInvocationLifetime: 3600,
      grants: U.createGrantCache(),
      reservedSpaces: new Set(),
    },
    maxInvocations: 64,
  }
}

/** ucanlog's worker half over one request: checkRequest, then encodeResponse of the outcomes. */
async function ours(U, ctx, service, req) {
  const now = Math.floor(Date.now() / 1000)
  const verdicts = await U.checkRequest(req.body, req.headers['content-type'], now, ctx)
  if (verdicts === U.FALLBACK) throw new Error('bench request fell back to the main thread')
  const outcomes = verdicts.map((v, i) => {
    if (v.result.error) throw new Error(`bench append refused: ${v.result.error.name} ${v.result.error.message}`)
    return { cid: v.cid, result: { ok: appendResult(v.result.ok.space, i) } }
  })
  return U.encodeResponse(outcomes, req.headers, service)
}

/** ucanto's stock server of bench/stock-service.js, in process, with fresh state. */
function stockServer(U, signer) {
  return createStockServer({ signer, principal: U.createPrincipalParser(), TlogAppend: U.TlogAppend, result: (space) => appendResult(space, 0) })
}

/** Every receipt of `res` is ok. */
async function checkResponse(res) {
  const message = await CAR.response.decode(res)
  let n = 0
  for (const receipt of message.receipts.values()) {
    if (receipt.out.error) throw new Error(`bench append refused: ${receipt.out.error.name} ${receipt.out.error.message}`)
    n++
  }
  if (n !== PER_REQUEST) throw new Error(`bench response holds ${n} receipts`)
}

/** CPU µs per append of one side over `requests` (fresh state, warmed with `warmup`). */
async function measure(side, U, keys, requests, warmup) {
  const run = side === 'stock' ? ((s) => (req) => s.request(req))(stockServer(U, keys.service)) : ((ctx) => (req) => ours(U, ctx, keys.service, req))(workerContext(U, keys.service))
  // Outside the measurement: a request with the shared Space→Agent proof (a warm worker's cache holds it).
  await checkResponse(await run(warmup))
  await settle()
  const profiling = PROFILE !== undefined && side === 'ours'
  if (profiling) await post('Profiler.start')
  const c0 = process.cpuUsage()
  const responses = []
  for (const req of requests) responses.push(await run(req))
  const c = process.cpuUsage(c0)
  if (profiling) writeFileSync(`${PROFILE}-${++profiles}.cpuprofile`, JSON.stringify((await post('Profiler.stop')).profile))
  for (const res of responses) await checkResponse(res)
  return (c.user + c.system) / (requests.length * PER_REQUEST)
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] }
}

const roots = [['ucanlog (this checkout)', resolve(import.meta.dirname, '..')]]
if (process.env.BENCH_RC_BASE) roots.push([`ucanlog base (${process.env.BENCH_RC_BASE})`, resolve(process.env.BENCH_RC_BASE)])
const builds = []
for (const [name, root] of roots) builds.push([name, await load(root)])
const U0 = builds[0][1]
const keys = { space: U0.createFastSigner(await U0.generateKey()), agent: U0.createFastSigner(await U0.generateKey()), service: U0.createFastSigner(await U0.generateKey()) }
const warmProof = await delegate({ issuer: keys.space, audience: keys.agent, capabilities: U0.STORACHA_ABILITIES.map((can) => ({ can, with: keys.space.did() })), expiration: hour() + 86400, nonce: nonce() })

const sides = []
for (const [name, U] of builds) if (ONLY !== 'stock') sides.push([name, 'ours', U])
if (ONLY !== 'ours') sides.push(['stock ucanto (access + claim of space/blob/add)', 'stock', U0])

const { loadavg } = await import('node:os')
console.log(`request-check: CPU µs per append (process.cpuUsage, user+system), ${REQUESTS} requests × ${PER_REQUEST} appends per repetition, ${REPS} repetitions; Node ${process.version}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
for (const cold of [false, true]) {
  const requests = await makeRequests(U0, keys, cold, warmProof)
  const [warmup] = await makeRequests(U0, keys, false, warmProof).then((rs) => rs.slice(0, 1))
  // JIT warm-up of every side, discarded.
  for (const [, side, U] of sides) await measure(side, U, keys, requests.slice(0, 4), warmup)
  const figures = sides.map(() => [])
  for (let r = 0; r < REPS; r++) {
    for (let s = 0; s < sides.length; s++) {
      const [, side, U] = sides[s]
      figures[s].push(await measure(side, U, keys, requests, warmup))
    }
  }
  console.log(`\nSpace→Agent proof ${cold ? 'distinct per append (cold)' : 'shared (warm)'}                     min / median / max`)
  for (let s = 0; s < sides.length; s++) {
    const { min, median, max } = stats(figures[s])
    console.log(`  ${sides[s][0].padEnd(50)} ${min.toFixed(0).padStart(6)} ${median.toFixed(0).padStart(6)} ${max.toFixed(0).padStart(6)} µs/append`)
  }
}
console.log(`\nload average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)

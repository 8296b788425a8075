// UCAN authorization cost, in process. CPU figures are process.cpuUsage() deltas (user + system)
// divided by the appends measured; the rate figures at the end are wall clock.
//
// 1. Per phase of one append's authorization (CPU µs per append): the invocation's signature and
//    content address, parseDelegation, the delegation's content address, the chain check (check 11
//    of docs/wire.md), the revocation lookup, the replay guard, authorizeAppend as a whole, and a
//    whole request through the ucanto server (16 invocations per request, stub log, SQLite store).
//    Every append has its own invocation and its own Agent→Service delegation, each with a nonce
//    (Ed25519 is deterministic: without one, delegations made in the same second are identical and
//    a cache would be measured). "warm": one Space→Agent proof for all appends (as one agent sends);
//    "cold": a distinct Space→Agent proof per append too.
// 2. Ed25519 through the principal against ucanto's pure-JS default, libsodium against OpenSSL
//    (src/ucan/ed25519.ts), and the older in-process rates.
//
// Side by side: BENCH_UCAN_BASE=<checkout of another commit, built> measures that build's phases in
// the same run (e.g. `git worktree add ../base 7ff05e0 && (cd ../base && npm run build)`).
// BENCH_UCAN_N (appends per repetition, default 256) and BENCH_UCAN_REPS (default 3) size the run.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomBytes } from 'node:crypto'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { CAR } from '@ucanto/transport'
import { Message, delegate } from '@ucanto/core'
import { Verifier, ed25519 } from '@ucanto/principal'

const N = Number(process.env.BENCH_UCAN_N ?? 256)
const REPS = Number(process.env.BENCH_UCAN_REPS ?? 3)
const PER_REQUEST = 16

async function rate(n, op) {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await op(i)
  return (n * 1000) / (performance.now() - t0)
}

// A full GC before each phase, so that one phase's garbage is not collected on another's time.
v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
/** A full GC, then a pause for V8's background GC threads (process.cpuUsage counts every thread). */
async function settle() {
  gc()
  await new Promise((r) => setTimeout(r, 200))
}

/** CPU µs per item of `op` run over `items` (sequentially, awaited). */
async function cpuPer(items, op) {
  await settle()
  const c0 = process.cpuUsage()
  for (let i = 0; i < items.length; i++) await op(items[i], i)
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / items.length
}

const stubLog = {
  async append(space) {
    const rootHash = new Uint8Array(32)
    return { logId: space, origin: 'o', index: 0, published: true, checkpoint: { size: 1, rootHash, note: 'o\n1\nAAAA\n\n— sig\n' }, inclusionProof: [] }
  },
  async read() {
    return undefined
  },
}

const nonce = () => randomBytes(12).toString('base64')

/** Loads the ucan modules of the build at `root` (its dist/). */
async function load(root) {
  const mod = (p) => import(pathToFileURL(join(root, 'dist/src/ucan', p)).href)
  const index = await mod('index.js')
  let chain
  try {
    chain = await mod('chain.js')
  } catch {
    chain = undefined
  }
  return { ...index, chain }
}

/**
 * `n` appends' inputs, each with its own invocation and Agent→Service delegation (with a nonce);
 * `cold`: each with its own Space→Agent proof too.
 */
async function makeAppends(U, keys, n, cold) {
  const { space, agent, service } = keys
  const warmProof = await delegate({ issuer: space, audience: agent, capabilities: U.STORACHA_ABILITIES.map((can) => ({ can, with: space.did() })), expiration: Math.floor(Date.now() / 1000) + 86400, nonce: nonce() })
  const out = []
  for (let i = 0; i < n; i++) {
    const proof = cold
      ? await delegate({ issuer: space, audience: agent, capabilities: U.STORACHA_ABILITIES.map((can) => ({ can, with: space.did() })), expiration: Math.floor(Date.now() / 1000) + 86400, nonce: nonce() })
      : warmProof
    const d = await delegate({ issuer: agent, audience: service, capabilities: U.STORACHA_ABILITIES.map((can) => ({ can, with: space.did() })), proofs: [proof], expiration: Math.floor(Date.now() / 1000) + 86400, nonce: nonce() })
    const delegation = await U.formatDelegation(d)
    const inv = await U.TlogAppend.invoke({
      issuer: agent,
      audience: service,
      with: space.did(),
      nb: { data: Buffer.from(`entry ${i} ${nonce()}`).toString('base64'), delegation },
      expiration: Math.floor(Date.now() / 1000) + 600,
      nonce: nonce(),
    }).delegate()
    out.push({ inv, delegation })
  }
  return out
}

/** Re-decodes invocations from their bytes (a request's decode gives fresh objects, with no memo). */
async function fresh(items) {
  const message = await Message.build({ invocations: items.map((x) => x.inv) })
  const req = CAR.request.encode(message)
  const decoded = await CAR.request.decode(req)
  return decoded.invocations.map((inv, i) => ({ ...items[i], inv }))
}

/** One repetition of every phase for the build `U`; figures in CPU µs per append. */
async function phases(U, keys, cold, n = N) {
  const { service } = keys
  const principal = U.createPrincipalParser()
  const figures = {}
  const items = await fresh(await makeAppends(U, keys, n, cold))
  figures['invocation signature'] = await cpuPer(items, (x) => U.verifyInvocationSignature(x.inv, principal))
  figures['invocation content address'] = await cpuPer(items, (x) => U.checkContentAddressed(x.inv, { proofs: false }))
  const parsed = []
  figures['parseDelegation'] = await cpuPer(items, async (x) => parsed.push((await U.parseDelegation(x.delegation)).ok))
  figures['delegation content address'] = await cpuPer(parsed, (d) => U.checkContentAddressed(d))
  const space = keys.space.did()
  const grants = U.createGrantCache()
  // Warm the Space→Agent proof (warm runs) with a delegation not measured.
  const warm = (await U.parseDelegation((await makeAppends(U, keys, 1, false))[0].delegation)).ok
  if (U.chain) {
    await U.chain.checkChain(space, warm, { service, principal, now: Math.floor(Date.now() / 1000), ucans: grants.ucans })
    figures['chain check (direct)'] = await cpuPer(parsed, (d) => U.chain.checkChain(space, d, { service, principal, now: Math.floor(Date.now() / 1000), ucans: grants.ucans }))
  } else {
    await U.findGrants(space, warm, { service, principal, grants })
    figures['chain check (probe + 3 claims)'] = await cpuPer(parsed, (d) => U.findGrants(space, d, { service, principal, grants }))
  }
  const dir = mkdtempSync(join(tmpdir(), 'ucanlog-bench-'))
  const store = U.UcanStore.open(join(dir, 'ucan.db'))
  try {
    store.revocations.record({ ucan: 'bafyunrelated', scope: keys.agent.did(), revoker: keys.agent.did(), invocation: 'bafyx', time: 0 })
    const queries = items.map((x, i) => {
      const d = parsed[i]
      const p = d.proofs[0]
      const scope = new Set([d.issuer.did(), d.audience.did(), p.issuer.did(), p.audience.did()])
      return new Map([[x.inv.cid.toString(), scope], [d.cid.toString(), scope], [p.cid.toString(), new Set([p.issuer.did(), p.audience.did()])]])
    })
    // As the invocations of one request do: PER_REQUEST calls at once, then the next request's.
    const groups = (xs) => Array.from({ length: Math.ceil(xs.length / PER_REQUEST) }, (_, i) => xs.slice(i * PER_REQUEST, (i + 1) * PER_REQUEST))
    figures[`revocation lookup (3 UCANs; ${PER_REQUEST} at once)`] = (await cpuPer(groups(queries), (g) => Promise.all(g.map((q) => store.revocations.findRevoked(q))))) / PER_REQUEST
    figures[`replay guard (${PER_REQUEST} at once)`] = (await cpuPer(groups(items), (g) => Promise.all(g.map((x) => store.replay.once({ owner: space, id: x.inv.cid.toString(), expiresAt: x.inv.expiration }, async () => ({ ok: {} })))))) / PER_REQUEST
    // authorizeAppend as a whole (signature verified by the caller, as the service does).
    const total = await fresh(await makeAppends(U, keys, n, cold))
    const options = { service, principal, grants: U.createGrantCache(), revocations: store.revocations }
    await U.authorizeAppend((await fresh(await makeAppends(U, keys, 1, false)))[0].inv, options)
    figures['authorizeAppend (checks 6-12)'] = await cpuPer(total, async (x) => {
      const verified = await U.verifyInvocationSignature(x.inv, principal)
      const r = await U.authorizeAppend(x.inv, { ...options, signatureVerified: verified })
      if (r.error) throw new Error(`bench append refused: ${r.error.name} ${r.error.message}`)
    })
    // Whole requests through the ucanto server (decode, admission, handlers, replay guard, receipts).
    const server = U.createUcanService({ signer: service, log: stubLog, replay: store.replay, revocations: store.revocations })
    const reqs = []
    const all = await makeAppends(U, keys, n, cold)
    for (let i = 0; i < all.length; i += PER_REQUEST) {
      reqs.push(CAR.request.encode(await Message.build({ invocations: all.slice(i, i + PER_REQUEST).map((x) => x.inv) })))
    }
    // Every append of the measured requests must succeed (a failure path would be measured otherwise).
    const check = async (res) => {
      const message = await CAR.response.decode(res)
      for (const receipt of message.receipts.values()) if (receipt.out.error) throw new Error(`bench append refused: ${receipt.out.error.name} ${receipt.out.error.message}`)
    }
    await check(await server.request(CAR.request.encode(await Message.build({ invocations: (await makeAppends(U, keys, 1, false)).map((x) => x.inv) }))))
    await settle()
    const c0 = process.cpuUsage()
    const responses = []
    for (const req of reqs) {
      const res = await server.request(req)
      if ((res.status ?? 200) !== 200) throw new Error(`bench request answered ${res.status}`)
      responses.push(res)
    }
    const c = process.cpuUsage(c0)
    for (const res of responses) await check(res)
    figures[`server.request, ${PER_REQUEST} appends per request`] = (c.user + c.system) / all.length
    // Not CPU: the response body (CAR of the receipts) per append, in bytes.
    figures[`response bytes per append (bytes, not µs)`] = responses.reduce((n, res) => n + res.body.length, 0) / all.length
  } finally {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return figures
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] }
}

export async function run(report) {
  const roots = [['this checkout', resolve(import.meta.dirname, '..')]]
  if (process.env.BENCH_UCAN_BASE) roots.push([`base (${process.env.BENCH_UCAN_BASE})`, resolve(process.env.BENCH_UCAN_BASE)])
  const builds = []
  for (const [name, root] of roots) builds.push([name, await load(root)])
  const U0 = builds[0][1]
  const keys = { space: U0.createFastSigner(await U0.generateKey()), agent: U0.createFastSigner(await U0.generateKey()), service: U0.createFastSigner(await U0.generateKey()) }

  console.log(`\nCPU µs per append by phase (process.cpuUsage), ${N} appends × ${REPS} repetitions, distinct invocations and Agent→Service delegations (nonce each); min / median / max`)
  // Warm-up (JIT) of every build, discarded.
  for (const [, U] of builds) await phases(U, keys, false, N)
  for (const cold of [false, true]) {
    const byBuild = builds.map(() => new Map())
    // Interleaved: one repetition of each build in turn, so machine load falls on both alike.
    for (let r = 0; r < REPS; r++) {
      for (let b = 0; b < builds.length; b++) {
        const f = await phases(builds[b][1], keys, cold)
        for (const [k, v] of Object.entries(f)) byBuild[b].set(k, [...(byBuild[b].get(k) ?? []), v])
      }
    }
    for (let b = 0; b < builds.length; b++) {
      console.log(`\n${builds[b][0]} — Space→Agent proof ${cold ? 'distinct per append (cold)' : 'shared (warm)'}`)
      for (const [k, vs] of byBuild[b]) {
        const { min, median, max } = stats(vs)
        console.log(`  ${k.padEnd(52)} ${min.toFixed(0).padStart(7)} ${median.toFixed(0).padStart(7)} ${max.toFixed(0).padStart(7)} µs`)
      }
    }
  }

  // Primitive rates (wall clock).
  const { space, agent, service } = keys
  const U = U0
  const payload = new Uint8Array(1024).fill(7)
  const sig = await agent.sign(payload)
  const fast = U.createPrincipalParser().parse(agent.did())
  const slow = Verifier.parse(agent.did())
  console.log('')
  report('Ed25519 verify, the principal parser (src/ucan/ed25519.ts) (wall)', await rate(3000, () => fast.verify(payload, sig)), 'verifies/s')
  report('Ed25519 verify, ucanto default (@noble/ed25519) (wall)', await rate(300, () => slow.verify(payload, sig)), 'verifies/s')
  report('Ed25519 sign, the fast signer (src/ucan/ed25519.ts) (wall)', await rate(3000, () => agent.sign(payload)), 'signs/s')

  // The two native implementations behind the principal (src/ucan/ed25519.ts), CPU µs per
  // operation, interleaved, 5 repetitions of 2,000 each over distinct 300-byte messages.
  const E = await import(pathToFileURL(join(roots[0][1], 'dist/src/ucan/ed25519.js')).href)
  const backends = [E.LIBSODIUM_ED25519, E.OPENSSL_ED25519].filter(Boolean)
  const seed = randomBytes(32)
  const msgs = Array.from({ length: 2000 }, () => randomBytes(300))
  const signed = msgs.map((m) => E.OPENSSL_ED25519.privateKey(seed).sign(m))
  const pub = (await ed25519.derive(seed)).encode().subarray(36) // the signer's encoding ends with the public key
  const per = new Map()
  for (let rep = 0; rep < 5; rep++) {
    for (const b of backends) {
      const key = b.publicKey(pub)
      const priv = b.privateKey(seed)
      let t = process.cpuUsage()
      for (let i = 0; i < msgs.length; i++) if (!key.verify(msgs[i], signed[i])) throw new Error(`${b.name} refused a valid signature`)
      let u = process.cpuUsage(t)
      per.set(`${b.name} verify`, [...(per.get(`${b.name} verify`) ?? []), (u.user + u.system) / msgs.length])
      t = process.cpuUsage()
      for (let i = 0; i < msgs.length; i++) priv.sign(msgs[i])
      u = process.cpuUsage(t)
      per.set(`${b.name} sign`, [...(per.get(`${b.name} sign`) ?? []), (u.user + u.system) / msgs.length])
    }
  }
  console.log(`\nEd25519 per operation (CPU µs, min / median / max of 5; this process uses ${E.ED25519.name})`)
  for (const [k, vs] of per) {
    const { min, median, max } = stats(vs)
    console.log(`  ${k.padEnd(20)} ${min.toFixed(1).padStart(7)} ${median.toFixed(1).padStart(7)} ${max.toFixed(1).padStart(7)} µs`)
  }
  const spaceToAgent = await U.delegateSpaceToAgent({ space, agent })
  const n = 300
  const requests = async () => {
    const out = []
    for (let i = 0; i < n; i++) {
      const inv = await U.appendInvocation({ agent, service, space: space.did(), entry: new Uint8Array(256).fill(i % 256), spaceToAgent })
      out.push(CAR.request.encode(await Message.build({ invocations: [await inv.delegate()] })))
    }
    return out
  }
  const server = U.createUcanService({ signer: service, log: stubLog })
  const warm = await requests()
  await rate(50, (i) => server.request(warm[i]))
  const reqs = await requests()
  report('tlog/append in process, 1 per request, Agent→Service delegation without nonce (wall)', await rate(n, (i) => server.request(reqs[i])), 'appends/s')
}

// Side by side, in one run (issue 11): ucanlog (`ucanlog serve` built from this checkout, a child
// process) vs a minimal stock ucanto server checking the same chain (bench/stock-server.js, no log)
// vs a Hono echo (bench/echo-server.js, the HTTP floor), all driven by one client in its own process
// (bench/throughput-client.js) that pre-signs every request before the timed phases — distinct
// delegations, a nonce in each Agent→Service delegation.
//
// Closed loop: for each repetition, invocations per request (1, 16) and appends in flight (16, 64,
// 256; requests in flight = appends in flight / invocations per request), each server in turn (so
// drift hits all three alike): appends/s (wall), server CPU per append (/proc/<pid>/stat), the
// client's own CPU per append, request latency p50/p99 (wall), server RSS (max sampled, and peak).
// Then open loop (ucanlog only by default): requests of one invocation sent at fixed rates (100,
// 500, 1,000/s) for a few seconds; p50/p99 from the scheduled send to the cosigned receipt.
//
//   BENCH_TP_SERVERS        ucanlog,stock,echo
//   BENCH_TP_PER_REQUEST    1,16
//   BENCH_TP_INFLIGHT       16,64,256          appends in flight
//   BENCH_TP_REPS           3
//   BENCH_TP_APPENDS        appends per closed-loop run: max(this, 4 × in flight); default 256
//   BENCH_TP_RATES          100,500,1000       open-loop offered rates, appends/s ('' = none)
//   BENCH_TP_OPEN_SECONDS   3
//   BENCH_TP_OPEN_SERVERS   ucanlog
//   BENCH_TP_SPACE_PROOF    shared (one Space→Agent delegation per run: warm cache) | fresh (one per append: cold)
//   BENCH_TP_UCANLOG_ARGS   extra `ucanlog serve` flags
//   BENCH_TP_NODE_ARGS      extra node flags for the servers (e.g. --cpu-prof --cpu-prof-dir=DIR); `ucanlog`
//                           and `baseline` also get their own checkout's `npm start` node flags
//                           (bench/serve-flags.js: --max-old-space-size=192 --single-threaded-gc)
//   BENCH_TP_BASELINE_NODE_ARGS  node flags of the baseline in place of its npm-start ones (e.g.
//                           --max-old-space-size=192 alone: the same build with V8's concurrent GC)
//   BENCH_SERVER_ROOT       run another built checkout's `ucanlog serve` as `ucanlog`
//   BENCH_BASELINE_ROOT     also run another built checkout's `ucanlog serve` as `baseline`, side by
//                           side with this one (e.g. the tree before a change, built in a temp dir);
//                           'self' runs this checkout again, with BENCH_TP_BASELINE_ARGS added (e.g.
//                           --verify-workers 0, or --request-workers 0: the same build with every
//                           check on the main thread; BENCHMARKS.md 2026-11-30 afternoon compares
//                           --request-workers 2 with 0 so)
//   BENCH_TP_BASELINE_ARGS  extra `ucanlog serve` flags for the baseline only
//   BENCH_TP_ADDRESSES      client addresses the requests come from, 127.0.0.1.. (default 1: one app; the
//                           service's per-address turns, --client-concurrency, then bound one address)
//   BENCH_TP_WARMUP         appends sent to each server before the timed runs (JIT warm-up); default 512
//
// Wall-clock figures are noisy on a shared machine; the CPU figures are per append and the load
// average is printed. Nothing here is a test.
import { fork, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nodeFlagsFrom, npmStartNodeFlags } from './serve-flags.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const serverRoot = process.env.BENCH_SERVER_ROOT ?? root
const list = (v, d) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean)
const SERVERS = [...list(process.env.BENCH_TP_SERVERS, 'ucanlog,stock,echo'), ...(process.env.BENCH_BASELINE_ROOT ? ['baseline'] : [])]
const WARMUP = Number(process.env.BENCH_TP_WARMUP ?? 512)
const PER_REQUEST = list(process.env.BENCH_TP_PER_REQUEST, '1,16').map(Number)
const INFLIGHT = list(process.env.BENCH_TP_INFLIGHT, '16,64,256').map(Number)
const REPS = Number(process.env.BENCH_TP_REPS ?? 3)
const APPENDS = Number(process.env.BENCH_TP_APPENDS ?? 256)
const RATES = list(process.env.BENCH_TP_RATES, '100,500,1000').map(Number)
const OPEN_SECONDS = Number(process.env.BENCH_TP_OPEN_SECONDS ?? 3)
const OPEN_SERVERS = [...list(process.env.BENCH_TP_OPEN_SERVERS, 'ucanlog'), ...(process.env.BENCH_BASELINE_ROOT ? ['baseline'] : [])]
const SPACE_PROOF = process.env.BENCH_TP_SPACE_PROOF ?? 'shared'
const TICK = 100 // clock ticks per second of /proc/<pid>/stat (Linux USER_HZ)

/** Starts one server as a child process; resolves { name, url, did, pid, stop }. */
async function startServer(name, dataDir) {
  const ucanlog = (r, data) => [join(r, 'bin', 'ucanlog.js'), 'serve', '--port', '0', '--data', data, '--witness-policy', join(root, 'witness_policy.txt'), '--log-level', 'warn',
    '--client-rate', '0', '--agent-rate', '0', '--space-rate', '0', '--replay-per-space', '100000000', '--log-create-rate', '0',
    ...list(process.env.BENCH_TP_UCANLOG_ARGS, '').flatMap((a) => a.split(' '))]
  const baselineRoot = process.env.BENCH_BASELINE_ROOT === 'self' ? serverRoot : (process.env.BENCH_BASELINE_ROOT ?? serverRoot)
  const args = {
    ucanlog: ucanlog(serverRoot, join(dataDir, 'ucanlog')),
    baseline: [...ucanlog(baselineRoot, join(dataDir, 'baseline')),
      ...list(process.env.BENCH_TP_BASELINE_ARGS, '').flatMap((a) => a.split(' '))],
    stock: [join(root, 'bench', 'stock-server.js')],
    echo: [join(root, 'bench', 'echo-server.js')],
  }[name]
  // Each checkout's own npm-start flags first, so BENCH_TP_NODE_ARGS can override them.
  const flags = name === 'ucanlog' ? npmStartNodeFlags(serverRoot) : name === 'baseline' ? nodeFlagsFrom('BENCH_TP_BASELINE_NODE_ARGS', baselineRoot) : []
  return { name, ...(await startProcess(name, [...flags, ...list(process.env.BENCH_TP_NODE_ARGS, '').flatMap((a) => a.split(' ')), ...args])) }
}

/** Runs `node argv…` until it prints "serving on <url> service DID: <did>"; resolves { url, did, pid, stop } (also used by bench/instances.js). */
export async function startProcess(name, argv) {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const { url, did } = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      const m = /serving on (http:\/\/\S+)\s+service DID: (\S+)/.exec(out)
      if (m) resolve({ url: m[1], did: m[2] })
    })
    child.once('exit', (code) => reject(new Error(`${name} exited ${code}: ${out}`)))
  })
  const exited = new Promise((r) => child.once('exit', r))
  return { url, did, pid: child.pid, stop: async () => (child.kill('SIGTERM'), await exited) }
}

/** CPU (ms, user + system, all threads) a process has used so far; with `mainOnly`, its main thread's (the event loop's). */
export function procCpuMs(pid, mainOnly = false) {
  const stat = readFileSync(mainOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK
}

/** Resident set size now and at its peak (VmHWM), MiB. */
function procRss(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN) / 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

/** bench/throughput-client.js in its own process, driven over IPC: `call(message)` resolves its answer (also used by bench/instances.js). */
export function clientProcess() {
  const child = fork(join(root, 'bench', 'throughput-client.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map()
  let seq = 0
  const ready = new Promise((r) => child.once('message', r))
  child.on('message', (m) => {
    const w = waiting.get(m.seq)
    if (!w) return
    waiting.delete(m.seq)
    m.error ? w.reject(new Error(m.error)) : w.resolve(m.ok)
  })
  return {
    pid: child.pid,
    ready,
    call: (m) => new Promise((resolve, reject) => {
      waiting.set(++seq, { resolve, reject })
      child.send({ ...m, seq })
    }),
    stop: () => child.kill('SIGTERM'),
  }
}

/** min / median / max of the finite values. */
export const stats = (xs) => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s.length ? { min: s[0], med: s[Math.floor((s.length - 1) / 2)], max: s.at(-1) } : { min: NaN, med: NaN, max: NaN }
}
export const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–')
/** "min / median / max" with `d` decimals. */
export const mmm = (xs, d = 0) => {
  const s = stats(xs)
  return `${fmt(s.min, d)} / ${fmt(s.med, d)} / ${fmt(s.max, d)}`
}

/** `npm run bench` entry: prints a table (min / median / max over the repetitions). */
export async function run(report = () => {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-tp-'))
  const servers = []
  const client = clientProcess()
  try {
    for (const name of SERVERS) servers.push(await startServer(name, dataDir))
    await client.ready
    console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; space proof: ${SPACE_PROOF}; ${REPS} repetitions`)
    // Pre-sign everything (the client's signing is not part of any timed phase).
    const plan = []
    for (let rep = 0; rep < REPS; rep++)
      for (const k of PER_REQUEST)
        for (const c of INFLIGHT)
          for (const s of servers) plan.push({ id: `${s.name}-${rep}-${k}-${c}`, s, k, c, count: Math.max(APPENDS, 4 * c) })
    const open = RATES.flatMap((rate) => servers.filter((s) => OPEN_SERVERS.includes(s.name)).map((s) => ({ id: `${s.name}-open-${rate}`, s, rate, count: Math.ceil(rate * OPEN_SECONDS) })))
    const warm = servers.flatMap((s) => PER_REQUEST.map((k) => ({ id: `${s.name}-warm-${k}`, s, k, c: 64, count: WARMUP })))
    let signMs = 0
    let signed = 0
    for (const p of [...warm, ...plan, ...open]) {
      const r = await client.call({ cmd: 'prepare', id: p.id, url: p.s.url, did: p.s.did, count: p.count, perRequest: p.k ?? 1, spaceProof: SPACE_PROOF })
      signMs += r.signCpuMs
      signed += r.count
    }
    console.log(`client pre-signed ${signed} appends (${fmt((signMs * 1000) / signed)} µs of client CPU each, not timed below)`)

    for (const p of warm) if (p.count > 0) await client.call({ cmd: 'run', id: p.id, inflight: Math.max(1, Math.round(p.c / p.k)) })
    const results = new Map()
    for (const p of plan) {
      const before = procCpuMs(p.s.pid)
      const beforeMain = procCpuMs(p.s.pid, true)
      let rssMax = 0
      const sampler = setInterval(() => (rssMax = Math.max(rssMax, procRss(p.s.pid).rss)), 200)
      const r = await client.call({ cmd: 'run', id: p.id, inflight: Math.max(1, Math.round(p.c / p.k)) })
      clearInterval(sampler)
      rssMax = Math.max(rssMax, procRss(p.s.pid).rss)
      const serverCpuMs = procCpuMs(p.s.pid) - before
      const mainCpuMs = procCpuMs(p.s.pid, true) - beforeMain
      const key = `${p.s.name} ${p.k} ${p.c}`
      const row = results.get(key) ?? { name: p.s.name, k: p.k, c: p.c, rate: [], server: [], main: [], client: [], p50: [], p99: [], rss: [], errors: {} }
      const n = p.count
      row.rate.push((r.ok * 1000) / r.wallMs)
      row.server.push((serverCpuMs * 1000) / n)
      row.main.push((mainCpuMs * 1000) / n)
      row.client.push((r.clientCpuMs * 1000) / n)
      row.p50.push(r.p50)
      row.p99.push(r.p99)
      row.rss.push(rssMax)
      for (const [e, c] of Object.entries(r.errors)) row.errors[e] = (row.errors[e] ?? 0) + c
      results.set(key, row)
    }
    console.log(`\nclosed loop (min / median / max of ${REPS}; appends/s and latency wall-clock, CPU per append in µs, RSS in MiB)`)
    console.log('| server | inv/request | appends in flight | appends/s | server CPU µs/append | of it main thread | client CPU µs/append | request p50 ms | request p99 ms | server RSS max MiB | failed |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|')
    for (const r of results.values()) {
      const failed = Object.entries(r.errors).map(([e, c]) => `${c} ${e}`).join(', ') || '0'
      console.log(`| ${r.name} | ${r.k} | ${r.c} | ${mmm(r.rate)} | ${mmm(r.server)} | ${mmm(r.main)} | ${mmm(r.client)} | ${mmm(r.p50)} | ${mmm(r.p99)} | ${mmm(r.rss)} | ${failed} |`)
      report(`${r.name}: ${r.k} per request, ${r.c} in flight (median appends/s, wall)`, stats(r.rate).med, 'appends/s')
    }

    if (open.length) {
      console.log(`\nopen loop (${OPEN_SECONDS} s per rate, one invocation per request; latency wall-clock from the scheduled send to the cosigned receipt)`)
      console.log('| server | offered /s | answered ok /s | p50 ms | p99 ms | max ms | server CPU µs/append | client CPU µs/append | server RSS max MiB | failed |')
      console.log('|---|---|---|---|---|---|---|---|---|---|')
      for (const p of open) {
        const before = procCpuMs(p.s.pid)
        let rssMax = 0
        const sampler = setInterval(() => (rssMax = Math.max(rssMax, procRss(p.s.pid).rss)), 200)
        const r = await client.call({ cmd: 'open', id: p.id, rate: p.rate })
        clearInterval(sampler)
        const cpu = procCpuMs(p.s.pid) - before
        const failed = Object.entries(r.errors).map(([e, c]) => `${c} ${e}`).join(', ') || '0'
        console.log(`| ${p.s.name} | ${p.rate} | ${fmt((r.ok * 1000) / r.wallMs)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${fmt((cpu * 1000) / p.count)} | ${fmt((r.clientCpuMs * 1000) / p.count)} | ${fmt(Math.max(rssMax, procRss(p.s.pid).rss))} | ${failed} |`)
        report(`${p.s.name}: open loop ${p.rate}/s, p99 (wall)`, r.p99, 'ms')
      }
    }
    console.log(`\nserver peak RSS (VmHWM): ${servers.map((s) => `${s.name} ${fmt(procRss(s.pid).hwm)} MiB`).join(', ')}; load average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  } finally {
    client.stop()
    for (const s of servers) await s.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()

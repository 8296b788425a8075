// Soak run (issue 15 must-show): `ucanlog serve` (the built CLI, its defaults otherwise) for
// BENCH_SOAK_MINUTES at a steady open-loop append rate, with faults injected on a repeating
// schedule, then every acknowledged entry read back at its acknowledged index.
//
// Set-up, all real processes on loopback:
//   - the data directory is a size-limited tmpfs (mount -t tmpfs, needs root; otherwise a plain
//     directory with a warning, and the disk phase is skipped);
//   - the witness policy names one separate witness, `ucanlog witness serve` in its own process,
//     configured with `ucanlog witness pull-logs` from the service's /logs.txt;
//   - uploads go to a local Storacha (test/helpers/local-storacha.ts, @storacha/upload-api's real
//     service, compiled to .tmp/ and run in this process);
//   - the client (bench/soak-client.js) in its own process: one invocation per request, each with
//     its own delegation and nonce, resent with the same bytes when unanswered; acknowledged only on
//     an ok receipt.
//
// Fault schedule, repeating every BENCH_SOAK_CYCLE_S (offsets as fractions of the cycle; 600 s:
//   witness killed at 1:00 and restarted at 2:00, Storacha down 2:30–5:30, disk filled to 95 % at
//   6:00 — to full for the last third of the phase — and the ballast removed at 7:30, `kill -9` of
//   serve + restart at 8:00, SIGSTOP at 9:00 for BENCH_SOAK_STOP_S then SIGCONT).
//
// Sampled every 5 s: server RSS and RssAnon (/proc), serve's main-thread V8 heap (its /metrics),
// appends acknowledged, refusals by name; one line per minute, a memory table per minute at the end. At the
// end: every fault healed, every append settled, then every acknowledged entry read back at its index
// (missing must be 0; no entry present twice), the whole log audited (auditLog), the upload queue
// drained (every local CAR's root an upload of the space, each of its blocks in the space's CAR shards
// byte for byte: checkpoints are coalesced into shards; the shards streamed, a progress line every 10 s),
// and a summary.
//
//   BENCH_SOAK_MINUTES        30
//   BENCH_SOAK_RATE           50     appends/s offered
//   BENCH_SOAK_CYCLE_S        600    fault schedule period, s
//   BENCH_SOAK_STOP_S         45     SIGSTOP duration, s (longer than the client timeout)
//   BENCH_SOAK_CLIENT_TIMEOUT_MS 30000 an unanswered request is resent after this
//   BENCH_SOAK_TMPFS_MB       1024   tmpfs size of the data directory
//   BENCH_SOAK_DISK_FILL      0.95   fraction of the tmpfs the ballast fills up to
//   BENCH_SOAK_DISK_FULL      1      1: fill it to full (1 MiB left) for the last third of the disk phase
//   BENCH_SOAK_DRAIN_S        900    longest wait at the end for publication and the upload queue
//   BENCH_SOAK_SERVE_ARGS     extra `ucanlog serve` flags
//   BENCH_SOAK_NODE_ARGS      node flags for serve; default what npm start passes (bench/serve-flags.js);
//                             add --trace-gc, then `node bench/gc-trace.js <the kept serve log>` tabulates the
//                             live heap of each thread right after each full GC, minute by minute
//   BENCH_SOAK_STORACHA       1      0: no local Storacha (serve without --storacha-url, no Storacha phase
//                                    or check) — for lives longer than the local Storacha's in-memory
//                                    stores can hold (it holds every blob and message: GBs after an hour)
//
// A benchmark, not a test: it prints figures and checks, and exits 1 when an invariant failed
// (missing or duplicated entries, an audit failure, CARs not in the space).
import { execFileSync, fork, spawn } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync, readdirSync, statSync, statfsSync, unlinkSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { nodeFlagsFrom } from './serve-flags.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = join(root, 'bin', 'ucanlog.js')
const num = (k, d) => Number(process.env[k] ?? d)
const MINUTES = num('BENCH_SOAK_MINUTES', 30)
const RATE = num('BENCH_SOAK_RATE', 50)
const CYCLE_S = num('BENCH_SOAK_CYCLE_S', 600)
const STOP_S = num('BENCH_SOAK_STOP_S', 45)
const TMPFS_MB = num('BENCH_SOAK_TMPFS_MB', 1024)
const DISK_FILL = num('BENCH_SOAK_DISK_FILL', 0.95)
const DISK_FULL = process.env.BENCH_SOAK_DISK_FULL !== '0'
const DRAIN_S = num('BENCH_SOAK_DRAIN_S', 900)
const STORACHA = process.env.BENCH_SOAK_STORACHA !== '0'
// Node flags for serve; default those `npm start` passes.
const SERVE_NODE_ARGS = nodeFlagsFrom('BENCH_SOAK_NODE_ARGS', root)
const SERVE_ARGS = (process.env.BENCH_SOAK_SERVE_ARGS ?? '').split(' ').filter(Boolean)
const SAMPLE_MS = 5000

const D = await import(pathToFileURL(join(root, 'dist', 'src', 'tlog', 'index.js')).href)
const { auditLog } = await import(pathToFileURL(join(root, 'dist', 'src', 'client', 'audit.js')).href)

const t0 = Date.now()
const clock = (ms = Date.now() - t0) => {
  const s = Math.floor(ms / 1000)
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
}
const say = (s) => console.log(`[${clock()}] ${s}`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const pct = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN)
const la = () => loadavg().map((x) => x.toFixed(2)).join(' ')

// ---- processes -------------------------------------------------------------------------------

/** Spawns node `args`, resolves once stdout matches `re` with { child, m }; stderr, and stdout from then on, appended to `logFile`. */
function spawnUntil(args, re, logFile) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  const log = createWriteStream(logFile, { flags: 'a' })
  child.stderr.pipe(log)
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = (d) => {
      out += d
      const m = re.exec(out)
      if (m) {
        child.stdout.off('data', onData)
        child.stdout.pipe(log) // pino's JSON lines
        resolve({ child, m })
      }
    }
    child.stdout.on('data', onData)
    child.once('exit', (code, sig) => reject(new Error(`${args.slice(0, 3).join(' ')} exited ${code ?? sig}: ${out}`)))
  })
}
const exited = (child) => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r)))

/** /proc/<pid>/status VmRSS, MiB. */
function rssMiB(pid) {
  return procStatus(pid).rss
}
/** /proc/<pid>/status: VmRSS and RssAnon (heap, malloc, stacks: what a leak grows), MiB; NaN when unreadable. */
function procStatus(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? NaN) / 1024
    return { rss: kib('VmRSS'), anon: kib('RssAnon') }
  } catch {
    return { rss: NaN, anon: NaN }
  }
}
/** serve's main-thread V8 heap (prom-client's nodejs_* gauges) and its worker threads' (ucanlog_worker_heap_bytes) from its /metrics, MiB; NaN fields when unanswered. */
async function heapMiB(metricsUrl) {
  try {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) })).text()
    const g = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20
    // The worker threads' heaps, summed over every pool and thread, 0 when none runs.
    const w = (kind) => [...text.matchAll(new RegExp(`^ucanlog_worker_heap_bytes\\{pool="[a-z]+",kind="${kind}"\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]) / 2 ** 20, 0)
    // The engine's byte-bounded caches (ucanlog_cache_bytes), summed: what fills up to its knobs.
    const caches = [...text.matchAll(/^ucanlog_cache_bytes\{cache="[a-z_]+"\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]) / 2 ** 20, 0)
    return { heapTotal: g('nodejs_heap_size_total_bytes'), heapUsed: g('nodejs_heap_size_used_bytes'), external: g('nodejs_external_memory_bytes'), workersTotal: w('total'), workersUsed: w('used'), caches }
  } catch {
    return { heapTotal: NaN, heapUsed: NaN, external: NaN, workersTotal: NaN, workersUsed: NaN, caches: NaN }
  }
}

function clientProcess() {
  const child = fork(join(root, 'bench', 'soak-client.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map()
  let seq = 0
  const listeners = []
  const ready = new Promise((r) => child.once('message', r))
  child.on('message', (m) => {
    if (m.stats) return listeners.forEach((l) => l(m.stats))
    const w = waiting.get(m.seq)
    if (!w) return
    waiting.delete(m.seq)
    m.error ? w.reject(new Error(m.error)) : w.resolve(m.ok)
  })
  return {
    ready,
    onStats: (l) => listeners.push(l),
    call: (m) => new Promise((resolve, reject) => (waiting.set(++seq, { resolve, reject }), child.send({ ...m, seq }))),
    stop: () => child.kill('SIGTERM'),
  }
}

// ---- set-up ----------------------------------------------------------------------------------

const work = await mkdtemp(join(tmpdir(), 'ucanlog-soak-'))
const mnt = join(work, 'tmpfs')
await mkdir(mnt)
let mounted = false
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m`, 'tmpfs', mnt], { stdio: 'pipe' })
  mounted = true
} catch (err) {
  console.warn(`WARNING: could not mount a ${TMPFS_MB} MiB tmpfs at ${mnt} (${String(err.message).split('\n')[0]}); the data directory is a plain directory and the disk-full phase is skipped`)
}
const dataDir = join(mnt, 'data')
const ballast = join(mnt, 'ballast')
const logs = join(work, 'logs')
await mkdir(logs)

// The local Storacha is test code (not in dist): compiled into .tmp/ (ignored by git), as demo:storacha does.
const build = join(root, '.tmp', 'bench-soak')
if (STORACHA) execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'scripts', 'tsconfig.demo-storacha.json'), '--outDir', build], { stdio: 'inherit' })
const { startLocalStoracha } = STORACHA ? await import(pathToFileURL(join(build, 'test', 'helpers', 'local-storacha.js')).href) : {}

const state = { serve: undefined, witness: undefined, stopped: false, restarts: 0, crashes: [], restarting: Promise.resolve() }
const cleanups = []
async function cleanup() {
  await state.restarting
  if (state.serve) {
    state.serve.expected = true
    if (state.stopped) process.kill(state.serve.child.pid, 'SIGCONT')
    state.serve.child.kill('SIGKILL')
    await exited(state.serve.child)
  }
  if (state.witness) {
    state.witness.child.kill('SIGKILL')
    await exited(state.witness.child)
  }
  for (const c of cleanups) await c().catch(() => {})
  if (mounted) {
    try {
      execFileSync('umount', [mnt])
    } catch {
      execFileSync('umount', ['-l', mnt])
    }
  }
  await rm(work, { recursive: true, force: true })
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => cleanup().finally(() => process.exit(130)))

const storacha = STORACHA ? await startLocalStoracha() : undefined
if (storacha) cleanups.push(() => storacha.close())
let storachaUp = true

const witnessDir = join(work, 'witness')
await mkdir(witnessDir)
const witnessArgs = (listen) => [cli, 'witness', 'serve', '--name', 'w1.soak.test', '--key', join(witnessDir, 'w1.key'), '--db', join(witnessDir, 'w1.db'), '--listen', listen]
async function startWitness(listen) {
  const { child, m } = await spawnUntil(witnessArgs(listen), /witness vkey: (\S+)\n.* listening on (http:\/\/\S+)\n/, join(logs, 'witness.log'))
  return { child, vkey: m[1], url: m[2] }
}
state.witness = await startWitness('127.0.0.1:0')
const witnessListen = new URL(state.witness.url).host
const policy = join(work, 'policy.txt')
await writeFile(policy, `witness w1 ${state.witness.vkey} ${state.witness.url}\nquorum w1\n`)

let servePort = 0
async function startServe() {
  const args = [...SERVE_NODE_ARGS, cli, 'serve', '--port', String(servePort), '--data', dataDir, '--witness-policy', policy, '--log-level', 'warn',
    ...(storacha ? ['--storacha-url', storacha.url, '--storacha-did', storacha.did, '--storacha-receipts', storacha.receiptsEndpoint] : []), ...SERVE_ARGS]
  const { child, m } = await spawnUntil(args, /serving on (http:\/\/\S+)\s+service DID: (\S+)/, join(logs, 'serve.log'))
  servePort = Number(new URL(m[1]).port)
  return { child, url: m[1], did: m[2] }
}
const t00 = performance.now()
/**
 * Watches `s` (a started serve): an exit nobody asked for is a crash, counted and printed, and serve
 * is started again at once on the same port and data directory, as a supervisor would.
 */
function watch(s) {
  s.child.once('exit', (code, signal) => {
    if (s.expected) return
    state.crashes.push({ t: since(), code, signal })
    say(`serve EXITED by itself (${signal ?? `code ${code}`}); started again, as a supervisor would (see the stderr lines in the summary)`)
    state.restarting = startServe()
      .then((n) => {
        state.serve = n
        state.stopped = false
        state.restarts++
        watch(n)
      })
      .catch((err) => say(`serve did not start again: ${err.message}`))
  })
  return s
}
state.serve = watch(await startServe())
const firstStartMs = performance.now() - t00
const { url, did } = state.serve

const client = clientProcess()
cleanups.push(async () => client.stop())
await client.ready
const { space } = await client.call({ cmd: 'init', url, did })
if (storacha) await storacha.provision(space)
const base = `${url}/logs/${space}/`
/** fetch, retried (5 tries, 1 s apart) when no answer came, e.g. a kept-alive connection the server had just closed. */
async function get(u, init) {
  for (let i = 1; ; i++) {
    try {
      return await fetch(u, init)
    } catch (err) {
      if (i >= 5) throw err
      await sleep(1000)
    }
  }
}
const head = async () => {
  const res = await get(base + 'head')
  return res.ok ? res.json() : undefined
}

// The first append creates the log; the witness operator then pulls the service's log list.
const warm = await client.call({ cmd: 'one' })
if (!warm.ok) throw new Error(`the first append failed: ${JSON.stringify(warm)}`)
execFileSync(process.execPath, [cli, 'witness', 'pull-logs', '--db', join(witnessDir, 'w1.db'), '--source', `${url}/logs.txt`], { stdio: 'inherit' })
for (let h = await head(); !h || h.treeSize < 1; h = await head()) await sleep(200)

console.log(`soak: ${MINUTES} min at ${RATE} appends/s offered, fault cycle ${CYCLE_S} s, data dir ${mounted ? `tmpfs ${TMPFS_MB} MiB` : 'plain directory (no tmpfs)'}; serve started in ${fmt(firstStartMs)} ms; load average at start: ${la()}`)
console.log(`node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'cpu ?'} × ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length}`)

// ---- faults ----------------------------------------------------------------------------------

const phases = [] // { kind, start, end } ms since t1
let t1 = 0
let current = 'steady'
const since = () => Date.now() - t1
function phase(kind, note) {
  if (phases.length) phases.at(-1).end = since()
  phases.push({ kind, start: since(), end: undefined })
  current = kind
  say(`phase: ${kind}${note ? ` (${note})` : ''}`)
}

const faults = {
  async witnessDown() {
    state.witness.child.kill('SIGKILL')
    await exited(state.witness.child)
    state.witness = undefined
  },
  async witnessUp() {
    state.witness = await startWitness(witnessListen)
  },
  async storachaDown() {
    await storacha.stop()
    storachaUp = false
  },
  async storachaUp() {
    await storacha.start()
    storachaUp = true
  },
  diskFill(fraction, leaveBytes = 0) {
    if (!mounted) return 'skipped: no tmpfs'
    // The ballast grows by the new range only (fallocate -o), so what it already holds is not asked
    // for again; the service keeps writing meanwhile, so a refused fill is retried leaving more room.
    for (let leave = leaveBytes; ; leave *= 2) {
      const s = statfsSync(mnt)
      const total = s.blocks * s.bsize
      const free = s.bavail * s.bsize
      const have = existsSync(ballast) ? statSync(ballast).size : 0
      const want = leaveBytes ? have + free - leave : Math.floor(total * fraction - (total - free - have))
      if (want <= have) return `nothing to add (used ${fmt(((total - free) / total) * 100, 1)} %)`
      try {
        execFileSync('fallocate', ['-o', String(have), '-l', String(want - have), ballast], { stdio: 'pipe' })
      } catch (err) {
        if (!leaveBytes || leave >= 64 * 2 ** 20) throw err
        continue
      }
      const after = statfsSync(mnt)
      return `ballast ${fmt(want / 2 ** 20)} MiB; ${fmt(((after.blocks - after.bavail) / after.blocks) * 100, 1)} % used, ${fmt((after.bavail * after.bsize) / 2 ** 20, 1)} MiB free`
    }
  },
  diskFree() {
    if (existsSync(ballast)) unlinkSync(ballast)
  },
  async kill9() {
    await state.restarting
    state.serve.expected = true
    state.serve.child.kill('SIGKILL')
    await exited(state.serve.child)
    const t = performance.now()
    state.serve = watch(await startServe())
    state.restarts++
    return `restarted in ${fmt(performance.now() - t)} ms`
  },
  stop() {
    process.kill(state.serve.child.pid, 'SIGSTOP')
    state.stopped = true
  },
  cont() {
    process.kill(state.serve.child.pid, 'SIGCONT')
    state.stopped = false
  },
}

/** The schedule of one cycle: [offset fraction, action]. Actions are serialised. */
const stopFrac = Math.min(STOP_S / CYCLE_S, 0.09)
const cycle = [
  [0.1, async () => (await faults.witnessDown(), phase('witness down', 'witness process killed'))],
  [0.2, async () => (await faults.witnessUp(), phase('steady', 'witness restarted'))],
  ...(storacha
    ? [
        [0.25, async () => (await faults.storachaDown(), phase('storacha down', 'local Storacha refusing connections'))],
        [0.55, async () => (await faults.storachaUp(), phase('steady', 'Storacha back'))],
      ]
    : []),
  [0.6, async () => phase('disk nearly full', faults.diskFill(DISK_FILL))],
  ...(DISK_FULL ? [[0.7, async () => phase('disk full', faults.diskFill(1, 2 ** 20))]] : []),
  [0.75, async () => (faults.diskFree(), phase('steady', 'ballast removed'))],
  [0.8, async () => (phase('kill -9 + restart'), say(await faults.kill9()))],
  [0.85, async () => phase('steady')],
  [0.9, async () => (faults.stop(), phase('SIGSTOP', `${fmt(stopFrac * CYCLE_S)} s`))],
  [0.9 + stopFrac, async () => (faults.cont(), phase('steady', 'SIGCONT'))],
]

// ---- the run ---------------------------------------------------------------------------------

const samples = [] // { t, rss, acked, sent, refused, restarts }
let lastStats = { acked: 0, sent: 0, refused: {}, resent: {}, inflight: 0, gaveUp: 0 }
client.onStats((s) => (lastStats = s))

t1 = Date.now()
phase('steady', 'start')
const runMs = MINUTES * 60_000
const running = client.call({ cmd: 'run', rate: RATE, seconds: MINUTES * 60 })

let actions = Promise.resolve()
const timers = []
for (let c = 0; c * CYCLE_S * 1000 < runMs; c++)
  for (const [f, act] of cycle) {
    const at = (c + f) * CYCLE_S * 1000
    if (at < runMs) timers.push(setTimeout(() => (actions = actions.then(act).catch((err) => say(`fault action failed: ${err.message}`))), at))
  }

let lastMinute = 0
const sampler = setInterval(() => {
  const up = state.serve && !state.stopped
  const ps = up ? procStatus(state.serve.child.pid) : { rss: NaN, anon: NaN }
  const s = { t: since(), rss: ps.rss, anon: ps.anon, heapTotal: NaN, heapUsed: NaN, external: NaN, workersTotal: NaN, workersUsed: NaN, caches: NaN, acked: lastStats.acked, sent: lastStats.sent, refused: { ...lastStats.refused }, restarts: state.restarts, phase: current }
  samples.push(s)
  if (up) heapMiB(`${url}/metrics`).then((h) => Object.assign(s, h))
  const minute = Math.floor(s.t / 60_000)
  if (minute > lastMinute) {
    lastMinute = minute
    const refused = Object.entries(s.refused).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
    const resent = Object.entries(lastStats.resent ?? {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
    const line = `min ${minute}: sent ${s.sent}, acked ${s.acked}, in flight ${lastStats.inflight}, refused: ${refused}; resent: ${resent}; serve RSS ${fmt(s.rss)} MiB (main heap ${fmt(samples.findLast((x) => Number.isFinite(x.heapTotal))?.heapTotal)}, of it caches ${fmt(samples.findLast((x) => Number.isFinite(x.caches))?.caches, 1)}, workers' heaps ${fmt(samples.findLast((x) => Number.isFinite(x.workersTotal))?.workersTotal)}); load ${la()}`
    fetch(base + 'head', { signal: AbortSignal.timeout(2000) })
      .then((r) => r.json())
      .then((h) => `; published ${h.treeSize} (integrated ${h.integratedSize}), upload ${h.upload?.state} lag ${h.upload?.lagEntries} entries / ${h.upload?.pendingCheckpoints} checkpoints`)
      .catch((err) => `; /head: ${err.name}`)
      .then((x) => say(line + x))
  }
}, SAMPLE_MS)

await sleep(runMs)
for (const t of timers) clearTimeout(t)
await actions
// Heal whatever is still broken.
if (state.stopped) faults.cont()
faults.diskFree()
if (!storachaUp) await faults.storachaUp()
if (!state.witness) await faults.witnessUp()
phase('drain', 'sending done, every fault healed')
const result = await running
phases.at(-1).end = since()
clearInterval(sampler)
say(`client settled: ${result.acked.length} acknowledged, ${result.refused.length} refused or abandoned; client CPU ${fmt(result.clientCpuMs / 1000, 1)} s over ${fmt(result.wallMs / 1000)} s`)
const stamp = new Date(t0).toISOString().replace(/[:.]/g, '-')
// The raw figures, for a closer look: every acknowledged and refused append (times in ms since the start), the samples, the phases.
// Without the local Storacha nothing was compiled into `build`: it may not exist yet.
await mkdir(build, { recursive: true })
await writeFile(join(build, `soak-${stamp}.json`), JSON.stringify({ minutes: MINUTES, rate: RATE, cycleS: CYCLE_S, phases, samples, acked: result.acked.map(([i, , s, l, a]) => [i, s, l, a]), refused: result.refused.map(([, ...r]) => r) }))

// ---- checks ----------------------------------------------------------------------------------

let failed = false
const acked = [[warm.ok.index, undefined, 0, warm.latency, warm.attempts], ...result.acked]
let present = NaN
let missing = []
let duplicated = NaN
try {
  // A loop, not Math.max(...): spreading 240,000 arguments overflows the stack.
  const maxIndex = acked.reduce((m, a) => Math.max(m, a[0]), -Infinity)
  const deadline = Date.now() + DRAIN_S * 1000
  let h = await head()
  while (!(h && h.treeSize > maxIndex && h.treeSize === h.integratedSize) && Date.now() < deadline) {
    await sleep(500)
    h = await head()
  }
  say(`published: tree size ${h?.treeSize}, integrated ${h?.integratedSize}`)

  // The log's files as served (published paths never change: fetched once, kept for the audit).
  const files = new Map()
  const fetchFile = async (p) => {
    if (files.has(p)) return files.get(p)
    const res = await get(base + p)
    const bytes = res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
    if (bytes && p !== 'checkpoint') files.set(p, bytes)
    return bytes
  }

  // Read every bundle of the published tree: acknowledged entries at their index, nothing twice.
  const size = h.treeSize
  const log = new Array(size)
  for (let n = 0; n * 256 < size; n++) {
    const width = Math.min(256, size - n * 256)
    const bytes = await fetchFile(D.entryBundlePath(n, width))
    if (!bytes) {
      say(`bundle ${n} (width ${width}): not served`)
      continue
    }
    D.parseEntryBundle(bytes).forEach((e, i) => (log[n * 256 + i] = new TextDecoder().decode(e)))
  }
  present = 0
  missing = []
  for (const [index, entry] of acked) {
    if (entry === undefined ? log[index]?.startsWith('soak warm-up') : log[index] === entry) present++
    else missing.push({ index, want: entry?.slice(0, 30), got: log[index]?.slice(0, 30) })
  }
  const seen = new Map()
  for (const e of log) if (e !== undefined) seen.set(e, (seen.get(e) ?? 0) + 1)
  duplicated = [...seen.values()].filter((c) => c > 1).length
  const ackedSet = new Set(result.acked.map((a) => a[1]))
  const unackedPresent = result.refused.filter(([e]) => seen.has(e)).length
  const holes = log.filter((e) => e === undefined).length
  const presentAnyway = {}
  for (const [e, , name, , , message] of result.refused) if (seen.has(e)) presentAnyway[`${name}: ${message ?? ''}`] = (presentAnyway[`${name}: ${message ?? ''}`] ?? 0) + 1
  say(`read back: ${present} of ${acked.length} acknowledged present at their index, ${missing.length} missing, ${duplicated} entries present more than once, ${holes} unreadable indexes, ${unackedPresent} refused/abandoned appends present anyway, ${size - ackedSet.size - 1} log entries not acknowledged`)
  if (missing.length) console.log('missing (first 10):', missing.slice(0, 10))
  for (const [k, v] of Object.entries(presentAnyway)) console.log(`  in the log although answered ${k}: ${v}`)
  if (missing.length || duplicated || holes) failed = true

  // The whole log audited from its served files.
  const info = await (await get(`${url}/info`)).json()
  const ta = performance.now()
  try {
    const report = await auditLog({ fetchFile, origin: h.origin, logVkey: h.vkey, policy: D.parsePolicy(info.witnessPolicy) })
    say(`audit: clean, size ${report.size} (${fmt((performance.now() - ta) / 1000, 1)} s)`)
  } catch (err) {
    failed = true
    say(`audit FAILED: ${err.name}: ${err.message}`)
  }

  // The upload queue drained: every local CAR an upload of the space, its bytes a blob of the space.
  if (!storacha) say('Storacha: off (BENCH_SOAK_STORACHA=0): no upload check')
  else {
  let hu = await head()
  while (!(hu.upload?.state === 'uploaded' && hu.upload.uploadedTreeSize === hu.treeSize) && Date.now() < deadline) {
    await sleep(1000)
    hu = await head()
  }
  say(`upload queue: ${JSON.stringify(hu.upload)}`)
  const carDir = join(dataDir, 'cars', space)
  const carFiles = readdirSync(carDir).filter((n) => n.endsWith('.car')).sort()
  const uploads = await storacha.uploads(space)
  // Checkpoints are coalesced into CAR shards (--upload-batch-checkpoints), so a local CAR is in the
  // space when its root is an upload of the space and each of its blocks is, byte for byte, in the
  // space's CAR blobs (not when the local CAR itself is a blob). Bounded memory: the local CARs are
  // read one at a time and the shards streamed block by block, keeping only the needed CIDs' digests.
  const tc = performance.now()
  const missingCars = await storacha.missingCars(
    space,
    carFiles.map((name) => ({ name, read: async () => readFileSync(join(carDir, name)) })),
    (line) => say(`Storacha check: ${line}`),
  )
  const carsMissing = missingCars.length
  for (const m of missingCars.slice(0, 10)) say(`  not in the space: ${m.name}: ${m.reason}`)
  say(`Storacha: ${carFiles.length} local CARs, ${uploads.length} uploads in the space, ${carsMissing} CARs not in the space (checked in ${fmt((performance.now() - tc) / 1000, 1)} s)`)
  if (carsMissing || hu.upload?.uploadedTreeSize !== hu.treeSize) failed = true
  }
} catch (err) {
  failed = true
  say(`checks aborted: ${err.name}: ${err.message}`)
}

// ---- summary ---------------------------------------------------------------------------------

const kindOf = (ms) => phases.find((p) => ms >= p.start && ms < (p.end ?? Infinity))?.kind ?? 'drain'
const byKind = new Map()
const all = []
for (const [, , sentAt, latency] of result.acked) {
  const k = kindOf(sentAt)
  if (!byKind.has(k)) byKind.set(k, [])
  byKind.get(k).push(latency)
  all.push(latency)
}
console.log(`\n## soak summary (${MINUTES} min, ${RATE} appends/s offered, ${state.restarts - state.crashes.length} kill -9 restarts, ${state.crashes.length} crashes)\n`)
console.log(`| acknowledged | present at their index | missing | present twice | refused / abandoned |`)
console.log(`|---|---|---|---|---|`)
const refusedBy = {}
for (const [, , e] of result.refused) refusedBy[e] = (refusedBy[e] ?? 0) + 1
console.log(`| ${acked.length} | ${present} | ${missing.length} | ${duplicated} | ${Object.entries(refusedBy).map(([k, v]) => `${k} ${v}`).join(', ') || '0'} |`)
const refusedByPhase = {}
for (const [, sentAt, e] of result.refused) {
  const k = `${kindOf(sentAt)}: ${e}`
  refusedByPhase[k] = (refusedByPhase[k] ?? 0) + 1
}
console.log(`\nrefused / abandoned by the phase the append was sent in: ${Object.entries(refusedByPhase).map(([k, v]) => `${k} ${v}`).join('; ') || 'none'}`)
const refusals = new Map()
for (const [, sentAt, e, answeredAt, attempts, message, resent] of result.refused) {
  const k = `${e}: ${message ?? ''} (answered in phase ${kindOf(answeredAt)}, ${attempts > 1 ? `after resends: ${resent.join(', ')}` : 'first send'})`
  const r = refusals.get(k) ?? { n: 0, first: answeredAt, last: answeredAt, sent: sentAt }
  r.n++
  r.last = Math.max(r.last, answeredAt)
  refusals.set(k, r)
}
for (const [k, r] of refusals) console.log(`  ${r.n}× ${k}, answered ${clock(r.first)}–${clock(r.last)}`)
console.log(`resends (same signed request) by cause: ${Object.entries(result.stats.resent).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; acknowledged with published: false ${result.stats.unpublished}`)
console.log(`\nlatency from the scheduled send to the ok receipt (resends included), by the phase the append was sent in:\n`)
console.log('| phase | acknowledged | p50 ms | p99 ms | max ms |')
console.log('|---|---|---|---|---|')
for (const [k, xs] of [...byKind.entries(), ['all', all]]) {
  xs.sort((a, b) => a - b)
  console.log(`| ${k} | ${xs.length} | ${fmt(pct(xs, 0.5))} | ${fmt(pct(xs, 0.99))} | ${fmt(xs.at(-1))} |`)
}
const rss = samples.map((s) => s.rss).filter(Number.isFinite).sort((a, b) => a - b)
console.log(`\nserve RSS (every ${SAMPLE_MS / 1000} s, MiB): min ${fmt(rss[0])}, median ${fmt(pct(rss, 0.5))}, max ${fmt(rss.at(-1))}`)
const perMinute = []
for (let m = 0; m * 60_000 < runMs; m++) {
  const xs = samples.filter((s) => s.t >= m * 60_000 && s.t < (m + 1) * 60_000 && Number.isFinite(s.rss)).map((s) => s.rss).sort((a, b) => a - b)
  perMinute.push(pct(xs, 0.5))
}
console.log(`RSS per minute (median of the minute, MiB): ${perMinute.map((x) => fmt(x)).join(' ')}`)
// RSS over time beside what V8 holds: a leak in JavaScript shows as heap used rising at its lows; a
// native one (malloc, SQLite, glibc arenas) as RssAnon rising while the heap total stays.
try {
console.log(`\nserve memory per minute (medians of the minute's 5 s samples, MiB; heap = serve's main thread from /metrics; caches = the engine's byte-bounded caches in it, ucanlog_cache_bytes summed; workers = the worker threads' heaps, summed, from ucanlog_worker_heap_bytes):\n`)
console.log('| min | life | phase | RSS | RssAnon | heap total | heap used (min–max) | of it the caches | workers heap total | workers used (min–max) | external | RssAnon − heaps total |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
for (let m = 0; m * 60_000 < runMs; m++) {
  const xs = samples.filter((s) => s.t >= m * 60_000 && s.t < (m + 1) * 60_000)
  const med = (k) => pct(xs.map((s) => s[k]).filter(Number.isFinite).sort((a, b) => a - b), 0.5)
  const used = xs.map((s) => s.heapUsed).filter(Number.isFinite)
  const wUsed = xs.map((s) => s.workersUsed).filter(Number.isFinite)
  const range = (v) => (v.length ? `${fmt(Math.min(...v))}–${fmt(Math.max(...v))}` : '–')
  const kinds = [...new Set(xs.map((s) => s.phase))].join(', ')
  console.log(`| ${m} | ${[...new Set(xs.map((s) => s.restarts + 1))].join(', ')} | ${kinds} | ${fmt(med('rss'))} | ${fmt(med('anon'))} | ${fmt(med('heapTotal'))} | ${range(used)} | ${fmt(med('caches'), 1)} | ${fmt(med('workersTotal'))} | ${range(wUsed)} | ${fmt(med('external'), 1)} | ${fmt(med('anon') - med('heapTotal') - med('workersTotal'))} |`)
}
} catch (err) {
  console.log(`(memory table failed: ${err.message})`)
}
// Growth verdict: least-squares slope of the per-minute medians over the last two thirds.
const tail = perMinute.map((y, x) => [x, y]).slice(Math.floor(perMinute.length / 3)).filter(([, y]) => Number.isFinite(y))
const mx = tail.reduce((a, [x]) => a + x, 0) / tail.length
const my = tail.reduce((a, [, y]) => a + y, 0) / tail.length
const slope = tail.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / tail.reduce((a, [x]) => a + (x - mx) ** 2, 0)
console.log(`RSS slope over the last two thirds of the run: ${fmt(slope, 2)} MiB/min (${!Number.isFinite(slope) ? 'too short to tell' : slope < 1 ? 'no growth' : 'GROWING'}; each kill -9 restarts the process, see per life below)`)
// The same per process life (between kill -9 restarts), from its third minute on (past warm-up and catch-up).
for (let life = 0; life <= state.restarts; life++) {
  const xs = samples.filter((x) => x.restarts === life && Number.isFinite(x.rss))
  if (!xs.length) continue
  const from = xs[0].t + 120_000
  const pts = xs.filter((x) => x.t >= from).map((x) => [x.t / 60_000, x.rss])
  let line = `  life ${life + 1} (${clock(xs[0].t)}–${clock(xs.at(-1).t)}): RSS ${fmt(Math.min(...xs.map((x) => x.rss)))}–${fmt(Math.max(...xs.map((x) => x.rss)))} MiB`
  if (pts.length >= 12) {
    const ax = pts.reduce((a, [x]) => a + x, 0) / pts.length
    const ay = pts.reduce((a, [, y]) => a + y, 0) / pts.length
    const k = pts.reduce((a, [x, y]) => a + (x - ax) * (y - ay), 0) / pts.reduce((a, [x]) => a + (x - ax) ** 2, 0)
    line += `, slope from its third minute ${fmt(k, 2)} MiB/min`
  }
  console.log(line)
}
console.log(`\nserve exited by itself ${state.crashes.length} times${state.crashes.map((c) => ` at ${clock(c.t)} (${c.signal ?? `code ${c.code}`}, in phase ${kindOf(c.t)})`).join(',')}`)
if (state.crashes.length) failed = true
console.log(`phases: ${phases.map((p) => `${clock(p.start)} ${p.kind}`).join('; ')}`)
const warns = existsSync(join(logs, 'serve.log')) ? readFileSync(join(logs, 'serve.log'), 'utf8').split('\n').filter(Boolean) : []
const msgs = {}
for (const l of warns) {
  try {
    const j = JSON.parse(l)
    const k = `${j.level >= 50 ? 'error' : 'warn'} "${j.msg}"`
    msgs[k] = (msgs[k] ?? 0) + 1
  } catch {
    // Not pino's: count only the first line of what was printed (an error's name and message), not its stack.
    if (/^\w*(Error|Exception)\b/.test(l)) msgs[`stderr "${l.slice(0, 80)}"`] = (msgs[`stderr "${l.slice(0, 80)}"`] ?? 0) + 1
  }
}
console.log(`serve log lines (warn and above): ${Object.entries(msgs).map(([k, v]) => `${v}× ${k}`).join('; ') || 'none'}`)
console.log(`load average at end: ${la()}; verdict: ${failed ? 'FAILED (see above)' : `every acknowledged entry present, audit clean, ${storacha ? 'uploads drained' : 'no upload check (Storacha off)'}, no crash`}`)

const kept = join(build, `serve-${stamp}.log`)
execFileSync('cp', [join(logs, 'serve.log'), kept])
console.log(`serve's log and the raw figures kept in ${build.slice(root.length)}: serve-${stamp}.log, soak-${stamp}.json`)
// A graceful stop (SIGTERM), timed; cleanup() kills what is left.
const ts = performance.now()
await state.restarting
state.serve.expected = true
state.serve.child.kill('SIGTERM')
const stoppedIn = await Promise.race([exited(state.serve.child).then(() => performance.now() - ts), sleep(30_000).then(() => NaN)])
console.log(`serve stopped on SIGTERM in ${Number.isFinite(stoppedIn) ? `${fmt(stoppedIn)} ms` : 'more than 30 s (then killed)'}`)
await cleanup()
process.exit(failed ? 1 : 0)

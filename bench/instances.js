// Side by side, in one run (issue 14 must-show): one `ucanlog serve` on the embedded file store (the
// default), one on PostgreSQL (`--database-url`), and two on one PostgreSQL database sharing the
// service key, the client spreading its requests over both (an append reaching the instance that
// does not hold its log's lease is forwarded to the one that does). Same client for all
// (bench/throughput-client.js, its own process): distinct delegations, a nonce in each, one
// invocation per request, appends spread over 1 space or over many (a log is single-writer: two
// instances cannot beat one on one log; many spaces can spread over them). A configuration's warm-up
// and all its runs append to the same spaces (the warm-up opens their logs); requests go to the
// instances by a fixed hash of their number, independent of the space, as a load balancer would.
//
// PostgreSQL: a throwaway server on loopback (bench/postgres-server.js) with fsync,
// synchronous_commit and full_page_writes ON (the durable defaults, unlike the tests' server); one
// database per configuration. All servers run for the whole benchmark; for each repetition and
// space count, each configuration in turn (interleaved, so drift hits all alike). Per run: appends/s
// (wall), p50/p99 from sending an append to its cosigned receipt, CPU per append of the ucanlog
// process(es) (/proc/<pid>/stat utime+stime, every thread), of PostgreSQL (every server process),
// and of the client; WAL bytes and write transactions per append; appends forwarded between
// instances; the 1-minute load average before the run. `uptime` is printed before and after.
//
//   BENCH_INST_CONFIGS    file,pg1,pg2
//   BENCH_INST_SPACES     1,64            spaces the appends are spread over (append i → space i mod n)
//   BENCH_INST_REPS       3
//   BENCH_INST_APPENDS    512             appends per run
//   BENCH_INST_INFLIGHT   64              requests (= appends) in flight
//   BENCH_INST_WARMUP     256             appends sent to each configuration before the timed runs (JIT)
//   BENCH_INST_UCANLOG_ARGS  extra `ucanlog serve` flags for every instance
//
// Wall-clock figures are noisy on a shared machine; the CPU figures are per append. Nothing here is a test.
import { execFileSync, fork, spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPostgres } from './postgres-server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const list = (v, d) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean)
const CONFIGS = list(process.env.BENCH_INST_CONFIGS, 'file,pg1,pg2')
const SPACES = list(process.env.BENCH_INST_SPACES, '1,64').map(Number)
const REPS = Number(process.env.BENCH_INST_REPS ?? 3)
const APPENDS = Number(process.env.BENCH_INST_APPENDS ?? 512)
const INFLIGHT = Number(process.env.BENCH_INST_INFLIGHT ?? 64)
const WARMUP = Number(process.env.BENCH_INST_WARMUP ?? 256)
const EXTRA = list(process.env.BENCH_INST_UCANLOG_ARGS, '').flatMap((a) => a.split(' '))
const TICK = 100 // clock ticks per second of /proc/<pid>/stat (Linux USER_HZ)

/** Starts `ucanlog serve` (this checkout's build) on `dataDir`, on `databaseUrl` when given; resolves { url, did, pid, stop }. */
async function serve(dataDir, databaseUrl) {
  const args = [join(root, 'bin', 'ucanlog.js'), 'serve', '--port', '0', '--data', dataDir, '--witness-policy', join(root, 'witness_policy.txt'), '--log-level', 'warn',
    '--client-rate', '0', '--agent-rate', '0', '--space-rate', '0', '--replay-per-space', '100000000', '--log-create-rate', '0',
    ...(databaseUrl ? ['--database-url', databaseUrl] : []), ...EXTRA]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const { url, did } = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      const m = /serving on (http:\/\/\S+)\s+service DID: (\S+)/.exec(out)
      if (m) resolve({ url: m[1], did: m[2] })
    })
    child.once('exit', (code) => reject(new Error(`ucanlog serve exited ${code}: ${out}`)))
  })
  const exited = new Promise((r) => child.once('exit', r))
  return { url, did, pid: child.pid, stop: async () => (child.kill('SIGTERM'), await exited) }
}

/** CPU (ms, user + system, all threads) a process has used so far. */
function procCpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK
}

/** Resident set size now, MiB. */
function procRssMiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024
}

/** Appends forwarded by an instance so far (every result), from its /metrics. */
async function forwardedTotal(url) {
  const text = await (await fetch(`${url}/metrics`)).text()
  return text.split('\n').filter((l) => l.startsWith('ucanlog_forwarded_requests_total{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0)
}

function clientProcess() {
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
    ready,
    call: (m) => new Promise((resolve, reject) => {
      waiting.set(++seq, { resolve, reject })
      child.send({ ...m, seq })
    }),
    stop: () => child.kill('SIGTERM'),
  }
}

const stats = (xs) => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s.length ? { min: s[0], med: s[Math.floor((s.length - 1) / 2)], max: s.at(-1) } : { min: NaN, med: NaN, max: NaN }
}
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const mmm = (xs, d = 0) => {
  const s = stats(xs)
  return `${fmt(s.min, d)} / ${fmt(s.med, d)} / ${fmt(s.max, d)}`
}
const uptime = () => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim()
  } catch {
    return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`
  }
}

/** `npm run bench:instances` entry (also `node bench/run.js instances`): prints a table (min / median / max over the repetitions). */
export async function run(report = () => {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-inst-'))
  const client = clientProcess()
  const postgres = CONFIGS.some((c) => c.startsWith('pg')) ? await startPostgres() : undefined
  const configs = []
  try {
    console.log(`before: ${uptime()}`)
    if (postgres) console.log(`PostgreSQL ${postgres.settings.server_version} on loopback: fsync=${postgres.settings.fsync}, synchronous_commit=${postgres.settings.synchronous_commit}, full_page_writes=${postgres.settings.full_page_writes}`)
    for (const name of CONFIGS) {
      const n = name.startsWith('pg2') ? 2 : 1
      const db = name === 'file' ? undefined : await postgres.database(`bench_${name}`)
      const instances = []
      for (let i = 0; i < n; i++) {
        const data = join(dir, `${name}-${i}`)
        await mkdir(data)
        // Every instance of one service holds the same keys (docs/storage.md); the first makes them.
        if (i > 0) for (const f of ['service.key', 'witness.key', 'origin-prefix']) await copyFile(join(dir, `${name}-0`, f), join(data, f))
        instances.push(await serve(data, db))
      }
      configs.push({ name, db: !!db, instances })
    }
    await client.ready
    console.log(`configurations: ${configs.map((c) => `${c.name} (${c.instances.length} × ucanlog serve${c.db ? ', PostgreSQL' : ', file store'})`).join(', ')}; ${APPENDS} appends per run, ${INFLIGHT} in flight, one per request; ${REPS} repetitions`)

    // Pre-sign everything (the client's signing is not part of any timed phase).
    const plan = []
    for (let rep = 0; rep < REPS; rep++)
      for (const spaces of SPACES)
        for (const c of configs) plan.push({ id: `${c.name}-${rep}-${spaces}`, c, spaces, count: APPENDS })
    const warm = configs.flatMap((c) => SPACES.map((spaces) => ({ id: `${c.name}-warm-${spaces}`, c, spaces, count: Math.max(WARMUP, spaces) })))
    let signMs = 0
    let signed = 0
    for (const p of [...warm, ...plan]) {
      const urls = p.c.instances.map((s) => s.url)
      const r = await client.call({ cmd: 'prepare', id: p.id, url: urls[0], urls, did: p.c.instances[0].did, count: p.count, perRequest: 1, spaceProof: 'shared', spaces: p.spaces, spaceSet: p.c.name })
      signMs += r.signCpuMs
      signed += r.count
    }
    console.log(`client pre-signed ${signed} appends (${fmt((signMs * 1000) / signed)} µs of client CPU each, not timed below)`)
    for (const p of warm) {
      const r = await client.call({ cmd: 'run', id: p.id, inflight: INFLIGHT })
      console.error(`warm-up ${p.id}: ${r.ok}/${p.count} ok in ${fmt(r.wallMs)} ms`)
    }

    const results = new Map()
    for (const p of plan) {
      const pids = p.c.instances.map((s) => s.pid)
      const load = loadavg()[0]
      const cpu0 = pids.reduce((n, pid) => n + procCpuMs(pid), 0)
      const pg0 = postgres ? { cpu: postgres.cpuMs(), wal: await postgres.walBytes(), xact: await postgres.writeTransactions() } : undefined
      const fwd0 = p.c.instances.length > 1 ? (await Promise.all(p.c.instances.map((s) => forwardedTotal(s.url)))).reduce((a, b) => a + b, 0) : 0
      const r = await client.call({ cmd: 'run', id: p.id, inflight: INFLIGHT })
      const serverMs = pids.reduce((n, pid) => n + procCpuMs(pid), 0) - cpu0
      const pgMs = pg0 ? postgres.cpuMs() - pg0.cpu : NaN
      const wal = pg0 ? (await postgres.walBytes()) - pg0.wal : NaN
      const xact = pg0 ? (await postgres.writeTransactions()) - pg0.xact - 1 : NaN // minus the counter's own call
      const fwd = p.c.instances.length > 1 ? (await Promise.all(p.c.instances.map((s) => forwardedTotal(s.url)))).reduce((a, b) => a + b, 0) - fwd0 : 0
      console.error(`${p.id}: ${r.ok}/${p.count} ok in ${fmt(r.wallMs)} ms`)
      const key = `${p.c.name} ${p.spaces}`
      const row = results.get(key) ?? { name: p.c.name, n: p.c.instances.length, spaces: p.spaces, rate: [], p50: [], p99: [], server: [], pg: [], client: [], wal: [], xact: [], fwd: [], load: [], rss: [], errors: {} }
      const n = p.count
      row.rate.push((r.ok * 1000) / r.wallMs)
      row.p50.push(r.p50)
      row.p99.push(r.p99)
      row.server.push((serverMs * 1000) / n)
      row.pg.push(p.c.db ? (pgMs * 1000) / n : NaN)
      row.client.push((r.clientCpuMs * 1000) / n)
      row.wal.push(p.c.db ? wal / n : NaN)
      row.xact.push(p.c.db ? xact / n : NaN)
      row.fwd.push((100 * fwd) / n)
      row.load.push(load)
      row.rss.push(pids.reduce((m, pid) => m + procRssMiB(pid), 0))
      for (const [e, c] of Object.entries(r.errors)) row.errors[e] = (row.errors[e] ?? 0) + c
      results.set(key, row)
    }

    console.log(`\nmin / median / max of ${REPS} repetitions; appends/s and latency wall-clock (send → cosigned receipt); CPU per append in µs (server = every ucanlog serve process of the configuration, all threads); WAL and write transactions of PostgreSQL per append; RSS summed over the configuration's processes after the run`)
    console.log('| configuration | spaces | appends/s | p50 ms | p99 ms | server CPU µs/append | PostgreSQL CPU µs/append | client CPU µs/append | WAL bytes/append | DB write transactions/append | forwarded % | server RSS MiB | load (1 min) before | failed |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    const label = { file: '1 × file store', pg1: '1 × PostgreSQL', pg2: '2 × PostgreSQL' }
    for (const r of results.values()) {
      const failed = Object.entries(r.errors).map(([e, c]) => `${c} ${e}`).join(', ') || '0'
      console.log(`| ${label[r.name] ?? r.name} | ${r.spaces} | ${mmm(r.rate)} | ${mmm(r.p50)} | ${mmm(r.p99)} | ${mmm(r.server)} | ${mmm(r.pg)} | ${mmm(r.client)} | ${mmm(r.wal)} | ${mmm(r.xact, 1)} | ${mmm(r.fwd)} | ${mmm(r.rss)} | ${mmm(r.load, 1)} | ${failed} |`)
      report(`${label[r.name] ?? r.name}, ${r.spaces} spaces (median appends/s, wall)`, stats(r.rate).med, 'appends/s')
    }
    console.log(`\nafter: ${uptime()}`)
  } finally {
    client.stop()
    for (const c of configs) for (const s of c.instances) await s.stop()
    await postgres?.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()

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
//   BENCH_INST_OPEN_LOGS  0               then, when > 0: memory per open log — a fresh instance on the file
//                         store and one on PostgreSQL (both --max-open-logs above it, idle release 10 min),
//                         one append to each of this many new spaces; RSS after, minus RSS after one space
//
// Wall-clock figures are noisy on a shared machine; the CPU figures are per append. Nothing here is a test.
import { execFileSync } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPostgres } from './postgres-server.js'
import { clientProcess, fmt, mmm, procCpuMs, startProcess, stats } from './throughput.js'
import { npmStartNodeFlags } from './serve-flags.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const list = (v, d) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean)
const CONFIGS = list(process.env.BENCH_INST_CONFIGS, 'file,pg1,pg2')
const SPACES = list(process.env.BENCH_INST_SPACES, '1,64').map(Number)
const REPS = Number(process.env.BENCH_INST_REPS ?? 3)
const APPENDS = Number(process.env.BENCH_INST_APPENDS ?? 512)
const INFLIGHT = Number(process.env.BENCH_INST_INFLIGHT ?? 64)
const WARMUP = Number(process.env.BENCH_INST_WARMUP ?? 256)
const OPEN_LOGS = Number(process.env.BENCH_INST_OPEN_LOGS ?? 0)
const EXTRA = list(process.env.BENCH_INST_UCANLOG_ARGS, '').flatMap((a) => a.split(' '))

/** Starts `ucanlog serve` (this checkout's build) on `dataDir`, on `databaseUrl` when given; resolves { url, did, pid, stop }. */
async function serve(dataDir, databaseUrl, more = []) {
  const args = [join(root, 'bin', 'ucanlog.js'), 'serve', '--port', '0', '--data', dataDir, '--witness-policy', join(root, 'witness_policy.txt'), '--log-level', 'warn',
    '--client-rate', '0', '--agent-rate', '0', '--space-rate', '0', '--replay-per-space', '100000000', '--log-create-rate', '0',
    ...(databaseUrl ? ['--database-url', databaseUrl] : []), ...more, ...EXTRA]
  return startProcess('ucanlog serve', [...npmStartNodeFlags(root), ...args])
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
    if (OPEN_LOGS > 0) {
      console.log(`\nmemory per open log: one append to each of ${OPEN_LOGS} new spaces (${INFLIGHT} in flight), every log kept open`)
      console.log('| store | RSS after 1 space MiB | RSS after | RSS per open log KiB | database growth per log KiB (schema included) |')
      console.log('|---|---|---|---|---|')
      for (const name of ['file', 'pg1']) {
        if (name === 'pg1' && !postgres) continue
        const db = name === 'pg1' ? await postgres.database('bench_open_logs') : undefined
        const empty = db ? await postgres.databaseBytes('bench_open_logs') : NaN
        const data = join(dir, `open-${name}`)
        await mkdir(data)
        const s = await serve(data, db, ['--max-open-logs', String(OPEN_LOGS + 64), '--database-idle-release', '600000'])
        try {
          for (const [id, spaces] of [[`open-${name}-1`, 1], [`open-${name}-n`, OPEN_LOGS]]) {
            await client.call({ cmd: 'prepare', id, url: s.url, did: s.did, count: spaces === 1 ? 64 : OPEN_LOGS, perRequest: 1, spaceProof: 'shared', spaces })
            const r = await client.call({ cmd: 'run', id, inflight: INFLIGHT })
            if (r.ok < (spaces === 1 ? 64 : OPEN_LOGS)) console.error(`${id}: only ${r.ok} ok: ${JSON.stringify(r.errors)}`)
            if (spaces === 1) s.base = procRssMiB(s.pid)
          }
          const rss = procRssMiB(s.pid)
          const size = db ? (await postgres.databaseBytes('bench_open_logs')) - empty : NaN // the schema's own size counted in
          console.log(`| ${name === 'file' ? 'file store' : 'PostgreSQL'} | ${fmt(s.base)} | ${fmt(rss)} | ${fmt(((rss - s.base) * 1024) / (OPEN_LOGS - 1))} | ${fmt(size / 1024 / OPEN_LOGS)} |`)
        } finally {
          await s.stop()
        }
      }
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

// A mixed attack on loopback (issue 8): `ucanlog serve` with its defaults in a child process,
// attacked for BENCH_ATTACK_SECONDS (default 60) by one process per role of bench/attack-worker.js
// (proof-graph bombs, replayed and forged floods, read amplification, log creation with fresh
// keys, slow connections, revocation spam), each from its own loopback address, while an honest
// agent appends at BENCH_LEGIT_RATE per second (default 20) from 127.0.0.1. Attackers run at the
// lowest CPU priority (nice 19): this machine also runs them, where in production they are remote.
// Prints the honest agent's success count and latency (p50/p99/max), whether every acknowledged
// entry is in the log at its index, the server's resident memory (start/max/end, sampled every
// 500 ms), and what each attacker got back. Nothing here asserts; record the figures.
import { fork, spawn } from 'node:child_process'
import os from 'node:os'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { npmStartNodeFlags } from './serve-flags.js'

const SECONDS = Number(process.env.BENCH_ATTACK_SECONDS ?? 60)
const LEGIT_RATE = Number(process.env.BENCH_LEGIT_RATE ?? 20)
const ROLES = (process.env.BENCH_ATTACK_ROLES ?? 'replay,forged,bomb,reads,creator,slow,revoke').split(',').filter(Boolean)
const root = fileURLToPath(new URL('..', import.meta.url))
// The server under attack: this checkout's build, or another checkout's (BENCH_SERVER_ROOT, e.g. a
// worktree of an older commit, built) to compare before and after side by side.
const serverRoot = process.env.BENCH_SERVER_ROOT ?? root

async function rssKiB(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
  } catch {
    return NaN
  }
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
async function cpuSeconds(pid) {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return NaN
  }
}

async function startServer(dataDir) {
  const child = spawn(process.execPath, [...npmStartNodeFlags(serverRoot), join(serverRoot, 'bin', 'ucanlog.js'), 'serve', '--port', '0', '--data', dataDir, '--log-level', 'error'], {
    cwd: serverRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d.toString()
      const m = /serving on (http:\/\/\S+)/.exec(out)
      if (m) resolve(m[1])
    })
    child.once('exit', (code) => reject(new Error(`ucanlog serve exited with ${code}`)))
  })
  const did = (await (await fetch(`${url}/did`)).text()).trim()
  return { child, url, did }
}

export async function run(report) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-attack-'))
  const server = await startServer(dataDir)
  const results = []
  const workers = []
  try {
    const rss = [await rssKiB(server.child.pid)]
    const cpu0 = await cpuSeconds(server.child.pid)
    const t0 = performance.now()
    const sampler = setInterval(async () => rss.push(await rssKiB(server.child.pid)), 500)
    const start = (role, address) => {
      const w = fork(join(root, 'bench', 'attack-worker.js'), [role, server.url, server.did, address, String(LEGIT_RATE)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      // Attackers run at the lowest CPU priority: in production they are on other machines, so their
      // own signing and encoding must not take CPU from the server or the honest client here.
      if (role !== 'legit') os.setPriority(w.pid, 19)
      const done = new Promise((resolve) => {
        w.on('message', (m) => m.type === 'result' && resolve(m))
        w.once('exit', (code) => resolve({ role, failed: `exited ${code}` }))
      })
      workers.push({ role, w, done })
      return w
    }
    const legit = start('legit', '127.0.0.1')
    ROLES.forEach((role, i) => start(role, `127.0.0.${i + 2}`))
    const replayer = workers.find((x) => x.role === 'replay')?.w
    legit.on('message', (m) => m.type === 'replay-body' && replayer?.send(m))
    const healthz = []
    const probe = setInterval(async () => {
      const t0 = performance.now()
      const status = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => 'timeout')
      healthz.push({ status, ms: performance.now() - t0 })
    }, 1000)
    await new Promise((r) => setTimeout(r, SECONDS * 1000))
    clearInterval(probe)
    const busy = (await cpuSeconds(server.child.pid)) - cpu0
    const wall = (performance.now() - t0) / 1000
    for (const { w } of workers) w.connected && w.send({ type: 'stop' })
    // A worker stuck on a frozen server (requests time out after 10 s each) gets 90 s, then is killed.
    const deadline = new Promise((resolve) => setTimeout(resolve, 90_000).unref())
    for (const { role, w, done } of workers) {
      const result = await Promise.race([done, deadline.then(() => ({ role, failed: 'no result within 90 s of the stop' }))])
      if (result.failed) w.kill('SIGKILL')
      results.push(result)
    }
    clearInterval(sampler)
    rss.push(await rssKiB(server.child.pid))

    const l = results.find((r) => r.role === 'legit')
    if (l.failed) report('honest agent: no result', NaN, l.failed)
    report(`honest agent: appends acknowledged in ${SECONDS} s at ${LEGIT_RATE}/s offered`, l.acked ?? NaN, 'appends')
    report('honest agent: outcomes', 0, JSON.stringify(l.statuses))
    report('honest agent: latency p50', l.p50, 'ms')
    report('honest agent: latency p99', l.p99, 'ms')
    report('honest agent: latency max', l.max, 'ms')
    report('honest agent: acknowledged entries missing or different at their index', l.lost ?? NaN, l.readBack ? `entries (read back ${l.readBack})` : 'entries')
    const sorted = healthz.map((h) => h.ms).sort((a, b) => a - b)
    report('GET /healthz during the attack: p99', sorted[Math.floor(sorted.length * 0.99)] ?? NaN, `ms (${healthz.filter((h) => h.status !== 200).length} of ${healthz.length} not 200)`)
    const valid = rss.filter(Number.isFinite)
    report('server CPU during the attack (one core = 100%)', (100 * busy) / wall, '%')
    report('server RSS at start', valid[0] / 1024, 'MiB')
    report('server RSS max', Math.max(...valid) / 1024, 'MiB')
    report('server RSS at end', valid.at(-1) / 1024, 'MiB')
    for (const r of results.filter((x) => x.role !== 'legit')) {
      const extra = Object.entries(r)
        .filter(([k]) => !['type', 'role', 'requests', 'statuses'].includes(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')
      report(`attacker ${r.role}: requests`, r.requests ?? NaN, `${JSON.stringify(r.statuses ?? {})} ${extra}`)
    }
  } finally {
    for (const { w } of workers) w.kill('SIGKILL')
    server.child.kill('SIGKILL')
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`server: ${serverRoot === root ? 'this checkout' : serverRoot}`)
  await run((name, value, unit) => console.log(`${name.padEnd(80)} ${Number.isFinite(value) ? value.toFixed(value < 100 ? 1 : 0).padStart(10) : String(value).padStart(10)} ${unit}`))
}

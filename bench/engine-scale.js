// The log engine at scale (issue 11 items 3, 5, 6): memory held by one large log and by many small
// open logs, inclusion-proof latency in a large log (in the writing process, after reopening it
// there, and after a restart: the same files opened by a new process), and
// checkpoints per second and CPU per checkpoint under load. Each section runs in its own child
// process (`--expose-gc`) so RSS figures do not mix.
//
//   BENCH_BIG_ENTRIES   entries of the large log (default 200,000; the figure is 1,000,000)
//   BENCH_SMALL_LOGS    small open logs (default 200; the figure is 1,000), 10 entries each
//   BENCH_PROOFS        inclusion proofs timed per phase (default 2,000)
//   BENCH_CADENCE_RATES appends/s offered to one log for the cadence section (default 100,1000)
//   BENCH_CADENCE_SECONDS  seconds per rate (default 3); the witness round is a 3 ms wait
//   BENCH_DIST          the built tree to measure (default ../dist): point it at an older build to
//                       compare before and after side by side
//
// Latencies are wall-clock (noisy on a busy machine); CPU figures are process.cpuUsage() deltas.
import { fork } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const DIST = resolve(process.env.BENCH_DIST ?? join(here, '..', 'dist'))
const BIG = Number(process.env.BENCH_BIG_ENTRIES ?? 200_000)
const SMALL = Number(process.env.BENCH_SMALL_LOGS ?? 200)
const PROOFS = Number(process.env.BENCH_PROOFS ?? 2000)
const RATES = (process.env.BENCH_CADENCE_RATES ?? '100,1000').split(',').filter(Boolean).map(Number)
const SECONDS = Number(process.env.BENCH_CADENCE_SECONDS ?? 3)
const origin = 'ucanlog/logs/did:key:z6MkbenchbenchbenchbenchbenchbenchbenchbenchBen'
const MiB = 2 ** 20

/** `npm run bench`: each section in a child process; prints its figures. */
export async function run(report) {
  for (const section of ['cadence', 'big', 'small']) {
    const r = await runChild(section)
    for (const [name, value, unit] of r) report(name, value, unit)
  }
}

function runChild(section, args = []) {
  const child = fork(fileURLToPath(import.meta.url), [section, ...args], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((res, rej) => {
    child.once('message', res)
    child.once('exit', (code) => code && rej(new Error(`engine-scale ${section} exited ${code}`)))
  })
}

async function load() {
  const url = (p) => pathToFileURL(join(DIST, p)).href
  const [{ Log }, { FileStore }, { CarPacker }, tlog] = await Promise.all([
    import(url('src/log/log.js')),
    import(url('src/storage/file-store.js')),
    import(url('src/storage/car-packer.js')),
    import(url('src/tlog/index.js')),
  ])
  return { Log, FileStore, CarPacker, ed25519Signer: tlog.ed25519Signer }
}

function rss() {
  globalThis.gc?.()
  globalThis.gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heap: m.heapUsed + m.external + m.arrayBuffers }
}

function cpuMs(from) {
  const d = process.cpuUsage(from)
  return (d.user + d.system) / 1000
}

const entry = (i) => new TextEncoder().encode(`bench entry ${i} `.padEnd(100, '.'))
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

/** Counts checkpoints and the CPU spent in the witness round and the CAR of each. */
function meters(roundMs = 0) {
  const m = { checkpoints: 0, cpuMs: 0 }
  const timed = async (f) => {
    const c = process.cpuUsage()
    try {
      return await f()
    } finally {
      m.cpuMs += cpuMs(c)
    }
  }
  const witnesses = {
    cosign: (note) => timed(async () => {
      m.checkpoints++
      if (roundMs) await new Promise((r) => setTimeout(r, roundMs))
      return { note, cosigned: new Set(), satisfied: true }
    }),
  }
  const wrapArchive = (a) => ({ get lastTreeSize() { return a.lastTreeSize }, pack: (n, f) => timed(() => a.pack(n, f)), close: () => a.close() })
  return { m, witnesses, wrapArchive }
}

/** Wall-clock and CPU (this process's, so a descheduled proof does not count) p50/p99 of random inclusion proofs, ms. */
async function proofTimes(log, size) {
  const t = []
  const c = []
  for (let i = 0; i < PROOFS; i++) {
    const index = Math.floor(Math.random() * size)
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await log.proveInclusion(size, index)
    t.push(performance.now() - t0)
    c.push(cpuMs(c0))
  }
  t.sort((a, b) => a - b)
  c.sort((a, b) => a - b)
  return [pct(t, 0.5), pct(t, 0.99), pct(c, 0.5), pct(c, 0.99)]
}

async function big() {
  const { Log, FileStore, CarPacker, ed25519Signer } = await load()
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-scale-'))
  const out = []
  try {
    const base = rss()
    const { m, witnesses, wrapArchive } = meters()
    const files = await FileStore.create(join(dir, 'log'))
    const open = () => openLarge({ Log, CarPacker, ed25519Signer }, dir, files, witnesses, wrapArchive)
    let log = await open()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: 2048 }, async () => { while (next < BIG) await log.append(entry(next++)) }))
    const s = (performance.now() - t0) / 1000
    const cpu = cpuMs(c0)
    out.push([`log of ${BIG} entries: Log.append + CARs, 2,048 in flight (wall)`, BIG / s, 'entries/s'])
    out.push(['  CPU per append (whole process)', (cpu * 1000) / BIG, 'µs'])
    out.push(['  checkpoints published per second (wall)', m.checkpoints / s, 'checkpoints/s'])
    out.push(['  CPU per checkpoint (witness round + CAR; upper bound)', m.cpuMs / Math.max(1, m.checkpoints), 'ms'])
    const [p50w, p99w, c50w, c99w] = await proofTimes(log, BIG)
    const held = rss()
    out.push([`  RSS held by the open log after writing, above the process's start (${(base.rss / MiB).toFixed(0)} MiB)`, (held.rss - base.rss) / MiB, 'MiB'])
    out.push(['  JS heap + buffers held by the open log after writing', (held.heap - base.heap) / MiB, 'MiB'])
    out.push(['  inclusion proof p50 / p99, in the writing process (wall)', p50w, `ms / ${p99w.toFixed(2)} ms`])
    out.push(['  inclusion proof p50 / p99, in the writing process (CPU)', c50w, `ms / ${c99w.toFixed(2)} ms`])
    await log.close()
    log = await open()
    for (const pass of ['first', 'second']) {
      const [p50, p99, c50, c99] = await proofTimes(log, BIG)
      out.push([`  inclusion proof p50 / p99 after reopen, ${pass} pass (wall)`, p50, `ms / ${p99.toFixed(2)} ms`])
      out.push([`  inclusion proof p50 / p99 after reopen, ${pass} pass (CPU)`, c50, `ms / ${c99.toFixed(2)} ms`])
    }
    const reopened = rss()
    out.push(['  RSS held by the reopened log after the proofs', (reopened.rss - base.rss) / MiB, 'MiB'])
    await log.close()
    // What a restart sees: the same files opened by a new process (a fresh heap, every cache cold).
    out.push(...(await runChild('restart', [dir])))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return out
}

async function small() {
  const { Log, FileStore, CarPacker, ed25519Signer } = await load()
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-scale-'))
  const out = []
  try {
    const { witnesses } = meters()
    const signers = Array.from({ length: SMALL }, (_, k) => ed25519Signer(`${origin}${k}`, new Uint8Array(32).fill(1)))
    const base = rss()
    const logs = []
    for (let k = 0; k < SMALL; k++) {
      const log = await Log.open({
        id: `bench${k}`, origin: `${origin}${k}`, signer: signers[k], witnesses,
        files: await FileStore.create(join(dir, 'logs', String(k))), archive: await CarPacker.open(join(dir, 'cars', String(k))),
      })
      await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(entry(i))))
      logs.push(log)
    }
    const held = rss()
    out.push([`${SMALL} open logs of 10 entries: RSS above the process's start (${(base.rss / MiB).toFixed(0)} MiB)`, (held.rss - base.rss) / MiB, 'MiB'])
    out.push(['  RSS per open log', (held.rss - base.rss) / SMALL / 1024, 'KiB'])
    out.push(['  JS heap + buffers per open log', (held.heap - base.heap) / SMALL / 1024, 'KiB'])
    for (const l of logs) await l.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return out
}

/** Appends offered at fixed rates to one log (CARs on, a 3 ms witness round): the checkpoint cadence under load. */
async function cadence() {
  const { Log, FileStore, CarPacker, ed25519Signer } = await load()
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-scale-'))
  const out = []
  try {
    const signer = ed25519Signer(origin, new Uint8Array(32).fill(1))
    for (const rate of RATES) {
      const { m, witnesses, wrapArchive } = meters(3)
      const files = await FileStore.create(join(dir, `log-${rate}`))
      const log = await Log.open({ id: 'bench', origin, signer, files, witnesses, archive: wrapArchive(await CarPacker.open(join(dir, `cars-${rate}`))) })
      const n = rate * SECONDS
      const lat = []
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      await Promise.all(Array.from({ length: n }, async (_, i) => {
        const at = t0 + (i * 1000) / rate
        const wait = at - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        await log.append(entry(i))
        lat.push(performance.now() - at)
      }))
      const s = (performance.now() - t0) / 1000
      const cpu = cpuMs(c0)
      lat.sort((a, b) => a - b)
      out.push([`one log offered ${rate} appends/s for ${SECONDS} s (CARs, 3 ms witness round): checkpoints/s`, m.checkpoints / s, 'checkpoints/s'])
      out.push(['  entries per checkpoint', n / Math.max(1, m.checkpoints), 'entries'])
      out.push(['  CPU per checkpoint (witness round + CAR; upper bound)', m.cpuMs / Math.max(1, m.checkpoints), 'ms'])
      out.push(['  CPU per append (whole process)', (cpu * 1000) / n, 'µs'])
      out.push(['  append latency p50 / p99 (wall)', pct(lat, 0.5), `ms / ${pct(lat, 0.99).toFixed(0)} ms`])
      await log.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return out
}

/** Opens (or creates) the large log of {@link big}: its `files` (`dir`/log), its CARs in `dir`/cars (through `wrapArchive`). */
async function openLarge({ Log, CarPacker, ed25519Signer }, dir, files, witnesses, wrapArchive = (a) => a) {
  const signer = ed25519Signer(origin, new Uint8Array(32).fill(1))
  return Log.open({ id: 'bench', origin, signer, files, witnesses, archive: wrapArchive(await CarPacker.open(join(dir, 'cars'))) })
}

/** Inclusion proofs in the large log `dir` (written by {@link big}), opened by this new process. */
async function restart(dir) {
  const mods = await load()
  const log = await openLarge(mods, dir, await mods.FileStore.create(join(dir, 'log')), meters().witnesses)
  const out = []
  for (const pass of ['first', 'second']) {
    const [p50, p99, c50, c99] = await proofTimes(log, BIG)
    out.push([`  inclusion proof p50 / p99 after a restart (a new process), ${pass} pass (wall)`, p50, `ms / ${p99.toFixed(2)} ms`])
    out.push([`  inclusion proof p50 / p99 after a restart (a new process), ${pass} pass (CPU)`, c50, `ms / ${c99.toFixed(2)} ms`])
  }
  await log.close()
  return out
}

if (process.argv[2] && process.send) {
  const r = await ({ big, small, cadence, restart })[process.argv[2]](...process.argv.slice(3))
  process.send(r)
}

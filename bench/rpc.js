// End to end over HTTP on loopback: the real service (Hono, ucanto, authorization, log engine, the
// bundled witness over HTTP, CARs), driven by a client in a separate process signing a fresh
// tlog/append invocation and Agent→Service delegation per entry, N in flight.
import { fork } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startService } from '../dist/src/server/service.js'

const N = Number(process.env.BENCH_APPENDS ?? 1000)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64)
const root = fileURLToPath(new URL('..', import.meta.url))

export async function run(report) {
  for (const c of [CONCURRENCY, 256]) await runOnce(report, c)
}

async function runOnce(report, CONCURRENCY) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-bench-rpc-'))
  const svc = await startService({ port: 0, dataDir, witnessPolicyFile: join(root, 'witness_policy.txt'), logLevel: 'silent' })
  try {
    const child = fork(join(root, 'bench', 'rpc-client.js'), [svc.url, svc.did, String(N), String(CONCURRENCY)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const result = await new Promise((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => code && reject(new Error(`client exited ${code}`)))
    })
    report(`tlog/append over HTTP, ${CONCURRENCY} in flight, client in another process (${N} appends)`, result.rate, 'appends/s')
    report('  latency p50', result.p50, 'ms')
    report('  latency p99', result.p99, 'ms')
    report('  client-side signing (delegation + invocation per entry)', result.signRate, 'entries/s')
  } finally {
    await svc.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

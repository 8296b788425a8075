#!/usr/bin/env node
// `npm run build && node bench/upload-catchup.js [checkpoints]`: the cost of draining an upload
// backlog (issue 15 item 5) one checkpoint per upload (--upload-batch-checkpoints 1, the old
// behaviour) against coalesced uploads (32, the default), side by side, interleaved, 3 repetitions.
// A backlog of N packed checkpoint CARs (default 48; ~13 KiB each: a checkpoint, an 8 KiB hash tile,
// a 4 KiB entry bundle, and the directory nodes above them) is queued while the uploader is
// stopped, as after an outage; then the uploader drains it into a local Storacha (@storacha/upload-api's
// real service on loopback, in this process). Printed per mode: wall time until the space holds every
// checkpoint, CPU time of this process (the uploader AND the local Storacha), blobs stored.
// Benchmarks are not tests: nothing here asserts a time. Say the load average when quoting figures.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const N = Number(process.argv[2] ?? 48)
const build = join(root, '.tmp', 'bench-upload')
mkdirSync(build, { recursive: true })
// The local Storacha is test code (test/helpers/, not in dist): compiled here, as the Storacha demo does.
const tsconfig = join(build, 'tsconfig.json')
writeFileSync(tsconfig, JSON.stringify({ extends: join(root, 'tsconfig.json'), compilerOptions: { rootDir: root, outDir: join(build, 'build'), sourceMap: false }, include: [join(root, 'test', 'helpers', 'local-storacha.ts')] }))
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], { stdio: 'inherit' })
const { startLocalStoracha } = await import(join(build, 'build', 'test', 'helpers', 'local-storacha.js'))
const dist = (p) => import(join(root, 'dist', 'src', p))
const { CarPacker } = await dist('storage/car-packer.js')
const { UploadQueue } = await dist('storage/upload-queue.js')
const { StorachaUploader } = await dist('storage/storacha-uploader.js')
const { generateKey, delegateSpaceToAgent, delegateAgentToService } = await dist('ucan/index.js')

const storacha = await startLocalStoracha()
const service = await generateKey()
const dir = mkdtempSync(join(tmpdir(), 'ucanlog-bench-upload-'))
const quiet = console.warn
console.warn = () => {} // upload-client logs each retried request

const pad = (n) => String(n).padStart(3, '0')
/** One backlog of N checkpoints of a fresh, provisioned space; the uploader drains it with batch size k. */
async function drain(k, run) {
  const [space, agent] = [await generateKey(), await generateKey()]
  await storacha.provision(space.did())
  const packer = await CarPacker.open(join(dir, `cars-${run}`))
  const queue = new UploadQueue(join(dir, `q-${run}.sqlite`))
  const uploader = new StorachaUploader({ queue, signer: service, target: { url: storacha.url, did: storacha.did, receiptsEndpoint: storacha.receiptsEndpoint }, batchCheckpoints: k, retryMinMs: 50, retryMaxMs: 200, clientRetries: 0 })
  await uploader.rememberDelegation(space.did(), await delegateAgentToService({ agent, service, proofs: [await delegateSpaceToAgent({ space, agent })] }))
  for (let i = 1; i <= N; i++) {
    const files = new Map([
      ['checkpoint', new TextEncoder().encode(`bench\n${i * 16}\n${randomBytes(32).toString('base64')}\n`)],
      [`tile/0/${pad(i)}`, randomBytes(8192)],
      [`tile/entries/${pad(i)}`, randomBytes(4096)],
    ])
    const p = await packer.pack(i * 16, files)
    // Straight into the queue: the uploader's own enqueue would start uploading at once.
    queue.enqueue({ space: space.did(), treeSize: p.treeSize, root: p.root.toString(), carFile: p.file, carCid: p.carCid.toString() }, Date.now())
  }
  await packer.close()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  uploader.start()
  for (;;) {
    const s = uploader.status(space.did())
    if (s?.state === 'uploaded') break
    await new Promise((r) => setTimeout(r, 5))
  }
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  await uploader.close()
  queue.close()
  return { wall, cpu: (cpu.user + cpu.system) / 1000, blobs: (await storacha.blobs(space.did())).length, uploads: (await storacha.uploads(space.did())).length }
}

const modes = [1, 32]
const results = new Map(modes.map((k) => [k, []]))
console.log(`upload catch-up — ${new Date().toISOString()}, ${N} checkpoints, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
let run = 0
for (let rep = 0; rep < 3; rep++) for (const k of modes) results.get(k).push(await drain(k, run++))
const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return `${s[0].toFixed(0)} / ${s[1].toFixed(0)} / ${s[2].toFixed(0)}`
}
console.log(`${'batch (checkpoints per upload)'.padEnd(32)}${'wall ms min/med/max'.padEnd(24)}${'CPU ms min/med/max'.padEnd(24)}blobs  uploads`)
for (const k of modes) {
  const r = results.get(k)
  console.log(`${String(k).padEnd(32)}${stat(r.map((x) => x.wall)).padEnd(24)}${stat(r.map((x) => x.cpu)).padEnd(24)}${String(r[0].blobs).padEnd(7)}${r[0].uploads}`)
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.warn = quiet
await storacha.close()
rmSync(dir, { recursive: true, force: true })

#!/usr/bin/env node
// `npm run demo:storacha`: the log stored in the customer's Storacha space, end to end, on loopback.
// Runs a local Storacha (@storacha/upload-api's real service, a devDependency: `npm ci` installs it),
// provisions a space, starts `ucanlog serve --storacha-url …`, appends one entry per package of
// package-lock.json, waits until every checkpoint's CAR is in the space, reads the log back through
// the gateway and audits it from the space alone, then restores it from the space into a fresh data
// directory, lets a second instance (new key) append, and audits consistency across the takeover.
// Everything it creates lives under .demo-storacha/ (removed at the start of each run).
import { execFile, execFileSync, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const demo = join(root, '.demo-storacha')
const cli = join(root, 'bin', 'ucanlog.js')
const run = (...args) => execFileSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', stdio: ['pipe', 'pipe', 'inherit'] }).trim()
// Commands that talk to the local Storacha (which runs in this process) must not block it.
const runAsync = async (...args) => (await promisify(execFile)(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' })).stdout.trim()
const step = (s) => process.stdout.write(`\n\x1b[1m▶ ${s}\x1b[0m\n`)
rmSync(demo, { recursive: true, force: true })
mkdirSync(demo, { recursive: true })
// The local Storacha is test code (test/helpers/, not shipped in dist): compiled here, for the demo only.
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'scripts', 'tsconfig.demo-storacha.json')], { stdio: 'inherit' })
const { startLocalStoracha } = await import(join(demo, 'build', 'test', 'helpers', 'local-storacha.js'))
const { auditLog } = await import(join(root, 'dist', 'src', 'client', 'audit.js'))
const { parsePolicy } = await import(join(root, 'dist', 'src', 'tlog', 'index.js'))
const children = []

async function serve(dataDir, storacha) {
  const args = ['serve', '--data', dataDir, '--port', '0', '--log-level', 'error', '--storacha-url', storacha.url, '--storacha-did', storacha.did, '--storacha-receipts', storacha.receiptsEndpoint]
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
  children.push(child)
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = (d) => {
      out += d
      const m = /serving on (http:\/\/\S+)/.exec(out)
      if (m && /data: .*\n/.test(out)) {
        child.stdout.off('data', onData)
        child.stdout.resume()
        process.stdout.write(out)
        resolve({ url: m[1], child })
      }
    }
    child.stdout.on('data', onData)
    child.once('exit', (code) => reject(new Error(`ucanlog serve exited with ${code}`)))
  })
}

async function uploaded(url, space) {
  for (;;) {
    const h = await (await fetch(`${url}/logs/${space}/head`)).json()
    if (h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize) return h
    await new Promise((r) => setTimeout(r, 200))
  }
}

step('local Storacha: @storacha/upload-api on 127.0.0.1 (upload service, storage nodes, /receipt/<cid>, a gateway at /ipfs/)')
const storacha = await startLocalStoracha()
console.log(`upload service ${storacha.url}  (${storacha.did})\nreceipts       ${storacha.receiptsEndpoint}\ngateway        ${storacha.gateway}/ipfs/<cid>`)
try {
  step('ucanlog key create (a space and an agent); provision the space; ucanlog delegate (Space → Agent)')
  const space = run('key', 'create', '--out', join(demo, 'space.key'))
  const agent = run('key', 'create', '--out', join(demo, 'agent.key'))
  await storacha.provision(space)
  run('delegate', '--space-key', join(demo, 'space.key'), '--agent', agent, '--out', join(demo, 'space-to-agent.ucan'))
  console.log(`space ${space} (provisioned)\nagent ${agent}`)

  step('ucanlog serve --storacha-url <local Storacha>   (every published checkpoint becomes a CAR uploaded to the space)')
  const a = await serve(join(demo, 'data'), storacha)

  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const lines = Object.entries(lock.packages)
    .filter(([path, p]) => path && p.version)
    .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')}@${p.version} ${p.integrity ?? 'no-integrity'}`)
  writeFileSync(join(demo, 'entries.txt'), lines.join('\n') + '\n')
  step(`ucanlog append --file entries.txt --lines   (${lines.length} entries: name@version integrity of package-lock.json)`)
  console.log(run('append', '--url', a.url, '--agent-key', join(demo, 'agent.key'), '--proof', join(demo, 'space-to-agent.ucan'), '--file', join(demo, 'entries.txt'), '--lines'))

  step('wait for the uploads: GET /logs/<space>/head → upload')
  const t0 = performance.now()
  const head = await uploaded(a.url, space)
  console.log(JSON.stringify(head.upload, null, 2))
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s after the last append)`)
  const uploads = await storacha.uploads(space)
  const blobs = await storacha.blobs(space)
  console.log(`Storacha's upload table: ${uploads.length} uploads in the space (one per checkpoint), ${blobs.length} blobs (CAR shards of one or more checkpoints each, and their indexes), ${blobs.reduce((n, b) => n + b.size, 0)} bytes`)

  step(`the space's content alone, through the gateway: ${storacha.gateway}/ipfs/${head.upload.latestRoot}/…`)
  const gw = async (path) => {
    const res = await fetch(`${storacha.gateway}/ipfs/${head.upload.latestRoot}/${path}`)
    return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
  }
  console.log(`GET …/checkpoint\n${Buffer.from(await gw('checkpoint')).toString('utf8')}`)
  console.log(`GET …/tile/0/000 → ${(await gw('tile/0/000')).length} bytes; GET …/tile/entries/000 → ${(await gw('tile/entries/000')).length} bytes`)
  const info = await (await fetch(`${a.url}/info`)).json()
  const report = await auditLog({ fetchFile: gw, origin: head.origin, logVkey: head.vkey, policy: parsePolicy(info.witnessPolicy) })
  console.log(`audit of the space alone OK: ${report.size} entries re-hashed, tree recomputed, ${report.inclusionProofsChecked} inclusion proofs, cosigned by ${report.cosignatures.map((c) => c.name).join(', ')}`)
  console.log(run('audit', '--url', a.url, '--space', space, '--state', join(demo, 'audit')).split('\n')[0])
  a.child.kill('SIGTERM')

  step('ucanlog restore --space <did> --root <latest upload> --gateway <url> --data .demo-storacha/restored')
  console.log(await runAsync('restore', '--space', space, '--root', head.upload.latestRoot, '--gateway', storacha.gateway, '--data', join(demo, 'restored'), '--log-vkey', head.vkey))

  step('a second instance (new service key) takes the log over and appends')
  const b = await serve(join(demo, 'restored'), storacha)
  console.log(run('append', '--url', b.url, '--agent-key', join(demo, 'agent.key'), '--proof', join(demo, 'space-to-agent.ucan'), `taken over at ${new Date().toISOString()}`))
  const after = await uploaded(b.url, space)
  console.log(`upload: ${after.upload.state}, tree size ${after.upload.uploadedTreeSize} in the space, newest root ${after.upload.latestRoot}`)

  step('ucanlog audit of the new instance: consistency with the checkpoint the first audit saw (its new log key and witness given explicitly)')
  writeFileSync(join(demo, 'policy-b.txt'), (await (await fetch(`${b.url}/info`)).json()).witnessPolicy)
  console.log(run('audit', '--url', b.url, '--space', space, '--state', join(demo, 'audit'), '--log-vkey', after.vkey, '--witness-policy', join(demo, 'policy-b.txt')))
  b.child.kill('SIGTERM')
  console.log('\nDone. Everything is under .demo-storacha/.')
} finally {
  for (const c of children) c.kill('SIGTERM')
  await storacha.close()
}

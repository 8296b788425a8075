#!/usr/bin/env node
// `npm run demo`: the main job end to end on real input, on the embedded default.
// Starts `ucanlog serve`, creates a space and an agent, delegates, appends one entry per package of
// this project's own package-lock.json (name@version and integrity), then audits the log.
// Everything it creates lives under .demo/ (removed at the start of each run).
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const demo = join(root, '.demo')
const cli = join(root, 'bin', 'ucanlog.js')
const run = (...args) => execFileSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', stdio: ['pipe', 'pipe', 'inherit'] }).trim()
const step = (s) => process.stdout.write(`\n\x1b[1m▶ ${s}\x1b[0m\n`)

rmSync(demo, { recursive: true, force: true })
mkdirSync(demo, { recursive: true })

step('ucanlog serve --data .demo/data --port 0   (keys, data dir and bundled witness are created automatically)')
const server = spawn(process.execPath, [cli, 'serve', '--data', join(demo, 'data'), '--port', '0', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
const url = await new Promise((resolve, reject) => {
  let out = ''
  server.stdout.on('data', (d) => {
    out += d
    process.stdout.write(d)
    const m = /serving on (http:\/\/\S+)/.exec(out)
    if (m) resolve(m[1])
  })
  server.once('exit', (code) => reject(new Error(`ucanlog serve exited with ${code}`)))
})
try {
  step('ucanlog key create (a space and an agent)')
  const space = run('key', 'create', '--out', join(demo, 'space.key'))
  const agent = run('key', 'create', '--out', join(demo, 'agent.key'))
  console.log(`space ${space}\nagent ${agent}`)

  step('ucanlog delegate (Space → Agent: space/blob/add, space/index/add, upload/add)')
  run('delegate', '--space-key', join(demo, 'space.key'), '--agent', agent, '--out', join(demo, 'space-to-agent.ucan'))
  console.log(`wrote .demo/space-to-agent.ucan (${readFileSync(join(demo, 'space-to-agent.ucan'), 'utf8').trim().length} characters, storacha --base64 format)`)

  step('one entry per package of package-lock.json: name@version integrity')
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const lines = Object.entries(lock.packages)
    .filter(([path, p]) => path && p.version)
    .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')}@${p.version} ${p.integrity ?? 'no-integrity'}`)
  writeFileSync(join(demo, 'entries.txt'), lines.join('\n') + '\n')
  console.log(`${lines.length} entries, e.g.\n  ${lines.slice(0, 3).join('\n  ')}`)

  step(`ucanlog append --file .demo/entries.txt --lines   (${lines.length} tlog/append invocations)`)
  const t0 = performance.now()
  console.log(run('append', '--url', url, '--agent-key', join(demo, 'agent.key'), '--proof', join(demo, 'space-to-agent.ucan'), '--file', join(demo, 'entries.txt'), '--lines', '--state', join(demo, 'append-state')))
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`)

  step('ucanlog audit (log signature, witness cosignature, every entry, tree root, inclusion proofs)')
  console.log(run('audit', '--url', url, '--space', space, '--state', join(demo, 'audit')))
  step('ucanlog audit again (now also consistency with the checkpoint seen last time)')
  run('append', '--url', url, '--agent-key', join(demo, 'agent.key'), '--proof', join(demo, 'space-to-agent.ucan'), '--state', join(demo, 'append-state'), `demo finished at ${new Date().toISOString()}`)
  console.log(run('audit', '--url', url, '--space', space, '--state', join(demo, 'audit')))
  console.log(`\nDone. The demo's keys, log and CARs stay in .demo/; serve them again with:\n  npx ucanlog serve --data .demo/data\nand read http://127.0.0.1:8787/logs/${space}/checkpoint`)
} finally {
  server.kill('SIGTERM')
}

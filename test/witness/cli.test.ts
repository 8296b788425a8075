/**
 * `ucanlog witness …` as an operator runs it (the built bin/ucanlog.js): the standalone witness
 * serving over HTTP while witnessctl-style commands change its state, the key file, vkey, status
 * page and metrics; and every operator command's output and errors.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { program } from '../../src/cli/main.js'
import { ed25519Signer } from '../../src/tlog/note.js'
import { REPO } from '../e2e/helpers.js'
import { CP1, CP3, LOG, note, PROOF_1_3, WITNESS } from '../vectors/litewitness.js'
import { request } from './helpers.js'
import { serveWitness, stop } from './process.js'

const exec = promisify(execFile)
const BIN = join(REPO, 'bin', 'ucanlog.js')
/** Runs `ucanlog witness …`; never throws. */
const witness = (...args: string[]) =>
  exec(process.execPath, [BIN, 'witness', ...args], { cwd: REPO }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-witness-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('ucanlog witness serve', () => {
  it('creates a 0600 key, prints the 0x04 vkey, witnesses logs an operator adds while it runs, and shows status and metrics', async () => {
    const key = join(dir, 'w.key')
    const db = join(dir, 'w.db')
    const missing = await witness('vkey', '--name', WITNESS.name, '--key', key)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^ucanlog: witness key file .* does not exist/)

    // The litewitness test witness's seed, so the vkey is a known vector.
    await writeFile(key, Buffer.from(WITNESS.seedHex, 'hex'), { mode: 0o600 })
    const s = await serveWitness(['--name', WITNESS.name, '--key', key, '--db', db, '--listen', '127.0.0.1:0'])
    try {
      expect(s.vkey).toBe(WITNESS.vkey)
      expect(s.stdout).toContain(`ucanlog witness ${WITNESS.name} listening on ${s.url}`)
      expect((await witness('vkey', '--name', WITNESS.name, '--key', key)).stdout).toBe(`${WITNESS.vkey}\n`)

      // Unknown until the operator adds it: 404.
      expect((await fetch(`${s.url}/add-checkpoint`, { method: 'POST', body: request(0, [], note(CP1)) })).status).toBe(404)
      expect(await witness('add-log', '--db', db, '--origin', LOG.origin)).toMatchObject({ code: 0, stdout: '', stderr: '' })
      expect(await witness('add-key', '--db', db, '--origin', LOG.origin, '--key', LOG.vkey)).toMatchObject({ code: 0, stdout: '', stderr: '' })

      const r1 = await fetch(`${s.url}/add-checkpoint`, { method: 'POST', body: request(0, [], note(CP1)) })
      expect(r1.status).toBe(200)
      await r1.text()
      const r3 = await fetch(`${s.url}/add-checkpoint`, { method: 'POST', body: request(1, PROOF_1_3, note(CP3)) })
      expect(r3.status).toBe(200)
      expect(await r3.text()).toMatch(/^— example\.com\/witness \S+\n$/)
      const stale = await fetch(`${s.url}/add-checkpoint`, { method: 'POST', body: request(1, PROOF_1_3, note(CP3)) })
      expect([stale.status, stale.headers.get('content-type'), await stale.text()]).toEqual([409, 'text/x.tlog.size', '3\n'])

      const list = await witness('list-logs', '--db', db)
      expect(list.stdout).toBe(JSON.stringify({ origin: LOG.origin, size: 3, root_hash: CP3.text.split('\n')[2], keys: [LOG.vkey] }) + '\n')

      const html = await (await fetch(`${s.url}/`)).text()
      expect(html).toContain(WITNESS.vkey)
      expect(html).toContain(`<td>3</td>`)

      const metrics = await (await fetch(`${s.url}/metrics`)).text()
      expect(metrics).toContain('ucanlog_witness_add_checkpoint_requests_total{status="404"} 1')
      expect(metrics).toContain('ucanlog_witness_add_checkpoint_requests_total{status="200"} 2')
      expect(metrics).toContain('ucanlog_witness_add_checkpoint_requests_total{status="409"} 1')
      expect(metrics).toContain('ucanlog_witness_cosignatures_total 2')
    } finally {
      expect(await stop(s.child)).toBe(0)
    }
    expect((await stat(key)).mode & 0o777).toBe(0o600)

    // A missing key is created 0600; the state survives a restart.
    const key2 = join(dir, 'new.key')
    const s2 = await serveWitness(['--name', 'w2.example', '--key', key2, '--db', db, '--listen', '127.0.0.1:0'])
    try {
      expect((await stat(key2)).mode & 0o777).toBe(0o600)
      expect((await stat(key2)).size).toBe(32)
      expect((await witness('vkey', '--name', 'w2.example', '--key', key2)).stdout).toBe(`${s2.vkey}\n`)
      expect(s2.vkey).toMatch(/^w2\.example\+[0-9a-f]{8}\+B[A-Za-z0-9+/]{43}$/) // base64(0x04 || 32-byte key) starts with "B"
      const again = await fetch(`${s2.url}/add-checkpoint`, { method: 'POST', body: request(0, [], note(CP1)) })
      expect([again.status, await again.text()]).toEqual([409, '3\n'])
    } finally {
      expect(await stop(s2.child)).toBe(0)
    }
  }, 180_000) // runs the binary about 15 times (about 1 s each, more under load)

  it('refuses a bad --listen and a key file others can read, with one line and no stack', async () => {
    const bad = await witness('serve', '--name', 'w.example', '--key', join(dir, 'x.key'), '--listen', 'nowhere')
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe('ucanlog: --listen must be host:port (e.g. localhost:7380), got "nowhere"\n')
    const open = join(dir, 'open.key')
    await writeFile(open, Buffer.alloc(32, 1), { mode: 0o644 })
    const r = await witness('vkey', '--name', 'w.example', '--key', open)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/accessible by group or others .*chmod 600/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})

describe('ucanlog witness operator commands', () => {
  const other = ed25519Signer('sum.golang.org', new Uint8Array(32).fill(3))

  it('has help on every witness command (in process; the binary once)', async () => {
    const w = (await program()).commands.find((c) => c.name() === 'witness')!
    expect(w.commands.map((c) => c.name())).toEqual(['serve', 'vkey', 'add-log', 'add-key', 'del-key', 'list-logs', 'pull-logs'])
    for (const c of w.commands) {
      const help = c.helpInformation()
      expect(help).toMatch(new RegExp(`^Usage: ucanlog witness ${c.name()} \\[options\\]`))
      if (c.name() !== 'vkey') expect(help, c.name()).toContain('--db <file>')
    }
    const r = await witness('--help')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: ucanlog witness/)
  })

  it('add-log, add-key (warning when the key name is not the origin), del-key, list-logs; no command removes a log', async () => {
    const db = join(dir, 'ops.db')
    expect(await witness('add-log', '--db', db, '--origin', 'go.sum database tree')).toMatchObject({ code: 0, stderr: '' })
    expect(await witness('add-log', '--db', db, '--origin', 'go.sum database tree')).toMatchObject({ code: 1, stderr: 'ucanlog: log "go.sum database tree" already exists\n' })
    expect(await witness('add-key', '--db', db, '--origin', 'go.sum database tree', '--key', other.vkey)).toMatchObject({
      code: 0,
      stderr: 'warning: the key name "sum.golang.org" differs from the origin "go.sum database tree"\n',
    })
    expect((await witness('add-key', '--db', db, '--origin', 'go.sum database tree', '--key', other.vkey)).stderr).toMatch(/already has this key/)
    expect((await witness('add-key', '--db', db, '--origin', 'nope', '--key', other.vkey)).stderr).toMatch(/unknown log "nope"; run add-log first/)
    expect((await witness('add-key', '--db', db, '--origin', 'go.sum database tree', '--key', WITNESS.vkey)).stderr).toMatch(/want 0x01/)

    const empty = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='
    expect((await witness('list-logs', '--db', db)).stdout).toBe(JSON.stringify({ origin: 'go.sum database tree', size: 0, root_hash: empty, keys: [other.vkey] }) + '\n')
    expect(await witness('del-key', '--db', db, '--origin', 'go.sum database tree', '--key', other.vkey)).toMatchObject({ code: 0, stderr: '' })
    expect((await witness('del-key', '--db', db, '--origin', 'go.sum database tree', '--key', other.vkey)).code).toBe(1)
    expect((await witness('list-logs', '--db', db)).stdout).toBe(JSON.stringify({ origin: 'go.sum database tree', size: 0, root_hash: empty, keys: [] }) + '\n')

    for (const cmd of ['del-log', 'remove-log', 'rm-log']) expect((await witness(cmd, '--db', db)).code, cmd).not.toBe(0)
  }, 180_000)

  it('pull-logs from a file: adds new logs quietly, never changes a known one, warns when its key differs', async () => {
    const db = join(dir, 'pull.db')
    const list = join(dir, 'list.txt')
    const k1 = ed25519Signer('log1.example', new Uint8Array(32).fill(11)).vkey
    const k1b = ed25519Signer('log1.example', new Uint8Array(32).fill(12)).vkey
    await writeFile(list, `# a list\nlogs/v0\nvkey ${k1}\nqpd 1440\n\nvkey ${LOG.vkey}\ncontact someone\nvkey not-a-key\n`)
    expect(await witness('pull-logs', '--db', db, '--source', list)).toMatchObject({ code: 0, stdout: '', stderr: '' })
    const logs = (await witness('list-logs', '--db', db)).stdout.trim().split('\n').map((l) => JSON.parse(l) as { origin: string; keys: string[] })
    expect(logs.map((l) => [l.origin, l.keys])).toEqual([
      ['log1.example', [k1]],
      [LOG.origin, [LOG.vkey]],
    ])

    await writeFile(list, `logs/v0\nvkey ${k1b}\n`)
    const r = await witness('pull-logs', '--db', db, '--source', list)
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: `warning: log log1.example is listed with a different key ${k1b}; keeping ${k1}\n` })
    expect((await witness('list-logs', '--db', db)).stdout.split('\n')[0]).toContain(k1)

    await writeFile(list, `logs/v0\nvkey ${other.vkey}\nvkey junk\n`)
    const v = await witness('pull-logs', '--db', db, '--source', list, '--verbose')
    expect(v.stderr).toBe('line 3: skipping vkey "junk": malformed key: too few "+" separators\nadded sum.golang.org\n')

    await writeFile(list, `vkey ${k1}\n`)
    expect(await witness('pull-logs', '--db', db, '--source', list)).toMatchObject({ code: 1, stderr: 'ucanlog: line 1: expected the header "logs/v0", got "vkey ' + k1 + '"\n' })
    expect((await witness('pull-logs', '--db', db, '--source', join(dir, 'absent.txt'))).stderr).toMatch(/cannot read .*absent\.txt: ENOENT/)
  }, 180_000)
})

/**
 * `ucanlog witness serve --database-url` (issue 14): two processes of one witness (one key) on one
 * PostgreSQL database, configured by the operator commands on that database (flag and
 * UCANLOG_DATABASE_URL), a log's checkpoints sent to them alternately and concurrently over HTTP
 * (c2sp.org/tlog-witness add-checkpoint): every cosignature verifies under the one vkey, each size
 * is cosigned by one process only, an old size is refused with 409 by either, and a forked
 * checkpoint is refused by both. The database stopped under a running witness: 503 + Retry-After.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { cosignatureVerifier, ed25519Signer, openNote, signNote } from '../../src/tlog/index.js'
import { formatLogList } from '../../witness/index.js'
import { REPO } from '../e2e/helpers.js'
import { startPostgres, usePostgres } from '../helpers/postgres.js'
import { CP1, CP3, CP5, LOG, note, PROOF_1_3, PROOF_3_5, WITNESS } from '../vectors/litewitness.js'
import { request, signedCheckpoint } from '../witness/helpers.js'
import { serveWitness, stop } from '../witness/process.js'

const exec = promisify(execFile)
const BIN = join(REPO, 'bin', 'ucanlog.js')
const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** Runs `ucanlog witness …` with `env` added; never throws. */
const witness = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  exec(process.execPath, [BIN, 'witness', ...args], { cwd: REPO, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )

const PASSWORD = 'witness-db-secret'
/** `url` with {@link PASSWORD} as its password. */
function withPassword(url: string): string {
  const u = new URL(url)
  u.password = PASSWORD
  return u.toString()
}

const post = (url: string, body: string) => fetch(`${url}/add-checkpoint`, { method: 'POST', body })
/** A response's status and body. */
const answer = async (r: Response | Promise<Response>) => {
  const res = await r
  return { status: res.status, body: await res.text() }
}
/** Whether `line` is a cosignature of checkpoint text `text` by the witness with `vkey`. */
function cosigns(line: string, text: string, vkey: string): boolean {
  try {
    return openNote(`${text}\n${line}`, [cosignatureVerifier(vkey)]).verified.length === 1
  } catch {
    return false
  }
}

describe('ucanlog witness serve on PostgreSQL: two processes, one database', () => {
  it('checkpoints sent alternately and concurrently: consistent cosignatures, one winner per size, an old size 409 from either, a fork refused', async () => {
    const url = await postgres.server().database()
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-witness-pg-'))
    try {
      const key = join(dir, 'w.key')
      await writeFile(key, Buffer.from(WITNESS.seedHex, 'hex'), { mode: 0o600 })
      // Both processes apply the witness's schema at start (the second finds it applied).
      const [a, b] = await Promise.all([
        serveWitness(['--name', WITNESS.name, '--key', key, '--database-url', url, '--listen', '127.0.0.1:0']),
        // The test server trusts any password: this one must never be printed.
        serveWitness(['--name', WITNESS.name, '--key', key, '--listen', '127.0.0.1:0'], { UCANLOG_DATABASE_URL: withPassword(url) }),
      ])
      children.push(a.child, b.child)
      expect([a.vkey, b.vkey]).toEqual([WITNESS.vkey, WITNESS.vkey])
      expect(a.stdout).toContain('state: PostgreSQL postgres://')
      expect(b.stdout).toContain('state: PostgreSQL postgres://ucanlog:***@')
      expect(b.stdout).not.toContain(PASSWORD)

      // The operator commands on the same database, while both run: flag and environment.
      expect(await witness(['add-log', '--database-url', url, '--origin', LOG.origin])).toMatchObject({ code: 0, stderr: '' })
      expect(await witness(['add-key', '--origin', LOG.origin, '--key', LOG.vkey], { UCANLOG_DATABASE_URL: url })).toMatchObject({ code: 0, stderr: '' })
      expect((await witness(['add-log', '--database-url', url, '--origin', LOG.origin])).stderr).toMatch(/already exists/)
      expect((await witness(['add-log', '--db', join(dir, 'x.db'), '--database-url', url, '--origin', LOG.origin])).stderr).toMatch(/not both/)

      // Trust on first use at one process, growth at the other, then back.
      const c1 = await answer(post(a.url, request(0, [], note(CP1))))
      expect(c1.status).toBe(200)
      // The same size-3 checkpoint at both at once: one cosigns, the other answers 409 with size 3.
      const racing = await Promise.all([answer(post(a.url, request(1, PROOF_1_3, note(CP3)))), answer(post(b.url, request(1, PROOF_1_3, note(CP3))))])
      expect(racing.map((r) => r.status).sort()).toEqual([200, 409])
      expect(racing.find((r) => r.status === 409)!.body).toBe('3\n')
      const c3 = racing.find((r) => r.status === 200)!
      const c5 = await answer(post(b.url, request(3, PROOF_3_5, note(CP5))))
      expect(c5.status).toBe(200)
      for (const [cosig, cp] of [[c1, CP1], [c3, CP3], [c5, CP5]] as const) expect(cosigns(cosig.body, cp.text, WITNESS.vkey)).toBe(true)
      expect(cosigns(c5.body, CP3.text, WITNESS.vkey)).toBe(false)

      // An old size is refused by either process with the size both know.
      for (const w of [a, b]) {
        const res = await post(w.url, request(1, PROOF_1_3, note(CP3)))
        expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([409, 'text/x.tlog.size', '5\n'])
        expect(await answer(post(w.url, request(0, [], note(CP1))))).toEqual({ status: 409, body: '5\n' })
      }
      // A second, different checkpoint at size 5 (signed by the log): neither cosigns it.
      const fork = signedCheckpoint(5, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')
      for (const w of [a, b]) expect((await answer(post(w.url, request(5, [], fork)))).status).toBe(422)

      const list = await witness(['list-logs', '--database-url', url])
      expect(list.stdout).toBe(JSON.stringify({ origin: LOG.origin, size: 5, root_hash: CP5.text.split('\n')[2], keys: [LOG.vkey] }) + '\n')
      // Both status pages show the shared state.
      for (const w of [a, b]) expect(await (await fetch(`${w.url}/`)).text()).toContain('<td>5</td>')

      // del-key on the database disables the log at both processes.
      expect(await witness(['del-key', '--database-url', url, '--origin', LOG.origin, '--key', LOG.vkey])).toMatchObject({ code: 0, stderr: '' })
      for (const w of [a, b]) expect((await answer(post(w.url, request(5, [], note(CP5))))).status).toBe(404)

      // pull-logs on the database: adds a listed log both processes then witness.
      const pulled = ed25519Signer('example.com/pulled', new Uint8Array(32).fill(7))
      const listFile = join(dir, 'logs.txt')
      await writeFile(listFile, formatLogList([{ origin: 'example.com/pulled', vkey: pulled.vkey }, { origin: LOG.origin, vkey: LOG.vkey }]))
      const pull = await witness(['pull-logs', '--source', listFile, '--verbose'], { UCANLOG_DATABASE_URL: url })
      expect(pull.code).toBe(0)
      expect(pull.stderr).toContain('added example.com/pulled')
      const cp = signNote('example.com/pulled\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', [pulled])
      expect((await answer(post(b.url, request(0, [], cp)))).status).toBe(200)
      expect(await answer(post(a.url, request(0, [], cp)))).toEqual({ status: 409, body: '1\n' })

      expect(await stop(a.child)).toBe(0)
      expect(await stop(b.child)).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the database stopped under a running witness: add-checkpoint and the status page answer 503 DatabaseUnavailable + Retry-After, nothing cosigned', async () => {
    const own = await startPostgres() // stopped by this test, so not the file's shared server
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-witness-pg-'))
    try {
      const url = await own.database()
      const s = await serveWitness(['--name', WITNESS.name, '--key', join(dir, 'w.key'), '--database-url', url, '--listen', '127.0.0.1:0'])
      children.push(s.child)
      expect(await witness(['add-log', '--database-url', url, '--origin', LOG.origin])).toMatchObject({ code: 0 })
      expect(await witness(['add-key', '--database-url', url, '--origin', LOG.origin, '--key', LOG.vkey])).toMatchObject({ code: 0 })
      expect((await answer(post(s.url, request(0, [], note(CP1))))).status).toBe(200)
      await own.stop()
      const res = await post(s.url, request(1, PROOF_1_3, note(CP3)))
      expect([res.status, res.headers.get('retry-after'), await res.text()]).toEqual([503, '1', 'DatabaseUnavailable: the witness state cannot be reached; retry later\n'])
      const page = await fetch(`${s.url}/`)
      expect([page.status, page.headers.get('retry-after')]).toEqual([503, '1'])
      await page.text()
      expect(await (await fetch(`${s.url}/metrics`)).text()).toContain('ucanlog_witness_add_checkpoint_requests_total{status="503"} 1')
      expect(await stop(s.child)).toBe(0)
    } finally {
      await own.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('an unreachable database: serve and the operator commands exit 4 naming DatabaseUnavailable, without the password', async () => {
    const dead = 'postgres://ucanlog:secret@127.0.0.1:1/none'
    const r = await witness(['list-logs', '--database-url', dead])
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/DatabaseUnavailable|cannot reach the database/)
    expect(r.stderr).not.toContain('secret')
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-witness-pg-'))
    try {
      const s = await serveWitness(['--name', WITNESS.name, '--key', join(dir, 'k'), '--database-url', dead, '--listen', '127.0.0.1:0']).then(
        () => 'listening',
        (e: Error) => e.message,
      )
      expect(s).toMatch(/exited 4: .*cannot reach the database/s)
      expect(s).not.toContain('secret')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

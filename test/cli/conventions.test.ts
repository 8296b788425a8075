/**
 * The CLI conventions of issue 12 item 5, as a user meets them with the built `ucanlog` (run
 * `npm run build` first): distinct exit codes (0 ok, 1 usage, 2 refused by the service, 3
 * verification failed, 4 unreachable), errors as one JSON object under `--json`, `delegate --out`
 * never overwriting, a revoke with no effect saying so, and client settings from the environment.
 * The service is the real one on loopback; an unreachable service is a port nothing listens on.
 */
import { type ExecFileException, execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ed25519Signer } from '../../src/tlog/index.js'
import { REPO, startTestService } from '../e2e/helpers.js'

const RESTORE_SPACE = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI; never rejects (the exit code is in the result). */
function cli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...opts.env }
    // The client settings come only from what each test passes.
    for (const k of ['UCANLOG_URL', 'UCANLOG_AGENT_KEY', 'UCANLOG_PROOF', 'UCANLOG_KEY']) if (!opts.env?.[k]) delete env[k]
    const child = execFile(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), ...args], { cwd: opts.cwd ?? REPO, env }, (err: ExecFileException | null, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    )
    child.stdin?.end()
  })
}

/** A loopback URL nothing listens on (a port bound, then released). */
async function deadUrl(): Promise<string> {
  const s = createServer()
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((ok) => s.close(() => ok()))
  return `http://127.0.0.1:${port}`
}

let dir: string
let svc: Awaited<ReturnType<typeof startTestService>>
let spaceKey: string
let agentKey: string
let otherKey: string
let proof: string
let agentDid: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-conventions-'))
  svc = await startTestService()
  spaceKey = join(dir, 'space.key')
  agentKey = join(dir, 'agent.key')
  otherKey = join(dir, 'other.key')
  proof = join(dir, 'agent.ucan')
  expect((await cli(['key', 'create', '--out', spaceKey])).code).toBe(0)
  expect((await cli(['key', 'create', '--out', otherKey])).code).toBe(0)
  agentDid = (await cli(['key', 'create', '--out', agentKey])).stdout.trim()
  expect((await cli(['delegate', '--space-key', spaceKey, '--agent', agentDid, '--out', proof])).code).toBe(0)
})

afterAll(async () => {
  await svc?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('exit codes and --json errors', () => {
  it('a usage error exits 1; under --json it is one JSON object on stdout with the same code', async () => {
    const plain = await cli(['key', 'create'])
    expect(plain.code).toBe(1)
    expect(plain.stderr).toMatch(/--out/)
    const json = await cli(['key', 'create', '--json'])
    expect(json.code).toBe(1)
    const body = JSON.parse(json.stdout) as { error: { name: string; message: string; exitCode: number } }
    expect(body.error.exitCode).toBe(1)
    expect(body.error.message).toMatch(/--out/)
    expect(typeof body.error.name).toBe('string')
    const missing = await cli(['key', 'did', '--key', join(dir, 'nope.key'), '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { exitCode: 1, message: expect.stringContaining('nope.key') } })
  })

  it('an unreachable service exits 4 in append, revoke, audit, monitor --once and restore, naming the URL and the next step', async () => {
    const url = await deadUrl()
    for (const args of [
      ['append', '--agent-key', agentKey, '--proof', proof, '--url', url, 'x'],
      ['revoke', '--key', spaceKey, '--delegation', proof, '--url', url],
      ['audit', '--space', 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp', '--url', url, '--state', join(dir, 'audit')],
      ['monitor', '--once', '--space', 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp', '--url', url, '--state', join(dir, 'monitor')],
      // The IPFS gateway of restore is a URL too.
      ['restore', '--space', RESTORE_SPACE, '--root', 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', '--gateway', url, '--data', join(dir, 'restore'), '--log-vkey', ed25519Signer(`x.example/logs/${RESTORE_SPACE}`, new Uint8Array(32)).vkey],
    ]) {
      const r = await cli(args)
      expect(r.code, args[0]).toBe(4)
      expect(r.stderr, args[0]).toContain(url)
      expect(r.stderr, args[0]).toMatch(/--url|UCANLOG_URL|--gateway/)
      expect(r.stderr, args[0]).not.toMatch(/\n\s+at /)
      const json = await cli([...args, '--json'])
      expect(json.code, args[0]).toBe(4)
      expect(JSON.parse(json.stdout), args[0]).toMatchObject({ error: { exitCode: 4, message: expect.stringContaining(url) } })
    }
  })

  it('a refusal by the service exits 2', async () => {
    // A delegation issued to another agent: the service refuses the revocation as unrelated.
    const r = await cli(['revoke', '--key', otherKey, '--delegation', proof, '--url', svc.url])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/UnrelatedRevocation/)
    expect(r.stderr).toMatch(/no effect/)
  })

  it('--help of every command has an Exit status section', async () => {
    for (const cmd of [['serve'], ['key', 'create'], ['key', 'did'], ['delegate'], ['append'], ['revoke'], ['audit'], ['restore'], ['witness', 'serve'], ['witness', 'vkey'], ['monitor']]) {
      const r = await cli([...cmd, '--help'])
      expect(r.stdout, cmd.join(' ')).toMatch(/Exit status:/)
      expect(r.stdout, cmd.join(' ')).toMatch(/\n {2}4 {2}/)
    }
  })
})

describe('results as JSON', () => {
  it('key create, key did, delegate, witness vkey print JSON under --json', async () => {
    const k = join(dir, 'json.key')
    const created = await cli(['key', 'create', '--out', k, '--json'])
    expect(created.code).toBe(0)
    const { did } = JSON.parse(created.stdout) as { did: string }
    expect(did).toMatch(/^did:key:z6Mk/)
    expect(JSON.parse((await cli(['key', 'did', '--key', k, '--json'])).stdout)).toEqual({ did, file: k })
    const d = await cli(['delegate', '--space-key', spaceKey, '--agent', did, '--json'])
    expect(d.code).toBe(0)
    expect(JSON.parse(d.stdout)).toMatchObject({ delegation: expect.stringMatching(/^[A-Za-z0-9+/=]+$/), agent: did, expiration: expect.any(Number) })
    const wk = join(dir, 'witness.key')
    await writeFile(wk, randomBytes(32), { mode: 0o600 })
    const v = await cli(['witness', 'vkey', '--name', 'w.example', '--key', wk, '--json'])
    expect(v.code, v.stderr).toBe(0)
    expect(JSON.parse(v.stdout)).toEqual({ vkey: expect.stringMatching(/^w\.example\+[0-9a-f]{8}\+/) })
  })
})

describe('delegate --out', () => {
  it('refuses to overwrite an existing file, like key create', async () => {
    const out = join(dir, 'existing.ucan')
    await writeFile(out, 'keep me\n')
    const r = await cli(['delegate', '--space-key', spaceKey, '--agent', agentDid, '--out', out])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(out)
    expect(r.stderr).toMatch(/already exists/)
    expect(await readFile(out, 'utf8')).toBe('keep me\n')
    const fresh = join(dir, 'fresh.ucan')
    expect((await cli(['delegate', '--space-key', spaceKey, '--agent', agentDid, '--out', fresh])).code).toBe(0)
    expect((await stat(fresh)).mode & 0o777).toBe(0o600)
  })
})

describe('revoke', () => {
  it('says so when the delegation was already revoked (exit 0), with --json too', async () => {
    const agent2 = join(dir, 'agent2.key')
    const did2 = (await cli(['key', 'create', '--out', agent2])).stdout.trim()
    const d2 = join(dir, 'agent2.ucan')
    expect((await cli(['delegate', '--space-key', spaceKey, '--agent', did2, '--out', d2])).code).toBe(0)
    const first = await cli(['revoke', '--key', spaceKey, '--delegation', d2, '--url', svc.url, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout)).toMatchObject({ alreadyRevoked: false, scope: expect.stringMatching(/^did:key:/) })
    const again = await cli(['revoke', '--key', spaceKey, '--delegation', d2, '--url', svc.url])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/already revoked/)
    const json = await cli(['revoke', '--key', spaceKey, '--delegation', d2, '--url', svc.url, '--json'])
    expect(JSON.parse(json.stdout)).toMatchObject({ alreadyRevoked: true })
  })
})

describe('client settings from the environment', () => {
  it('append takes UCANLOG_URL, UCANLOG_AGENT_KEY and UCANLOG_PROOF', async () => {
    const r = await cli(['append', 'from-env'], { env: { UCANLOG_URL: svc.url, UCANLOG_AGENT_KEY: agentKey, UCANLOG_PROOF: proof } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/appended 1 entry/)
  })
})

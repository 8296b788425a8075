/**
 * `ucanlog serve` as an operator starts it (the built bin/ucanlog.js; `npm run build` first): its
 * help shows every default; a port in use, an unusable data directory or a corrupt key file is
 * reported naming the port or file and the next step, before anything is created and without
 * echoing a key; it runs outside the checkout on a built-in witness policy and says so; a prefix
 * that is not host-like is warned about.
 */
import { type ChildProcess, type ExecFileException, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ed25519 } from '@ucanto/principal'
import { REPO } from '../e2e/helpers.js'

const BIN = join(REPO, 'bin', 'ucanlog.js')

function cli(args: string[], cwd = REPO): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd }, (err: ExecFileException | null, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    )
  })
}

/** Starts `ucanlog serve args…` in `cwd` and resolves with its start-up output once it prints its URL. */
async function serve(args: string[], cwd: string): Promise<{ child: ChildProcess; url: string; stdout: string; stderr: () => string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--log-level', 'warn', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  let out = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /serving on (http:\/\/\S+)/.exec(out)
      // Every start-up line is written at once; wait for the last one.
      if (m && /\n {2}data: .*\n/.test(out)) resolve(m[1]!)
    })
    child.once('exit', (code) => reject(new Error(`ucanlog serve exited with ${code}: ${err}`)))
  })
  return { child, url, stdout: out, stderr: () => err }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  await new Promise<void>((ok) => {
    child.once('exit', () => ok())
    child.kill('SIGTERM')
  })
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-serve-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('ucanlog serve', () => {
  it('--help shows the default of every knob', async () => {
    const { stdout } = await cli(['serve', '--help'])
    expect(stdout).toMatch(/--port <TCP-port>[^\n]*default: 8787/)
    expect(stdout).toMatch(/--data <directory>[^\n]*default: \.\/data/)
    expect(stdout).toMatch(/--batch-max-size <entries>[^\n]*default: \d+/)
    expect(stdout).toMatch(/--origin-prefix[^]*?default: derived from the service key/)
  })

  it('a port in use is reported before any key or data directory is created', async () => {
    const blocker = createServer()
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok))
    const port = (blocker.address() as { port: number }).port
    try {
      const data = join(dir, 'port-in-use')
      const r = await cli(['serve', '--port', String(port), '--data', data])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(String(port))
      expect(r.stderr).toMatch(/in use/)
      expect(r.stderr).toMatch(/--port/)
      expect(r.stderr).not.toMatch(/\n\s+at /)
      expect(existsSync(data)).toBe(false)
    } finally {
      await new Promise<void>((ok) => blocker.close(() => ok()))
    }
  })

  it('an unusable data directory is named with the next step', async () => {
    const file = join(dir, 'a-file')
    await writeFile(file, 'not a directory\n')
    const r = await cli(['serve', '--port', '0', '--data', join(file, 'data')])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(join(file, 'data'))
    expect(r.stderr).toMatch(/--data/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  it('a corrupt key file is reported naming the file, never echoing its contents', async () => {
    const secret = ed25519.format(await ed25519.generate())
    const corrupt = 'x' + secret // not multibase any more, but the secret is still inside
    const keyFile = join(dir, 'corrupt.key')
    await writeFile(keyFile, corrupt + '\n', { mode: 0o600 })
    const did = await cli(['key', 'did', '--key', keyFile])
    expect(did.code).toBe(1)
    expect(did.stderr).toContain(keyFile)
    expect(did.stderr).not.toContain(secret.slice(4, 40))
    const data = join(dir, 'corrupt-data')
    await mkdir(data, { recursive: true })
    await writeFile(join(data, 'service.key'), corrupt + '\n', { mode: 0o600 })
    const s = await cli(['serve', '--port', '0', '--data', data])
    expect(s.code).toBe(1)
    expect(s.stderr).toContain(join(data, 'service.key'))
    expect(s.stderr).not.toContain(secret.slice(4, 40))
    expect(s.stdout).not.toContain(secret.slice(4, 40))
  })

  it('runs outside the checkout on the built-in witness policy, says so, and publishes appends', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'ucanlog-elsewhere-'))
    try {
      const s = await serve(['--data', join(cwd, 'data')], cwd)
      try {
        expect(s.stdout).toMatch(/witness policy: built-in/)
        const info = (await (await fetch(`${s.url}/info`)).json()) as { witnessPolicy: string }
        expect(info.witnessPolicy).toMatch(/quorum bundled/)
        const space = join(cwd, 'space.key')
        const agent = join(cwd, 'agent.key')
        expect((await cli(['key', 'create', '--out', space], cwd)).code).toBe(0)
        const agentDid = (await cli(['key', 'create', '--out', agent], cwd)).stdout.trim()
        const proof = join(cwd, 'proof.ucan')
        expect((await cli(['delegate', '--space-key', space, '--agent', agentDid, '--out', proof], cwd)).code).toBe(0)
        const a = await cli(['append', '--agent-key', agent, '--proof', proof, '--url', s.url, '--json', 'hello'], cwd)
        expect(a.code, a.stderr).toBe(0)
        expect(JSON.parse(a.stdout.trim().split('\n')[0]!)).toMatchObject({ index: 0, published: true })
      } finally {
        await stop(s.child)
      }
      // A missing policy file named explicitly is an error, not the built-in one.
      const r = await cli(['serve', '--port', '0', '--data', join(cwd, 'data'), '--witness-policy', join(cwd, 'nope.txt')], cwd)
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(join(cwd, 'nope.txt'))
    } finally {
      await rm(cwd, { recursive: true, force: true })
    }
  })

  it('prints its origin prefix; warns when an explicit one is not host-like; --json start-up line', async () => {
    const data = join(dir, 'prefix-data')
    const s = await serve(['--data', data, '--origin-prefix', 'ucanlog'], dir)
    try {
      expect(s.stdout).toMatch(/origin prefix: ucanlog\b/)
      // Written before the start-up lines, but on another pipe: wait until it has been read.
      while (!s.stderr().includes('\n') && s.child.exitCode === null) await new Promise((r) => s.child.stderr!.once('data', r))
      expect(s.stderr()).toMatch(/warning: .*origin prefix "ucanlog" is not a host-like name/)
    } finally {
      await stop(s.child)
    }
    const data2 = join(dir, 'prefix-data-2')
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data', data2, '--json', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          const nl = out.indexOf('\n')
          if (nl >= 0) resolve(out.slice(0, nl))
        })
        child.once('exit', (code) => reject(new Error(`exited ${code}`)))
      })
      const j = JSON.parse(line) as { url: string; did: string; originPrefix: string; originPrefixSource: string; witnessPolicy: string; dataDir: string }
      expect(j).toMatchObject({ url: expect.stringMatching(/^http:/), did: expect.stringMatching(/^did:key:/), originPrefixSource: 'derived' })
      expect(j.originPrefix).toMatch(/^[a-z2-7]{16}\.ucanlog\.local$/)
      expect(await readdir(data2)).toContain('origin-prefix')
    } finally {
      await stop(child)
    }
  })
})

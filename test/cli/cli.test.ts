/**
 * The `ucanlog` command as a user runs it (the built bin/ucanlog.js): every command has --help, the
 * README documents every serve knob, and errors say what to do next without a stack trace.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { KNOBS, resolveConfig } from '../../src/server/config.js'
import { REPO } from '../e2e/helpers.js'

const exec = promisify(execFile)
const cli = (...args: string[]) => exec(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), ...args], { cwd: REPO }).then(
  (r) => ({ code: 0, ...r }),
  (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
)

describe('ucanlog CLI', () => {
  it('has --help on every command', async () => {
    for (const cmd of [[], ['serve'], ['key'], ['key', 'create'], ['key', 'did'], ['delegate'], ['append'], ['revoke'], ['audit'], ['restore'], ['witness'], ['monitor']]) {
      const r = await cli(...cmd, '--help')
      expect(r.code, cmd.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/^Usage: ucanlog/)
    }
    const serve = await cli('serve', '--help')
    for (const k of KNOBS) {
      expect(serve.stdout).toContain(k.flag)
      expect(serve.stdout).toContain(k.env)
    }
  })

  it('the README documents every knob with its env var, unit and default', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8')
    for (const k of KNOBS) expect(readme).toMatch(new RegExp(`\\| \`${k.flag}\` \\| \`${k.env}\` \\| ${k.unit} \\|`))
  })

  it('validates knobs once, naming the flag and env var', () => {
    expect(() => resolveConfig({ port: '99999' }, {})).toThrow(/--port \/ UCANLOG_PORT/)
    expect(() => resolveConfig({}, { UCANLOG_BATCH_MAX_SIZE: '0' })).toThrow(/--batch-max-size/)
    expect(resolveConfig({ port: '1' }, { UCANLOG_PORT: '2', UCANLOG_HOST: '::1' })).toMatchObject({ port: 1, host: '::1' })
  })

  it('key create writes a 0600 key and never overwrites it; errors are one line, no stack', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-cli-'))
    try {
      const key = join(dir, 'agent.key')
      const r = await cli('key', 'create', '--out', key)
      expect(r.code).toBe(0)
      expect(r.stdout.trim()).toMatch(/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/)
      expect((await stat(key)).mode & 0o777).toBe(0o600)
      expect((await cli('key', 'did', '--key', key)).stdout).toBe(r.stdout)
      const again = await cli('key', 'create', '--out', key)
      expect(again.code).not.toBe(0)
      expect(again.stderr).toMatch(/already exists/)
      const missing = await cli('append', '--agent-key', join(dir, 'nope.key'), '--proof', join(dir, 'nope.ucan'), 'x')
      expect(missing.code).not.toBe(0)
      expect(missing.stderr).toMatch(/ucanlog key create/)
      expect(missing.stderr).not.toMatch(/\n\s+at /)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

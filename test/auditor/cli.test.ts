/**
 * `ucanlog audit` in this process (auditCommand, so its pinning code is covered by mutation testing):
 * what the first audit pins (log key, witness policy, checkpoint) and that later audits hold the
 * service to it: a fork, a rollback, a new log key at /head or a weaker policy at /info are refused
 * and nothing new is pinned. The built CLI's exit status and output: cli-process.test.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { auditCommand } from '../../src/cli/audit.js'
import { AuditError } from '../../src/client/audit.js'
import { encodeBase64, parseCheckpoint, parseNote } from '../../src/tlog/index.js'
import {
  OTHER_SIGNER,
  POLICY_TEXT,
  SPACE,
  W1,
  type LogFilesMap,
  type LogServer,
  logAndFork,
  checkpointOf,
  cosignLines,
  logSignatureLine,
  startLogServer,
  withCheckpoint,
} from './fixtures.js'

let small10: LogFilesMap
let small12: LogFilesMap
let forked12: LogFilesMap
beforeAll(async () => {
  ;({ small10, small12, forked12 } = await logAndFork())
})

let server: LogServer
let state: string
beforeEach(async () => {
  server = await startLogServer(small10)
  state = await mkdtemp(join(tmpdir(), 'ucanlog-audit-'))
})
afterEach(async () => {
  vi.restoreAllMocks()
  await server.close()
  await rm(state, { recursive: true, force: true })
})

/** Runs `ucanlog audit --space SPACE --url <server> --state <dir> ...extra` in-process; returns its output or its error. */
async function run(...extra: string[]): Promise<{ stdout: string; stderr: string; error?: Error }> {
  let stdout = ''
  let stderr = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true))
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true))
  try {
    await auditCommand().exitOverride().parseAsync(['--space', SPACE, '--url', server.url, '--state', state, ...extra], { from: 'user' })
    return { stdout, stderr }
  } catch (error) {
    return { stdout, stderr, error: error as Error }
  } finally {
    vi.restoreAllMocks()
  }
}

const stateFile = () => join(state, `${SPACE}.json`)
const pinned = async () => JSON.parse(await readFile(stateFile(), 'utf8')) as { size: number; rootHash: string; logVkey: string; policy: string; origin: string; checkpoint: string }
const rootOf = (files: LogFilesMap) => encodeBase64(parseCheckpoint(parseNote(checkpointOf(files)).text).rootHash)

describe('ucanlog audit (in-process)', () => {
  it('the first audit trusts /head and /info, says so, and pins key, policy and checkpoint; the next checks consistency', async () => {
    const first = await run()
    expect(first.error).toBeUndefined()
    expect(first.stderr).toBe(
      `note: first audit of this log: trusting the log key the service shows (${server.headVkey}); it is pinned from now on\n` +
        'note: first audit of this log: using the witness policy the service shows at /info; it is pinned from now on\n',
    )
    expect(first.stdout).toContain(`  log signature    verified (${server.headVkey})\n`)
    expect(first.stdout).toContain('audit OK: ucanlog.test/logs/')
    expect(first.stdout).toContain('  tree size        10\n')
    expect(first.stdout).toContain(`  root hash        ${rootOf(small10)}\n`)
    expect(first.stdout).toMatch(/ {2}cosignature {6}w1 \(w1\.example\) at 2023-11-14T22:13:20\.000Z, verified\n {2}cosignature {6}w2 /)
    expect(first.stdout).toContain('  witness policy   satisfied (quorum two)\n')
    expect(first.stdout).toContain('  entries          10 re-hashed against 1 tiles; tree recomputed\n')
    expect(first.stdout).toContain('  inclusion proofs 10 verified\n')
    expect(first.stdout).toContain(`  consistency      first audit; checkpoint saved in ${stateFile()}\n`)
    expect(await pinned()).toMatchObject({ size: 10, rootHash: rootOf(small10), logVkey: server.headVkey, policy: POLICY_TEXT, checkpoint: checkpointOf(small10) })
    expect(await readFile(stateFile(), 'utf8')).toMatch(/^{\n {2}"url": .*\n}\n$/s) // a text file: pretty JSON ending in a newline

    server.serve(small12)
    const second = await run('--sample', '3')
    expect(second.error).toBeUndefined()
    expect(second.stderr).toBe('') // nothing trusted anew
    expect(second.stdout).toContain('  inclusion proofs 3 verified\n')
    expect(second.stdout).toContain('  consistency      verified with the size 10 seen last time\n')
    expect(await pinned()).toMatchObject({ size: 12, rootHash: rootOf(small12) })

    const json = await run('--json')
    expect(JSON.parse(json.stdout)).toMatchObject({ size: 12, rootHash: rootOf(small12), consistentWith: 12, notes: [] })
    expect(json.stdout).toMatch(/\n}\n$/)
  })

  it('a fork served after the first audit: LogForked, and the pinned checkpoint stays', async () => {
    expect((await run()).error).toBeUndefined()
    server.serve(forked12)
    const r = await run()
    expect(r.error?.name).toBe('LogForked')
    expect(r.stdout).toBe('')
    expect(await pinned()).toMatchObject({ size: 10, rootHash: rootOf(small10) })
  })

  it('a rollback after the first audit: LogRolledBack, and the pinned checkpoint stays', async () => {
    server.serve(small12)
    expect((await run()).error).toBeUndefined()
    server.serve(small10)
    expect((await run()).error?.name).toBe('LogRolledBack')
    expect((await pinned()).size).toBe(12)
  })

  it('a new log key shown at /head after the first audit: LogKeyChanged; --log-vkey overrides the pin', async () => {
    expect((await run()).error).toBeUndefined()
    const key = (await pinned()).logVkey
    server.headVkey = OTHER_SIGNER.vkey
    const r = await run()
    expect(r.error?.name).toBe('LogKeyChanged')
    expect(r.error?.message).toBe(`the service now shows log key ${OTHER_SIGNER.vkey}, but ${key} was pinned`)
    // An explicit key is the auditor's own choice: the checkpoint must verify with it (it does not here).
    expect((await run('--log-vkey', OTHER_SIGNER.vkey)).error?.name).toBe('LogSignatureInvalid')
    expect((await run('--log-vkey', key)).error).toBeUndefined()
  })

  it('the policy pinned at the first audit holds even when /info later shows a weaker one', async () => {
    expect((await run()).error).toBeUndefined()
    const text = parseNote(checkpointOf(small12)).text
    server.serve(withCheckpoint(small12, `${text}\n${logSignatureLine(checkpointOf(small12))}${cosignLines(text, [W1])}`))
    server.policyText = 'quorum none\n'
    const r = await run()
    expect(r.error?.name).toBe('WitnessPolicyNotMet')
    expect((await pinned()).size).toBe(10)
  })

  it('--witness-policy replaces the policy: a first audit under "quorum none" passes a log cosigned by one witness', async () => {
    const text = parseNote(checkpointOf(small10)).text
    server.serve(withCheckpoint(small10, `${text}\n${logSignatureLine(checkpointOf(small10))}${cosignLines(text, [W1])}`))
    expect((await run()).error?.name).toBe('WitnessPolicyNotMet')
    const file = join(state, 'none.policy')
    await writeFile(file, 'quorum none\n')
    const r = await run('--witness-policy', file)
    expect(r.error).toBeUndefined()
    expect(r.stdout).toContain('  witness policy   satisfied (quorum none)\n')
    expect(r.stderr).not.toContain('witness policy the service shows')
    expect((await pinned()).policy).toBe('quorum none\n')
  })

  it('refuses a --space that is not a did:key, and a space the service has no log for', async () => {
    expect((await run('--space', 'did:web:example.com')).error?.message).toBe('--space must be a did:key')
    const other = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doL'
    expect((await run('--space', other)).error?.message).toBe(`the service has no published log for ${other}`)
  })

  it('a file answered 404 is missing (MissingFile); any other failure status is a refusal (exit 2) naming it', async () => {
    server.status.set('tile/0/000.p/10', 404)
    expect((await run()).error?.name).toBe('MissingFile')
    server.status.set('tile/0/000.p/10', 500)
    const r = await run()
    expect(r.error?.message).toBe('GET tile/0/000.p/10 answered HTTP 500')
    expect(r.error).toMatchObject({ name: 'HTTPError', exitCode: 2 }) // refused by the service, not a failed check
    expect(r.error).not.toBeInstanceOf(AuditError)
  })

  it('a service that cannot be reached says so', async () => {
    const url = server.url
    await server.close()
    const r = await run('--url', url)
    // Issue 12: the URL, the cause and the next step, and exit code 4 (unreachable), not an audit failure.
    expect(r.error?.message).toMatch(/^cannot reach the service at http:\/\/127\.0\.0\.1:\d+ \(connect ECONNREFUSED [^)]+\); is `ucanlog serve` running there\? check --url \/ UCANLOG_URL$/)
    expect((r.error as { exitCode?: number } | undefined)?.exitCode).toBe(4)
    server = await startLogServer(small10) // for afterEach
  })

  it('--space must be exactly a did:key', async () => {
    for (const bad of [`x${SPACE}`, `${SPACE}!`, 'did:key:z0OIl']) expect((await run('--space', bad)).error?.message).toBe('--space must be a did:key')
  })

  it('is the `audit` command, and its help documents the exit status', () => {
    const cmd = auditCommand()
    expect(cmd.name()).toBe('audit')
    let help = ''
    cmd.configureOutput({ writeOut: (s) => (help += s) })
    cmd.outputHelp()
    expect(help).toContain(
      '\nExit status:\n' +
        '  0  the log passed every check; --state now pins this checkpoint, the log key and the policy\n' +
        "  3  the log failed a check (nothing is pinned); the error's name says which:\n" +
        '     LogSignatureInvalid, LogKeyChanged, OriginMismatch, CosignatureInvalid, WitnessPolicyNotMet,\n' +
        '     MissingFile, MalformedFile, LeafHashMismatch, RootMismatch, TileMismatch, InclusionProofInvalid,\n' +
        '     LogRolledBack, LogForked\n' +
        '  1  any other error (usage, an unreadable policy or state file)\n' +
        '  4  the service could not be reached (connection refused, DNS, timeout); nothing is pinned\n',
    )
  })

  it('defaults: --url from UCANLOG_URL else the local service, --state from UCANLOG_STATE else UCANLOG_AUDIT_STATE else ~/.ucanlog/audit', () => {
    const defaults = () => Object.fromEntries(auditCommand().options.map((o) => [o.long, o.defaultValue as unknown]))
    vi.stubEnv('UCANLOG_URL', undefined)
    vi.stubEnv('UCANLOG_STATE', undefined)
    vi.stubEnv('UCANLOG_AUDIT_STATE', undefined)
    expect(defaults()).toMatchObject({ '--url': 'http://127.0.0.1:8787', '--state': join(homedir(), '.ucanlog', 'audit'), '--sample': '1000' })
    vi.stubEnv('UCANLOG_URL', 'http://example.test:1')
    vi.stubEnv('UCANLOG_AUDIT_STATE', '/somewhere')
    expect(defaults()).toMatchObject({ '--url': 'http://example.test:1', '--state': '/somewhere' })
    vi.stubEnv('UCANLOG_STATE', '/shared') // the trust store's own variable wins (shared with append)
    expect(defaults()).toMatchObject({ '--state': '/shared' })
    vi.unstubAllEnvs()
  })
})

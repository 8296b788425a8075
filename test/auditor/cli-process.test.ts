/**
 * The built `ucanlog audit` (bin/ucanlog.js, as a user runs it; `npm run build` first) against bad
 * logs on loopback HTTP: a refused log exits with status 3 and prints the failed check's name; an
 * unreachable service exits 4; any other error exits 1. Spawns the CLI, so it is excluded from mutation runs (auditor.test.ts and
 * cli.test.ts cover the same checks in-process).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { formatCheckpoint, parseCheckpoint, parseNote } from '../../src/tlog/index.js'
import {
  SPACE,
  W1,
  W2,
  type LogFilesMap,
  type LogServer,
  logAndFork,
  checkpointOf,
  cosignLines,
  logSignatureLine,
  signedCheckpoint,
  startLogServer,
  withCheckpoint,
} from './fixtures.js'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'ucanlog.js')
const exec = promisify(execFile)

let small10: LogFilesMap
let forked12: LogFilesMap
beforeAll(async () => {
  ;({ small10, forked12 } = await logAndFork())
})

let server: LogServer
let state: string
beforeEach(async () => {
  server = await startLogServer(small10)
  state = await mkdtemp(join(tmpdir(), 'ucanlog-audit-cli-'))
})
afterEach(async () => {
  await server.close()
  await rm(state, { recursive: true, force: true })
})

async function audit(url = server.url): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(process.execPath, [BIN, 'audit', '--space', SPACE, '--url', url, '--state', state]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )
}

describe('ucanlog audit (built CLI)', () => {
  it('a fork after the first audit: exit 3, "LogForked" on stderr, no stack trace', async () => {
    const ok = await audit()
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain('audit OK')
    server.serve(forked12)
    const r = await audit()
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: LogForked: the log forked: its checkpoint of size 12 is not consistent with the size 10 seen last time\n$/)
    expect(r.stdout).toBe('')
  })

  it('a checkpoint root that does not match the tiles: exit 3, RootMismatch', async () => {
    const cp = parseCheckpoint(parseNote(checkpointOf(small10)).text)
    const lie = formatCheckpoint({ ...cp, rootHash: new Uint8Array(32).fill(7) })
    server.serve(withCheckpoint(small10, signedCheckpoint(lie, [W1, W2])))
    const r = await audit()
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: RootMismatch: /)
  })

  it('a cosignature missing (policy not met): exit 3, WitnessPolicyNotMet', async () => {
    const text = parseNote(checkpointOf(small10)).text
    server.serve(withCheckpoint(small10, `${text}\n${logSignatureLine(checkpointOf(small10))}${cosignLines(text, [W1])}`))
    const r = await audit()
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: WitnessPolicyNotMet: witness policy not satisfied: cosigned by \[w1\], quorum two\n$/)
  })

  it('an entry-bundle byte flipped: exit 3, LeafHashMismatch', async () => {
    const b = new Uint8Array(small10.get('tile/entries/000.p/10')!)
    b[b.length - 1]! ^= 1
    server.serve(new Map(small10).set('tile/entries/000.p/10', b))
    const r = await audit()
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: LeafHashMismatch: entry 9 /)
  })

  it('a service that cannot be reached is not a failed audit: exit 4 (issue 12: unreachable has its own code)', async () => {
    const url = server.url
    await server.close()
    const r = await audit(url)
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/^ucanlog: ServiceUnreachable: cannot reach the service at http:\/\/127\.0\.0\.1:\d+ \(connect ECONNREFUSED [^)]+\); is `ucanlog serve` running there\? check --url \/ UCANLOG_URL\n$/)
    server = await startLogServer(small10) // for afterEach
  })

  it('--help documents the exit status', async () => {
    const { stdout } = await exec(process.execPath, [BIN, 'audit', '--help'])
    expect(stdout).toMatch(/Exit status:\n {2}0 {2}the log passed every check/)
    expect(stdout).toMatch(/\n {2}3 {2}the log failed a check/)
    expect(stdout).toContain('LogForked')
    expect(stdout).toMatch(/\n {2}1 {2}any other error/)
    expect(stdout).toMatch(/\n {2}4 {2}the service could not be reached/)
  })
})

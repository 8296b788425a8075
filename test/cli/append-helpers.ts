/**
 * Helpers of the `ucanlog append` tests: a space and an agent with their key and proof files in a
 * temporary directory, the built CLI run as a child process (bytes in on stdin, exit code and
 * output back), and the space's log read back as bytes through `tlog/read`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { connect, delegateSpaceToAgent, formatDelegation, formatKey, generateKey, readInvocation } from '../../src/ucan/index.js'
import { decodeBase64 } from '../../src/tlog/index.js'
import { REPO } from '../e2e/helpers.js'

export { serviceForFile } from '../e2e/helpers.js'

/** A space, an agent, and the files `ucanlog append` needs, in `dir`. */
export interface AppendFixture {
  dir: string
  space: API.Signer<API.DIDKey>
  agentKeyFile: string
  proofFile: string
  /** `--agent-key … --proof … --url url --state <dir>/state` (a trust store of this fixture's own). */
  args(url: string): string[]
}

/** Creates a space and an agent, writes the agent's key and the Space → Agent delegation. */
export async function appendFixture(): Promise<AppendFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-append-'))
  const space = await generateKey()
  const agent = await generateKey()
  const agentKeyFile = join(dir, 'agent.key')
  const proofFile = join(dir, 'space-to-agent.ucan')
  await writeFile(agentKeyFile, formatKey(agent) + '\n', { mode: 0o600 })
  await writeFile(proofFile, (await formatDelegation(await delegateSpaceToAgent({ space, agent }))) + '\n')
  return { dir, space, agentKeyFile, proofFile, args: (url) => ['--agent-key', agentKeyFile, '--proof', proofFile, '--url', url, '--state', join(dir, 'state')] }
}

/** What a CLI child left: exit code (or the signal that ended it) and its output. */
export interface CliRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Spawns the built CLI (`node [nodeArgs] bin/ucanlog.js args…`); the caller writes stdin. */
export function spawnUcanlog(args: string[], nodeArgs: string[] = []): ChildProcess {
  return spawn(process.execPath, [...nodeArgs, join(REPO, 'bin', 'ucanlog.js'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
}

/** Resolves when `child` exits, with its code and everything it printed. */
export function finished(child: ChildProcess): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => void (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()))
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
}

/** Runs the built CLI with `stdin` (bytes; default: none, stdin closed) to the end. */
export async function runUcanlog(args: string[], stdin?: Uint8Array): Promise<CliRun> {
  const child = spawnUcanlog(args)
  const done = finished(child)
  child.stdin!.on('error', () => {}) // the CLI may stop reading early; that is what some tests check
  child.stdin!.end(stdin === undefined ? undefined : Buffer.from(stdin))
  return done
}

/**
 * Every entry of `space`'s log, as bytes, read through `tlog/read` (1000 at a time).
 * @param lifetime of the read invocations, seconds (more when the service's clock is ahead).
 */
export async function readLog(url: string, serviceDid: string, space: API.DIDKey, lifetime?: number): Promise<Uint8Array[]> {
  const reader = await generateKey()
  const conn = connect(url, serviceDid as API.DID)
  const out: Uint8Array[] = []
  for (;;) {
    const [receipt] = await conn.execute(readInvocation({ issuer: reader, service: serviceDid as API.DID, space, offset: out.length, limit: 1000, lifetime }))
    const r = receipt!.out as { ok?: { entries: string[]; total: number }; error?: { name: string } }
    if (r.error?.name === 'UnknownLog') return out
    if (!r.ok) throw new Error(`tlog/read refused: ${JSON.stringify(r.error)}`)
    out.push(...r.ok.entries.map(decodeBase64))
    if (r.ok.entries.length === 0 || out.length >= r.ok.total) return out
  }
}

/** `n` distinct text entries `prefix-0` … as the lines of one stdin (each line ends in `\n`). */
export function numberedLines(prefix: string, n: number): { lines: string[]; stdin: Uint8Array } {
  const lines = Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
  return { lines, stdin: new TextEncoder().encode(lines.join('\n') + '\n') }
}

/** How many times each text occurs in `entries` (decoded as UTF-8 for counting only). */
export function counts(entries: Uint8Array[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const e of entries) {
    const t = Buffer.from(e).toString('utf8')
    m.set(t, (m.get(t) ?? 0) + 1)
  }
  return m
}

/**
 * `ucanlog monitor` end to end (issue 13 item 4): the built CLI (`npm run build` first) as a child
 * process against real services with their bundled witness on loopback, appends through the client
 * library.
 *
 * - It follows appends live; stopped and restarted it resumes at its cursor (no entry twice, none
 *   missing); it keeps going, after backoff, across a restart of the service on the same data.
 * - A second service with the same keys and a different entry at the same size (a fork of the log,
 *   test/helpers/same-keys-service.ts): the monitor switched to it, or comparing with it, exits 5
 *   and prints both checkpoints; a larger fork is LogForked. Comparing with an honest copy exits 0.
 * - An entry altered on disk is refused (exit 3), never printed.
 * - Without --space it follows every space's log of /logs.txt; --match filters what is printed.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Key, createClient, createKey, delegateSpaceToAgent, formatDelegation } from '../../src/client/index.js'
import { startSameKeysService } from '../helpers/same-keys-service.js'
import { spawnCli, startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ucanlog-monitor-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

interface Entry {
  space: string
  index: number
  leafHash: string
  size: number
  data: string
}

/** A monitor process: its stdout lines (parsed JSON) and stderr text as they arrive, and waits on them. */
class Monitor {
  readonly child: ChildProcess
  readonly lines: Record<string, unknown>[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  readonly #waiters = new Set<() => void>()
  constructor(args: string[]) {
    this.child = spawnCli(['monitor', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    this.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const parts = out.split('\n')
      out = parts.pop()!
      for (const p of parts) this.lines.push(JSON.parse(p) as Record<string, unknown>)
      this.#notify()
    })
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString()
      this.#notify()
    })
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => (this.#notify(), resolve(code))))
  }
  get entries(): Entry[] {
    return this.lines.filter((l) => 'index' in l) as unknown as Entry[]
  }
  /** Resolves once `cond` holds (checked on every output); the test's timeout bounds the wait. */
  until(cond: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (cond()) {
          this.#waiters.delete(check)
          resolve()
        }
      }
      this.#waiters.add(check)
      check()
    })
  }
  #notify() {
    for (const w of [...this.#waiters]) w()
  }
}

/** Runs `ucanlog monitor args… --once` to its end. */
async function once(args: string[]): Promise<{ code: number | null; lines: Record<string, unknown>[]; entries: Entry[]; stderr: string }> {
  const m = new Monitor([...args, '--once'])
  const code = await m.exited
  return { code, lines: m.lines, entries: m.entries, stderr: m.stderr }
}

/** A writer of one space's log through the client library (create on first append). */
async function writer(space: Key, agent: Key, url: string) {
  const proof = await formatDelegation(await delegateSpaceToAgent({ space, agent }))
  const client = await createClient({ url, agent, proof })
  return async (texts: string[]): Promise<Map<number, string>> => {
    const outcomes = await client.append(texts.map((t) => new TextEncoder().encode(t)))
    const byIndex = new Map<number, string>()
    for (const o of outcomes) {
      expect(o.error).toBeUndefined()
      byIndex.set(o.ok!.index, new TextDecoder().decode(o.entry))
    }
    return byIndex
  }
}

const text = (e: Entry) => Buffer.from(e.data, 'base64').toString('utf8')

describe('ucanlog monitor follows a log', () => {
  let svc: Svc
  let dataDir: string
  afterAll(async () => {
    await svc?.stop()
  })

  it('prints appends live, resumes after its own restart (SIGTERM, SIGKILL) with no duplicate and no gap, and keeps going across a service restart', async () => {
    dataDir = join(tmp, 'data')
    svc = await startTestService({ dataDir })
    const port = Number(new URL(svc.url).port)
    const space = await createKey()
    const agent = await createKey()
    let append = await writer(space, agent, svc.url)
    const state = join(tmp, 'state-follow')
    const expected = new Map<number, string>()
    const add = (m: Map<number, string>) => m.forEach((v, k) => expected.set(k, v))
    add(await append(['first', 'second', 'third']))

    const args = ['--url', svc.url, '--space', space.did(), '--state', state, '--interval', '0.1', '--max-backoff', '0.4']
    const m1 = new Monitor(args)
    await m1.until(() => m1.entries.length >= 3)
    add(await append(['fourth', 'fifth']))
    await m1.until(() => m1.entries.length >= 5)
    expect(m1.stderr).toMatch(/first monitor of this log: trusting the log key/)
    for (const e of m1.entries) {
      expect(e.space).toBe(space.did())
      expect(text(e)).toBe(expected.get(e.index))
      expect(e.size).toBe(Buffer.byteLength(expected.get(e.index)!))
    }
    // Stopped (SIGTERM) once its cursor is saved past the fifth entry; three more appended meanwhile.
    await m1.until(() => /cursor 5\n/.test(m1.stderr))
    m1.child.kill('SIGTERM')
    expect(await m1.exited).toBe(0)
    add(await append(['sixth', 'seventh', 'eighth']))

    const m2 = new Monitor(args)
    await m2.until(() => m2.entries.length >= 3)
    const all = [...m1.entries, ...m2.entries]
    expect(all.map((e) => e.index).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    for (const e of all) expect(text(e)).toBe(expected.get(e.index))
    expect(m2.stderr).not.toMatch(/trusting/) // the pins of the first run were kept

    // The service stops: the monitor retries with backoff; restarted on the same data and port, it is followed again.
    await m2.until(() => /cursor 8\n/.test(m2.stderr))
    await svc.stop()
    await m2.until(() => /retrying in/.test(m2.stderr))
    svc = await startTestService({ dataDir, port })
    append = await writer(space, agent, svc.url)
    add(await append(['ninth', 'tenth']))
    await m2.until(() => m2.entries.length >= 5)
    const after = [...m1.entries, ...m2.entries]
    expect(after.map((e) => e.index).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    for (const e of after) expect(text(e)).toBe(expected.get(e.index))

    // SIGKILL once the cursor past the tenth entry is durable (said on stderr after it is written): a
    // later run prints only what came after.
    await m2.until(() => /cursor 10\n/.test(m2.stderr))
    m2.child.kill('SIGKILL')
    await m2.exited
    add(await append(['eleventh']))
    const m3 = await once(args)
    expect(m3.code).toBe(0)
    expect(m3.entries.map((e) => [e.index, text(e)])).toEqual([[10, 'eleventh']])
  })
})

describe('ucanlog monitor detects a forked log', () => {
  let svc: Svc
  let fork: Svc
  let space: Key
  let agent: Key
  beforeAll(async () => {
    svc = await startTestService()
    fork = await startSameKeysService(svc)
    space = await createKey()
    agent = await createKey()
  })
  afterAll(async () => {
    await svc?.stop()
    await fork?.stop()
  })

  it('switched to a fork with a different entry at the same size, or comparing with it: exit 5 and both checkpoints; a larger fork is LogForked, a smaller tree after it LogRolledBack', async () => {
    await (await writer(space, agent, svc.url))(['a', 'b', 'c'])
    const forkAppend = await writer(space, agent, fork.url)
    await forkAppend(['a', 'b', 'X'])
    const honestNote = await (await fetch(`${svc.url}/logs/${space.did()}/checkpoint`)).text()
    const forkNote = await (await fetch(`${fork.url}/logs/${space.did()}/checkpoint`)).text()
    expect(honestNote.split('\n')[1]).toBe('3')
    expect(forkNote.split('\n')[1]).toBe('3')
    expect(forkNote).not.toBe(honestNote)

    const state = join(tmp, 'state-fork')
    const first = await once(['--url', svc.url, '--space', space.did(), '--state', state])
    expect(first.code).toBe(0)
    expect(first.entries.map(text)).toEqual(['a', 'b', 'c'])

    // Switched to the fork: its checkpoint of size 3 contradicts the pinned one.
    const switched = await once(['--url', fork.url, '--space', space.did(), '--state', state, '--json'])
    expect(switched.code).toBe(5)
    expect(switched.entries).toEqual([])
    const evidence = switched.lines.find((l) => 'misbehavior' in l)!.misbehavior as { kind: string; space: string; checkpoints: { note: string; size: number; source: string }[] }
    expect(evidence.kind).toBe('SplitView')
    expect(evidence.space).toBe(space.did())
    expect(evidence.checkpoints.map((c) => c.note)).toEqual([honestNote, forkNote])
    expect(evidence.checkpoints[0]!.source).toMatch(/^pinned in /)
    expect(switched.lines.at(-1)).toMatchObject({ error: { name: 'SplitView', exitCode: 5 } })

    // Comparing the honest service with the fork, from a fresh state: the same split view, in text on stderr.
    const compared = await once(['--url', svc.url, '--compare', fork.url, '--space', space.did(), '--state', join(tmp, 'state-compare')])
    expect(compared.code).toBe(5)
    expect(compared.stderr).toContain(honestNote)
    expect(compared.stderr).toContain(forkNote)
    expect(compared.stderr).toMatch(/ucanlog: SplitView: /)

    // The fork grows past the pinned size: its tree does not extend the pinned one.
    await forkAppend(['Y'])
    const grown = await once(['--url', fork.url, '--space', space.did(), '--state', state, '--json'])
    expect(grown.code).toBe(5)
    const ev2 = grown.lines.find((l) => 'misbehavior' in l)!.misbehavior as { kind: string; checkpoints: { note: string; size: number }[] }
    expect(ev2.kind).toBe('LogForked')
    expect(ev2.checkpoints.map((c) => c.size)).toEqual([3, 4])
    expect(ev2.checkpoints[0]!.note).toBe(honestNote)

    // The control: comparing the honest service with itself is no misbehavior; a second source that
    // cannot be reached proves nothing either way (a warning, not an exit).
    const honest = await once(['--url', svc.url, '--compare', svc.url, '--space', space.did(), '--state', state])
    expect(honest.code).toBe(0)
    const dead = await once(['--url', svc.url, '--compare', 'http://127.0.0.1:1', '--space', space.did(), '--state', state])
    expect(dead.code).toBe(0)
    expect(dead.stderr).toMatch(/--compare http:\/\/127\.0\.0\.1:1\/logs\/\S+: cannot reach .*not compared this time/)

    // Having seen the fork's size 4, the honest service's size 3 is a rollback.
    const seenFork = await once(['--url', fork.url, '--space', space.did(), '--state', join(tmp, 'state-rollback')])
    expect(seenFork.code).toBe(0)
    const back = await once(['--url', svc.url, '--space', space.did(), '--state', join(tmp, 'state-rollback'), '--json'])
    expect(back.code).toBe(5)
    expect(back.lines.find((l) => 'misbehavior' in l)).toMatchObject({ misbehavior: { kind: 'LogRolledBack', checkpoints: [{ size: 4 }, { size: 3, note: honestNote }] } })
  })

  it('without --space follows every space of /logs.txt; --match and --match-hex print only matching entries; --from end starts at the current size', async () => {
    const other = await createKey()
    const second = await createKey()
    await (await writer(other, agent, svc.url))(['hello world', 'bye', 'hello again'])
    await (await writer(second, agent, svc.url))(['second log'])
    const state = join(tmp, 'state-list')
    const all = await once(['--url', svc.url, '--state', state])
    expect(all.code).toBe(0)
    const spaces = new Set(all.entries.map((e) => e.space))
    expect(spaces.has(other.did()) && spaces.has(second.did())).toBe(true)
    const matched = await once(['--url', svc.url, '--state', join(tmp, 'state-match'), '--match', '^hello'])
    expect(matched.code).toBe(0)
    expect(matched.entries.map(text).sort()).toEqual(['hello again', 'hello world'])
    const hex = await once(['--url', svc.url, '--state', join(tmp, 'state-hex'), '--space', other.did(), '--match-hex', Buffer.from('bye').toString('hex')])
    expect(hex.entries.map(text)).toEqual(['bye'])
    // --from end: a log with no cursor yet starts at its current size; what is appended next is printed.
    const endState = join(tmp, 'state-end')
    const fromEnd = await once(['--url', svc.url, '--state', endState, '--space', other.did(), '--from', 'end'])
    expect([fromEnd.code, fromEnd.entries]).toEqual([0, []])
    await (await writer(other, agent, svc.url))(['later'])
    const later = await once(['--url', svc.url, '--state', endState, '--space', other.did(), '--from', 'end'])
    expect(later.entries.map((e) => [e.index, text(e)])).toEqual([[3, 'later']])
  })

  it('an entry altered on disk does not hash to its leaf in the signed tiles: exit 3, LeafHashMismatch, nothing printed', async () => {
    const victim = await createKey()
    await (await writer(victim, agent, svc.url))(['one', 'two', 'three'])
    const bundle = join(svc.dataDir, 'logs', victim.did(), 'tile', 'entries', '000.p', '3')
    const bytes = await readFile(bundle)
    bytes[bytes.length - 1] ^= 0x01 // 'three' → 'thred': same length, the bundle still parses
    await writeFile(bundle, bytes)
    const r = await once(['--url', svc.url, '--space', victim.did(), '--state', join(tmp, 'state-tamper'), '--json'])
    expect(r.code).toBe(3)
    expect(r.entries).toEqual([])
    expect(r.lines.at(-1)).toMatchObject({ error: { name: 'LeafHashMismatch', exitCode: 3 } })
  })
})

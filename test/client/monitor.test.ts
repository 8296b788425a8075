/**
 * The monitor's checks in-process (src/client/monitor.ts, monitor-cursor.ts), over the real
 * public files of real services on loopback (test/e2e/monitor.test.ts runs the built CLI):
 *
 * - the new entries, read from a cursor, one bundle at a time, each re-hashed against the level-0
 *   tiles authenticated against the signed root; an altered entry or tile byte is refused by name;
 * - a second service with the same keys (a fork) against the pinned checkpoint and as a `--compare`
 *   source: SplitView, LogForked (proved from either side's tiles), LogRolledBack, each with both
 *   checkpoints; a source that cannot be reached is only a warning;
 * - the cursor file: round trip, private mode, a corrupt one named.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createClient, createKey, delegateSpaceToAgent, formatDelegation, type Key } from '../../src/client/index.js'
import { type CheckpointCheck, type MonitorEntry, checkNewCheckpoint, readNewEntries } from '../../src/client/monitor.js'
import { cursorFilePath, loadCursor, saveCursor } from '../../src/client/monitor-cursor.js'
import { LogMisbehavedError } from '../../src/client/monitor-errors.js'
import { TrustStoreError, type TrustAnchors, resolveTrust } from '../../src/client/trust-store.js'
import { httpLogFiles } from '../../src/client/http.js'
import type { LogFileFetcher } from '../../src/client/verify-append.js'
import { type VerifiedCheckpoint } from '../../src/client/verify-checkpoint.js'
import { parsePolicy } from '../../src/tlog/index.js'
import { startTestService } from '../e2e/helpers.js'
import { startSameKeysService } from '../helpers/same-keys-service.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let svc: Svc
let fork: Svc
let space: Key
let agent: Key
let anchors: TrustAnchors
let dir: string

async function append(url: string, texts: string[]): Promise<void> {
  const client = await createClient({ url, agent, proof: await formatDelegation(await delegateSpaceToAgent({ space, agent })) })
  for (const o of await client.append(texts.map((t) => new TextEncoder().encode(t)))) expect(o.error).toBeUndefined()
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-monitor-client-'))
  svc = await startTestService()
  fork = await startSameKeysService(svc)
  space = await createKey()
  agent = await createKey()
  await append(svc.url, ['a', 'b', 'c'])
  await append(fork.url, ['a', 'b', 'X'])
  anchors = (await resolveTrust({ url: svc.url, space: space.did(), get: (u) => fetch(u) })).anchors
})
afterAll(async () => {
  await svc?.stop()
  await fork?.stop()
  await rm(dir, { recursive: true, force: true })
})

const files = (s: Svc): LogFileFetcher => httpLogFiles(s.url, space.did())
const check = (s: Svc, more: Partial<CheckpointCheck> = {}): Promise<VerifiedCheckpoint | undefined> =>
  checkNewCheckpoint({ space: space.did(), anchors, policy: parsePolicy(anchors.policy), source: s.url, fetchFile: files(s), seen: [], now: Math.floor(Date.now() / 1000), ...more })
const seen = (v: VerifiedCheckpoint, source: string) => ({ size: v.checkpoint.size, rootHash: v.checkpoint.rootHash, note: v.note, source })

/** Reads the entries from `from` with `fetchFile`, collecting each emit call's entries and cursor. */
async function read(v: VerifiedCheckpoint, from: number, fetchFile: LogFileFetcher): Promise<{ calls: { entries: MonitorEntry[]; next: number }[]; next: number }> {
  const calls: { entries: MonitorEntry[]; next: number }[] = []
  const next = await readNewEntries({ space: space.did(), fetchFile, checkpoint: v.checkpoint, from, emit: async (entries, n) => void calls.push({ entries, next: n }) })
  return { calls, next }
}

/** `fetchFile` with one byte of the file at `path` flipped, as a tampering mirror would serve it. */
function flipping(fetchFile: LogFileFetcher, path: string, at: (length: number) => number): LogFileFetcher {
  return async (p) => {
    const b = await fetchFile(p)
    if (p !== path || !b) return b
    const c = b.slice()
    c[at(c.length)]! ^= 0x01
    return c
  }
}

const misbehavior = async (p: Promise<unknown>): Promise<LogMisbehavedError> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(LogMisbehavedError)
  return err as LogMisbehavedError
}

describe('readNewEntries', () => {
  it('emits the entries from the cursor, verified against the tiles, with the next cursor', async () => {
    const v = (await check(svc))!
    expect(v.checkpoint.size).toBe(3)
    const all = await read(v, 0, files(svc))
    expect(all.next).toBe(3)
    expect(all.calls.map((c) => c.next)).toEqual([3])
    expect(all.calls[0]!.entries.map((e) => [e.index, Buffer.from(e.data, 'base64').toString(), e.size, e.space])).toEqual([
      [0, 'a', 1, space.did()],
      [1, 'b', 1, space.did()],
      [2, 'c', 1, space.did()],
    ])
    expect((await read(v, 2, files(svc))).calls[0]!.entries.map((e) => e.index)).toEqual([2])
    expect(await read(v, 3, files(svc))).toEqual({ calls: [], next: 3 })
    expect(await read(v, 7, files(svc))).toEqual({ calls: [], next: 7 })
  })

  it('refuses an altered entry (LeafHashMismatch) and an altered level-0 tile (TileMismatch), emitting nothing', async () => {
    const v = (await check(svc))!
    await expect(read(v, 0, flipping(files(svc), 'tile/entries/000.p/3', (n) => n - 1))).rejects.toMatchObject({ name: 'LeafHashMismatch', exitCode: 3 })
    await expect(read(v, 0, flipping(files(svc), 'tile/0/000.p/3', () => 0))).rejects.toMatchObject({ name: 'TileMismatch', exitCode: 3 })
    await expect(read(v, 0, async (p) => (p.startsWith('tile/entries/') ? undefined : files(svc)(p)))).rejects.toMatchObject({ name: 'MissingFile' })
  })

  it('stops before the next bundle when asked', async () => {
    const v = (await check(svc))!
    expect(await readNewEntries({ space: space.did(), fetchFile: files(svc), checkpoint: v.checkpoint, from: 0, stopped: () => true, emit: async () => expect.fail('emitted') })).toBe(0)
  })
})

describe('checkNewCheckpoint', () => {
  it('accepts the same log again and an honest second source; warns of a second source it cannot reach', async () => {
    const v = (await check(svc))!
    const warnings: string[] = []
    const again = await check(svc, { seen: [seen(v, 'pinned')], compare: [{ source: 'self', fetchFile: files(svc) }, { source: 'dead', fetchFile: httpLogFiles('http://127.0.0.1:1', space.did()) }], warn: (m) => void warnings.push(m) })
    expect(again?.note).toBe(v.note)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^--compare dead: .*not compared this time$/)
  })

  it('a fork at the pinned size, or as a second source, is a SplitView with both checkpoints', async () => {
    const honest = (await check(svc))!
    const forked = (await check(fork))!
    const a = await misbehavior(check(fork, { seen: [seen(honest, 'pinned')] }))
    expect(a.name).toBe('SplitView')
    expect(a.exitCode).toBe(5)
    expect(a.evidence.map((e) => [e.source, e.note])).toEqual([
      ['pinned', honest.note],
      [fork.url, forked.note],
    ])
    const b = await misbehavior(check(svc, { compare: [{ source: 'fork', fetchFile: files(fork) }] }))
    expect(b.name).toBe('SplitView')
    expect(b.evidence.map((e) => e.note)).toEqual([honest.note, forked.note])
  })

  it('a larger fork is LogForked, proved from its own tiles (followed or compared); a smaller tree after it is LogRolledBack', async () => {
    const honest = (await check(svc))!
    await append(fork.url, ['Y'])
    const grown = (await check(fork))!
    expect(grown.checkpoint.size).toBe(4)
    const a = await misbehavior(check(fork, { seen: [seen(honest, 'pinned')] }))
    expect(a.name).toBe('LogForked')
    expect(a.evidence.map((e) => e.size)).toEqual([3, 4])
    const b = await misbehavior(check(svc, { compare: [{ source: 'fork', fetchFile: files(fork) }] }))
    expect(b.name).toBe('LogForked')
    expect(b.evidence.map((e) => [e.source, e.size])).toEqual([
      [svc.url, 3],
      ['fork', 4],
    ])
    const c = await misbehavior(check(svc, { seen: [seen(grown, 'pinned')] }))
    expect(c.name).toBe('LogRolledBack')
    expect(c.evidence.map((e) => [e.source, e.size])).toEqual([
      ['pinned', 4],
      [svc.url, 3],
    ])
    // The fork's tiles altered: not evidence of a fork, but the followed source's tiles must match its root.
    const tampered = flipping(files(fork), 'tile/0/000.p/4', () => 0)
    await expect(check(fork, { fetchFile: tampered, seen: [seen(honest, 'pinned')] })).rejects.toMatchObject({ name: 'TileMismatch', exitCode: 3 })
    await expect(check(fork, { fetchFile: tampered, compare: [{ source: 'honest', fetchFile: files(svc) }] })).rejects.toMatchObject({ name: 'TileMismatch', exitCode: 3 })
    const warnings: string[] = []
    expect((await check(svc, { compare: [{ source: 'fork', fetchFile: tampered }], warn: (m) => void warnings.push(m) }))?.checkpoint.size).toBe(3)
    expect(warnings[0]).toMatch(/^--compare fork: the tiles of fork \(size 4\): .*not compared this time$/)
  })
})

describe('the cursor', () => {
  it('round-trips through a private file; a corrupt one is named', async () => {
    const v = (await check(svc))!
    expect(await loadCursor(dir, space.did())).toBeUndefined()
    const cp = { size: v.checkpoint.size, rootHash: v.checkpoint.rootHash, note: v.note }
    const file = await saveCursor(dir, { space: space.did(), next: 2, checkpoint: cp })
    expect(file).toBe(cursorFilePath(dir, space.did()))
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await loadCursor(dir, space.did())).toEqual({ space: space.did(), next: 2, checkpoint: cp })
    await saveCursor(dir, { space: space.did(), next: 9, checkpoint: cp }) // --from past the end
    expect((await loadCursor(dir, space.did()))?.next).toBe(9)
    await writeFile(file, JSON.stringify({ space: space.did(), next: 5, size: 3, rootHash: 'x', checkpoint: v.note }))
    await expect(loadCursor(dir, space.did())).rejects.toThrow(TrustStoreError)
    await expect(loadCursor(dir, space.did())).rejects.toThrow(file)
  })
})

/**
 * Issue 15 item 2: a failed write or fsync at every step of a batch's integrate/commit/publish
 * path — entry bundles, hash tiles, `.state/tree`, `checkpoint`, the CAR and its index directory —
 * on the real FileStore and CarPacker, faults injected through their DurableIO seam
 * (test/helpers/faulty-io.ts, which also models what a power loss would keep). For each k, the k-th
 * filesystem step of the batch fails, and the invariants are checked:
 *
 * - nothing is acknowledged unless what it depends on is durable: the log a power loss would leave
 *   right then (the model's image) holds every acknowledged entry at its index, and its tree is
 *   consistent with every checkpoint or tree an answer showed;
 * - after a failed write of the log's files the log stops: the batch's appends (unless already
 *   durable) and every later one are refused StorageFailed, and nothing more is written;
 * - a reopen (`recommit`) continues from the last committed state: a power loss right after it, or
 *   after more appends, loses nothing acknowledged and forks nothing; the CARs catch up.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { type Appended, Log, type WitnessQuorum } from '../../src/log/log.js'
import { LogManager } from '../../src/log/log-manager.js'
import { CarPacker } from '../../src/storage/car-packer.js'
import { FileStore } from '../../src/storage/file-store.js'
import { LocalBackend } from '../../src/storage/local-backend.js'
import { checkTree, ed25519Signer, ed25519Verifier, type Hash } from '../../src/tlog/index.js'
import { generateKey } from '../../src/ucan/index.js'
import { FaultyIO, signature } from '../helpers/faulty-io.js'

const ORIGIN = 'ucanlog/logs/did:key:z6MkFaultFaultFaultFaultFaultFaultFaultFault'
const signer = ed25519Signer(ORIGIN, new Uint8Array(32).fill(9))
const verifier = ed25519Verifier(signer.vkey)
/** Entries before the batch under test: the batch completes bundle 0 and tile 0/000 and starts level 1. */
const PRELOAD = 254
const BATCH = 5

/** Witnesses that always cosign (no cosignatures: a policy of none). */
const witnesses: WitnessQuorum = { cosign: async (note) => ({ note, cosigned: new Set<string>(), satisfied: true }) }

const entry = (i: number) => new TextEncoder().encode(`entry ${i}`)
const text = (e: Uint8Array) => new TextDecoder().decode(e)

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ucanlog-faults-'))
  dirs.push(d)
  return d
}

async function openLog(dir: string, io: FaultyIO | undefined, o: { recommit?: boolean; archive?: boolean } = {}): Promise<{ log: Log; packer?: CarPacker }> {
  const files = await FileStore.create(join(dir, 'log'), io ? { io } : {})
  const packer = o.archive === false ? undefined : await CarPacker.open(join(dir, 'cars'), io ? { io } : {})
  const log = await Log.open({ id: 'did:key:fault', origin: ORIGIN, signer, verifier, files, archive: packer, witnesses, batchMaxSize: 256, batchMaxAgeMs: 0, publishRetryMs: 5, recommit: o.recommit })
  return { log, packer }
}

/** What an answer showed: the entry's index, and the tree (size, root) it was shown in. */
interface Shown {
  index: number
  size: number
  root: Hash
  entry: Uint8Array
}

function shown(a: Appended, e: Uint8Array): Shown {
  return a.published ? { index: a.index, size: a.checkpoint.size, root: a.checkpoint.rootHash, entry: e } : { index: a.index, size: a.tree.size, root: a.tree.rootHash, entry: e }
}

/**
 * Opens the log a power loss right now would leave (the model's image of `log/`) and checks every
 * acknowledged entry is at its index and every tree shown is consistent with its tree. Returns its size.
 */
async function checkPowerLoss(io: FaultyIO, acked: Shown[], label: string): Promise<number> {
  const image = await tmp()
  await io.crashImage('log', image)
  const files = await FileStore.create(image)
  let log: Log
  try {
    log = await Log.open({ id: 'did:key:fault', origin: ORIGIN, signer, verifier, files, witnesses, batchMaxAgeMs: 0 })
  } catch (err) {
    throw new Error(`${label}: the log a power loss leaves does not open: ${(err as Error).message}`)
  }
  await log.settled()
  const size = log.treeSize
  const last = await log.read(0, size)
  expect(last.total, label).toBe(size) // published again at open: the whole tree
  for (const a of acked) {
    expect(size, `${label}: acknowledged entry ${a.index} lost`).toBeGreaterThan(a.index)
    expect(text(last.entries[a.index]!), `${label}: entry ${a.index}`).toBe(text(a.entry))
    checkTree(await log.proveConsistency(size, a.size), size, log.checkpoint!.rootHash, a.size, a.root)
  }
  await log.close()
  return size
}

/** The batch under test, with the fault armed at the first step of signature `fail` after the preload (none: no fault). */
async function run(fail?: string) {
  const dir = await tmp()
  const io = new FaultyIO(dir)
  let { log, packer } = await openLog(dir, io)
  const preload = await Promise.all(Array.from({ length: PRELOAD }, (_, i) => log.append(entry(i))))
  await log.settled()
  const acked: Shown[] = preload.map((a, i) => shown(a, entry(i)))
  const before = io.countedSteps
  if (fail !== undefined) io.failWhen = (s) => signature(s) === fail
  const batch = await Promise.allSettled(Array.from({ length: BATCH }, (_, i) => log.append(entry(PRELOAD + i))))
  await log.settled()
  return { dir, io, log, packer, acked, batch, steps: io.countedSteps - before, reopen: (o: { recommit?: boolean } = {}) => openLog(dir, io, o) }
}

describe('a failed write or fsync at each step of a batch (issue 15 item 2)', () => {
  it('walks every step: nothing unsafe acknowledged, the log stops, the reopen recovers', { timeout: 300_000 }, async () => {
    const clean = await run()
    expect(clean.batch.every((r) => r.status === 'fulfilled')).toBe(true)
    const kinds = [...new Set(clean.io.steps.slice(-clean.steps).map(signature))]
    // The batch writes bundles, tiles, the commit point, the checkpoint and a CAR, each through
    // write, fsync, rename and a directory fsync.
    const wanted = [/^write log\/tile\/entries\/\.tmp-/, /^fsync log\/tile\/1\/000\.p\/\.tmp-/, /^rename log\/\.state\/\.tmp-/, /^fsyncDir log\/\.state$/, /^rename log\/\.tmp-/, /^fsyncDir log$/, /^mkdir log\/tile\/1$/, /^write cars\/\.tmp-/, /^fsyncDir cars$/]
    for (const want of wanted) expect(kinds.some((s) => want.test(s)), `${want} in ${kinds.join(', ')}`).toBe(true)
    await clean.log.close()
    let stopped = 0
    for (const [k, kind] of kinds.entries()) {
      const r = await run(kind)
      const label = `step ${k + 1} of ${kinds.length} (${kind})`
      expect(r.io.failed, label).toBeDefined()
      const at = r.io.failed!
      const inLog = at.path === 'log' || at.path.startsWith('log/')
      const acked = [...r.acked]
      r.batch.forEach((s, i) => {
        if (s.status === 'fulfilled') acked.push(shown(s.value, entry(PRELOAD + i)))
        else expect((s.reason as Error).name, `${label}: refusal`).toBe('StorageFailed')
      })
      if (inLog) {
        // The log stopped: refused by name, nothing acknowledged past the failure.
        stopped++
        expect(r.log.failed?.name, label).toBe('StorageFailed')
        await expect(r.log.append(entry(999)), label).rejects.toMatchObject({ name: 'StorageFailed' })
      } else {
        // A CAR's failure stops nothing: the checkpoint is published, the CAR comes with the next one.
        expect(r.log.failed, label).toBeUndefined()
        expect(r.batch.every((s) => s.status === 'fulfilled' && s.value.published), label).toBe(true)
      }
      // A power loss right now keeps everything acknowledged.
      await checkPowerLoss(r.io, acked, `${label}, power loss after the fault`)
      // Reopen (as LogManager does for a stopped log), then a power loss right after it.
      let log = r.log
      if (inLog) {
        await r.log.close()
        log = (await r.reopen({ recommit: true })).log
        await log.settled()
        if (log.checkpoint) acked.push({ index: 0, size: log.checkpoint.size, root: log.checkpoint.rootHash, entry: entry(0) })
        await checkPowerLoss(r.io, acked, `${label}, power loss after the reopen`)
      }
      // The log goes on: more appends, all acknowledged, and a power loss keeps them all.
      const start = log.treeSize
      const more = await Promise.all([0, 1, 2].map((i) => log.append(entry(500 + i))))
      more.forEach((a, i) => {
        expect(a.index, label).toBe(start + i)
        acked.push(shown(a, entry(500 + i)))
      })
      await log.settled()
      const size = await checkPowerLoss(r.io, acked, `${label}, power loss after more appends`)
      expect(size, label).toBe(log.treeSize)
      // Entries of the failed batch are either all absent or present in order (never anything else).
      const all = (await log.read(0, size)).entries.map(text)
      const expected = [...Array.from({ length: PRELOAD }, (_, i) => `entry ${i}`), ...(start > PRELOAD ? Array.from({ length: BATCH }, (_, i) => `entry ${PRELOAD + i}`) : []), 'entry 500', 'entry 501', 'entry 502']
      expect(all, label).toEqual(expected)
      // The CARs caught up: the newest pack is the published checkpoint, every CAR file present.
      await log.close()
      const cars = await CarPacker.open(join(r.dir, 'cars'))
      const packs = cars.list()
      expect(packs.at(-1)?.treeSize, `${label}: newest CAR`).toBe(size)
      for (const p of packs) await stat(p.file)
      await cars.close()
    }
    expect(stopped).toBeGreaterThan(0)
  })
})

/** Appends `e` to log `id` under a lease, creating the log, as the service does. */
async function leasedAppend(logs: LogManager, id: string, e: Uint8Array): Promise<Appended> {
  const lease = (await logs.acquire(id, { create: true }))!
  try {
    return await lease.log.append(e)
  } finally {
    lease.release()
  }
}

describe('LogManager and a log stopped by a failed write (issue 15 item 2)', () => {
  it('only that log is refused; its next acquire reopens it from the last committed state; a reopen that fails again is refused by name', async () => {
    const dir = await tmp()
    const io = new FaultyIO(dir)
    const logs = new LogManager({
      backend: new LocalBackend(dir, { io }),
      signer: (origin) => ed25519Signer(origin, new Uint8Array(32).fill(9)),
      verifier: (origin) => ed25519Verifier(ed25519Signer(origin, new Uint8Array(32).fill(9)).vkey),
      witnesses: () => witnesses,
      log: { batchMaxAgeMs: 0 },
    })
    const [a, b] = await Promise.all([0, 1].map(async () => (await generateKey()).did()))
    const append = (id: string, e: Uint8Array) => leasedAppend(logs, id, e)
    for (let i = 0; i < 3; i++) {
      await append(a!, entry(i))
      await append(b!, entry(i))
    }
    // The commit point of log a fails at its directory fsync: the rename is visible, not durable.
    io.failWhen = (s) => s.op === 'fsyncDir' && s.path === `logs/${a}/.state`
    await expect(append(a!, entry(3))).rejects.toMatchObject({ name: 'StorageFailed' })
    // Log b keeps working meanwhile.
    expect((await append(b!, entry(3))).index).toBe(3)
    // A power loss now: log a holds its three acknowledged entries.
    const image = await tmp()
    await io.crashImage(`logs/${a}`, image)
    const crashed = await Log.open({ id: a!, origin: logs.origin(a!), signer: ed25519Signer(logs.origin(a!), new Uint8Array(32).fill(9)), files: await FileStore.create(image), witnesses })
    expect(crashed.treeSize).toBe(3)
    await crashed.close()
    // While the disk still fails, the reopen fails too: refused StorageFailed, and retried next time.
    io.failed = undefined
    io.failWhen = (s) => s.op === 'write' && s.path.startsWith(`logs/${a}/.state/`)
    await expect(append(a!, entry(4))).rejects.toMatchObject({ name: 'StorageFailed' })
    expect(io.failed).toBeDefined()
    // The fault gone, the next acquire reopens log a (recommitting) and it continues.
    io.failWhen = undefined
    const r = await append(a!, entry(5))
    expect(r.index).toBeGreaterThanOrEqual(3)
    const log = (await logs.get(a!))!
    expect(log.failed).toBeUndefined()
    await log.settled()
    const all = (await log.read(0, log.treeSize)).entries.map(text)
    expect(all.slice(0, 3)).toEqual(['entry 0', 'entry 1', 'entry 2'])
    expect(all.at(-1)).toBe('entry 5')
    // A power loss after the reopen: everything acknowledged is there.
    const image2 = await tmp()
    await io.crashImage(`logs/${a}`, image2)
    const again = await Log.open({ id: a!, origin: logs.origin(a!), signer: ed25519Signer(logs.origin(a!), new Uint8Array(32).fill(9)), files: await FileStore.create(image2), witnesses })
    expect(again.treeSize).toBe(log.treeSize)
    await again.close()
    await logs.close()
  })

  it('a stopped log closed to make room (--max-open-logs) still recommits at its next open', async () => {
    const dir = await tmp()
    const io = new FaultyIO(dir)
    const lines: string[] = []
    const logger = { info: (_o: object, m?: string) => void lines.push(`info ${m}`), warn: (_o: object, m?: string) => void lines.push(`warn ${m}`), error: (_o: object, m?: string) => void lines.push(`error ${m}`) }
    const seed = new Uint8Array(32).fill(9)
    const logs = new LogManager({ backend: new LocalBackend(dir, { io }), signer: (origin) => ed25519Signer(origin, seed), witnesses: () => witnesses, log: { batchMaxAgeMs: 0, logger }, maxOpenLogs: 1 })
    const [a, b] = await Promise.all([0, 1].map(async () => (await generateKey()).did()))
    const append = (id: string, e: Uint8Array) => leasedAppend(logs, id, e)
    await append(a!, entry(0))
    io.failWhen = (s) => s.op === 'fsyncDir' && s.path === `logs/${a}/.state`
    await expect(append(a!, entry(1))).rejects.toMatchObject({ name: 'StorageFailed' })
    // Log b needs the only place: the stopped log a is closed for it.
    expect((await append(b!, entry(0))).index).toBe(0)
    expect((await append(a!, entry(2))).index).toBeGreaterThanOrEqual(1)
    expect(lines).toContain('info log reopened after a failed write')
    await logs.close()
  })
})

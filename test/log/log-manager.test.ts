/**
 * LogManager's bound on open logs (issue 8, hole 3) on the real local backend, whose CAR index is
 * exclusive (a second open of the same log fails with "database is locked"): idle logs are closed
 * least recently used first, a log being closed is never reopened before its close has finished
 * (a hook stalls the close to hold the race open), busy logs are never closed, and a request for
 * another log when all are busy is refused with TooManyOpenLogs while the open logs keep working.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { WitnessQuorum } from '../../src/log/log.js'
import { LogCreationLimitedError, LogManager, TooManyOpenLogsError } from '../../src/log/log-manager.js'
import { LocalBackend } from '../../src/storage/local-backend.js'
import { ed25519Signer, ed25519Verifier } from '../../src/tlog/index.js'
import { generateKey } from '../../src/ucan/index.js'

const SEED = new Uint8Array(32).fill(9)
const witnesses: WitnessQuorum = { cosign: async (note) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

/** A LocalBackend that counts opens per log and fails the test if a log is opened while open. */
class CountingBackend extends LocalBackend {
  readonly open_ = new Set<string>()
  readonly opens: string[] = []
  doubleOpen = false
  override async open(id: string, create: boolean) {
    if (this.open_.has(id)) this.doubleOpen = true
    const s = await super.open(id, create)
    if (!s) return s
    this.open_.add(id)
    this.opens.push(id)
    const close = s.archive.close.bind(s.archive)
    s.archive.close = async () => {
      this.open_.delete(id)
      await close()
    }
    return s
  }
}

async function manager(maxOpenLogs: number, extra: Partial<ConstructorParameters<typeof LogManager>[0]> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ucanlog-registry-'))
  dirs.push(dir)
  const backend = new CountingBackend(dir)
  const logs = new LogManager({
    backend,
    signer: (origin) => ed25519Signer(origin, SEED),
    verifier: (origin) => ed25519Verifier(ed25519Signer(origin, SEED).vkey),
    witnesses: () => witnesses,
    log: { batchMaxAgeMs: 1 },
    maxOpenLogs,
    ...extra,
  })
  return { logs, backend }
}

const ids = async (n: number) => Promise.all(Array.from({ length: n }, async () => (await generateKey()).did()))
const entry = (s: string) => new TextEncoder().encode(s)

describe('LogManager: open logs are bounded', () => {
  it('closes the least recently used idle log to open another; never more than maxOpenLogs open', async () => {
    const { logs, backend } = await manager(2)
    const [a, b, c] = await ids(3)
    for (const id of [a!, b!, c!, a!, b!, c!]) {
      const lease = (await logs.acquire(id, { create: true }))!
      await lease.log.append(entry(id))
      lease.release()
      expect(backend.open_.size).toBeLessThanOrEqual(2)
    }
    expect(backend.doubleOpen).toBe(false)
    expect(backend.opens).toEqual([a, b, c, a, b, c])
    // Everything appended survived the closes.
    for (const id of [a!, b!, c!]) expect((await logs.published(id))!.checkpoint.size).toBe(2)
    await logs.close()
  })

  it('a log being closed (close stalled) and reopened concurrently is never open twice', async () => {
    let stall: (() => void) | undefined
    const stalled = new Promise<void>((ok) => (stall = ok))
    let closing: string | undefined
    let closeStarted: () => void = () => {}
    const firstClose = new Promise<void>((ok) => (closeStarted = ok))
    let waitedFor: (id: string) => void = () => {}
    const waits = new Promise<string>((ok) => (waitedFor = ok))
    const { logs, backend } = await manager(2, {
      beforeClose: async (id) => {
        closing ??= id
        if (id !== closing) return
        closeStarted()
        await stalled // only the first log closed (a) is held
      },
      onWaitForClose: (id) => waitedFor(id),
    })
    const [a, b, c] = await ids(3)
    for (const id of [a!, c!]) {
      const l = (await logs.acquire(id, { create: true }))!
      await l.log.append(entry(id))
      l.release()
    }
    // b evicts a (least recently used); a's close is stalled by the hook.
    const pb = logs.acquire(b!, { create: true })
    await firstClose
    expect(closing).toBe(a)
    // a is wanted again while it is still closing: it must wait for the close, not open a second
    // copy nor lease the closing one (the manager says when it starts waiting; a lease or an error
    // coming first is the bug).
    const pa = logs.acquire(a!)
    const first = await Promise.race([waits.then((id) => `waits for ${id}`), pa.then(() => 'leased', (err: Error) => `failed: ${err.message}`)])
    expect(first).toBe(`waits for ${a}`)
    expect(backend.opens).toEqual([a, c]) // neither b nor the second a has opened yet
    expect(backend.open_.has(a!)).toBe(true) // a is still open (closing)
    stall!()
    const [lb, la] = [(await pb)!, (await pa)!] // a, once closed, evicts c (idle) and reopens
    expect(backend.doubleOpen).toBe(false)
    expect(backend.opens.slice(0, 2)).toEqual([a, c])
    expect(backend.opens.slice(2).sort()).toEqual([a, b].sort()) // in either order, a only after its close
    expect([...backend.open_].sort()).toEqual([a, b].sort())
    await la.log.append(entry('a1'))
    await lb.log.append(entry('b0'))
    la.release()
    lb.release()
    expect((await logs.published(a!))!.checkpoint.size).toBe(2)
    await logs.close()
  })

  it('when every open log is busy, another log is refused with TooManyOpenLogs and the busy ones keep working', async () => {
    const { logs, backend } = await manager(2)
    const [a, b, c] = await ids(3)
    const la = (await logs.acquire(a!, { create: true }))!
    const lb = (await logs.acquire(b!, { create: true }))!
    await expect(logs.acquire(c!, { create: true })).rejects.toBeInstanceOf(TooManyOpenLogsError)
    expect(await logs.exists(c!)).toBe(false) // nothing was created
    // The leaseholders are unaffected.
    expect((await la.log.append(entry('a'))).index).toBe(0)
    expect((await lb.log.append(entry('b'))).index).toBe(0)
    lb.release()
    const lc = (await logs.acquire(c!, { create: true }))! // b is idle now: it makes room
    expect((await lc.log.append(entry('c'))).index).toBe(0)
    expect(backend.open_.has(b!)).toBe(false)
    la.release()
    lc.release()
    await logs.close()
  })

  it('creation is refused with LogCreationLimited when admitCreate refuses or maxLogs is reached; existing logs still open', async () => {
    let allow = true
    const { logs } = await manager(4, { admitCreate: () => (allow ? undefined : 3), maxLogs: 2 })
    const [a, b, c] = await ids(3)
    ;(await logs.acquire(a!, { create: true }))!.release()
    allow = false
    const refused = await logs.acquire(b!, { create: true }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(LogCreationLimitedError)
    expect((refused as LogCreationLimitedError).retryAfter).toBe(3)
    expect(await logs.acquire(a!, { create: true })).toBeDefined() // an existing log is not a creation
    allow = true
    ;(await logs.acquire(b!, { create: true }))!.release()
    await expect(logs.acquire(c!, { create: true })).rejects.toBeInstanceOf(LogCreationLimitedError) // 2 logs: the total
    await logs.close()
  })
})

describe('LogManager: idleCloseMs (leases follow use)', () => {
  it('closes a log once idle (no lease, nothing queued) that long, never one leased, and reopens it at the next acquire', async () => {
    const { logs, backend } = await manager(8, { idleCloseMs: 20 })
    const [a, b] = await ids(2)
    const held = (await logs.acquire(a!, { create: true }))!
    await held.log.append(entry('a 0'))
    const idle = (await logs.acquire(b!, { create: true }))!
    await idle.log.append(entry('b 0'))
    idle.release()
    // b, released, closes by itself (its archive closed: with a database, its lease let go); a, leased, stays.
    await expect.poll(() => backend.open_.has(b!), { timeout: 5000 }).toBe(false)
    expect(backend.open_.has(a!)).toBe(true)
    expect(logs.openCount).toBe(1)
    held.release()
    await expect.poll(() => logs.openCount, { timeout: 5000 }).toBe(0)
    // The next acquire opens it again, from what was written.
    const again = (await logs.acquire(b!))!
    expect((await again.log.append(entry('b 1'))).index).toBe(1)
    again.release()
    expect(backend.opens).toEqual([a, b, b])
    expect(backend.doubleOpen).toBe(false)
    await logs.close()
  })
})

import { describe, expect, it } from 'vitest'
import { checkAppendResult } from '../../src/client/receipt.js'
import { type Appended, type WitnessQuorum, EmptyEntryError, EntryTooLargeError, Log } from '../../src/log/log.js'
import {
  MemoryHashStore,
  checkTree,
  decodeBase64,
  ed25519Signer,
  ed25519Verifier,
  leafHash,
  openNote,
  parseCheckpoint,
  treeHash,
} from '../../src/tlog/index.js'
import { appendResultOf } from '../../src/ucan/wire.js'
import { MemoryFiles } from '../helpers/memory-files.js'

const ORIGIN = 'ucanlog/logs/did:key:z6MkTestLogTestLogTestLogTestLogTestLogTestLog'
const SEED = new Uint8Array(32).fill(7)
const signer = ed25519Signer(ORIGIN, SEED)
const verifier = ed25519Verifier(signer.vkey)

/** A cosigner standing in for the witnesses: quorum met while `up`, else not; records every size asked. */
class FakeWitnesses implements WitnessQuorum {
  up = true
  sizes: number[] = []
  async cosign(checkpoint: string, size: number) {
    this.sizes.push(size)
    return { note: checkpoint, cosigned: new Set<string>(), satisfied: this.up }
  }
}

const entry = (i: number) => new TextEncoder().encode(`entry ${i}`)

async function open(files: MemoryFiles, witnesses: WitnessQuorum = new FakeWitnesses(), extra: object = {}) {
  return Log.open({ id: 'did:key:test', origin: ORIGIN, signer, files, witnesses, batchMaxAgeMs: 5, publishRetryMs: 20, ...extra })
}

/** Checks the engine's answer for entry `i` in its wire form (what a client checks of the receipt). */
function checkResult(a: Appended, i: number) {
  const r = appendResultOf(a)
  expect(r.index).toBe(i)
  expect(r.published).toBe(true)
  const cp = parseCheckpoint(openNote(r.checkpoint, [verifier]).text)
  expect(cp.origin).toBe(ORIGIN)
  expect(cp.size).toBe(r.treeSize)
  checkAppendResult(r, entry(i))
}

describe('Log', () => {
  it('sequences, batches and publishes entries with verifiable inclusion proofs', async () => {
    const files = new MemoryFiles()
    const w = new FakeWitnesses()
    const log = await open(files, w, { batchMaxSize: 100 })
    const results = await Promise.all(Array.from({ length: 700 }, (_, i) => log.append(entry(i))))
    results.forEach((r, i) => checkResult(r, i))
    expect(log.treeSize).toBe(700)
    // 700 entries in batches of at most 100: at least 7 checkpoints, each a larger tree.
    expect(w.sizes.length).toBeGreaterThanOrEqual(7)
    expect([...w.sizes].sort((a, b) => a - b)).toEqual(w.sizes)
    // The stored root equals a tree computed independently from the entries.
    const mem = new MemoryHashStore()
    for (let i = 0; i < 700; i++) await mem.append(leafHash(entry(i)))
    expect(log.checkpoint!.rootHash).toEqual(await treeHash(700, mem))
    // Reads return exactly the entries, across bundle boundaries.
    const { entries, total } = await log.read(250, 20)
    expect(total).toBe(700)
    expect(entries.map((e) => new TextDecoder().decode(e))).toEqual(Array.from({ length: 20 }, (_, k) => `entry ${250 + k}`))
    // A byte budget stops the read before the entry that would pass it.
    const sized = (i: number) => `entry ${i}`.length
    let budget = 0
    for (let i = 250; i < 255; i++) budget += sized(i)
    const bounded = await log.read(250, 100, budget)
    expect(bounded.entries.map((e) => new TextDecoder().decode(e))).toEqual(Array.from({ length: 5 }, (_, k) => `entry ${250 + k}`))
    expect((await log.read(250, 100, budget + sized(255) - 1)).entries).toHaveLength(5)
    expect((await log.read(250, 100, 0)).entries).toEqual([])
    expect(files.files.has('tile/entries/000')).toBe(true)
    expect(files.files.has('tile/entries/002.p/188')).toBe(true)
    expect(files.files.has('tile/1/000.p/2')).toBe(true)
    await log.close()
    expect(files.violations).toEqual([])
  })

  it('refuses empty and oversized entries without changing anything', async () => {
    const files = new MemoryFiles()
    const log = await open(files)
    await expect(log.append(new Uint8Array(0))).rejects.toThrow(EmptyEntryError)
    await expect(log.append(new Uint8Array(65536))).rejects.toThrow(EntryTooLargeError)
    expect(files.writes).toBe(0)
    const r = await log.append(new Uint8Array(65535).fill(1))
    expect(r.index).toBe(0)
    await log.close()
  })

  it('reopens from storage and keeps growing consistently', async () => {
    const files = new MemoryFiles()
    let log = await open(files)
    const first = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(entry(i))))
    await log.close()
    log = await open(files)
    expect(log.treeSize).toBe(300)
    const more = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(entry(300 + i))))
    more.forEach((r, i) => checkResult(r, 300 + i))
    const older = appendResultOf(first.at(-1)!)
    const newer = appendResultOf(more.at(-1)!)
    const proof = await log.proveConsistency(newer.treeSize, older.treeSize)
    checkTree(proof, newer.treeSize, decodeBase64(newer.rootHash), older.treeSize, decodeBase64(older.rootHash))
    await log.close()
    expect(files.violations).toEqual([])
  })

  it('a failed write rejects the batch StorageFailed, acknowledges nothing, and stops the log until it is reopened', async () => {
    for (const persist of [false, true]) {
      const files = new MemoryFiles()
      const log = await open(files)
      await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(entry(i))))
      files.failNext(persist)
      const failed = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => log.append(entry(100 + i))))
      expect(failed.map((r) => r.status === 'rejected' && (r.reason as Error).name)).toEqual(Array(5).fill('StorageFailed'))
      expect(log.treeSize).toBe(10)
      // Stopped: refused by name, nothing written, until reopened (issue 15 item 2).
      const writes = files.writes
      await expect(log.append(entry(10))).rejects.toMatchObject({ name: 'StorageFailed' })
      expect(log.failed?.name).toBe('StorageFailed')
      expect(files.writes).toBe(writes)
      await log.close()
      // A reopened log sees exactly the acknowledged entries and continues.
      const again = await open(files, undefined, { recommit: true })
      expect(again.treeSize).toBe(10)
      const ok = await Promise.all(Array.from({ length: 5 }, (_, i) => again.append(entry(10 + i))))
      ok.forEach((r, i) => checkResult(r, 10 + i))
      const { entries } = await again.read(0, 100)
      expect(entries.map((e) => new TextDecoder().decode(e))).toEqual(Array.from({ length: 15 }, (_, i) => `entry ${i}`))
      await again.close()
      expect(files.violations).toEqual([])
    }
  })

  it('answers published:false while the quorum is not met, and publishes once it is', async () => {
    const files = new MemoryFiles()
    const w = new FakeWitnesses()
    const log = await open(files, w)
    await log.append(entry(0))
    w.up = false
    const r = await log.append(entry(1))
    expect(appendResultOf(r)).toMatchObject({ index: 1, published: false, checkpoint: '', inclusionProof: [] })
    expect(log.checkpoint!.size).toBe(1)
    w.up = true
    await expect.poll(() => log.checkpoint?.size, { timeout: 5000 }).toBe(2)
    const proof = await log.proveInclusion(2, 1)
    expect(proof.length).toBe(1)
    await log.close()
  })

  it("answers a batch's appends while its CAR is archived, takes the next batch only after that, and a crash in between is caught up at open", async () => {
    // An archive whose pack() waits until released: the appends must not wait for it (they need
    // only the files and the checkpoint), but the next batch must, so archiving still paces the log.
    class GatedArchive {
      lastTreeSize = 0
      packed: number[] = []
      started: number[] = []
      release: (() => void)[] = []
      async pack(treeSize: number) {
        this.started.push(treeSize)
        await new Promise<void>((r) => this.release.push(r))
        this.packed.push(treeSize)
        this.lastTreeSize = treeSize
      }
    }
    const archive = new GatedArchive()
    const w = new FakeWitnesses()
    const files = new MemoryFiles()
    const log = await open(files, w, { archive, batchMaxSize: 4, batchMaxAgeMs: 0 })
    let timer: NodeJS.Timeout | undefined
    const waited = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the appends waited for the archive')), 2000)))
    const first = await Promise.race([Promise.all([0, 1, 2, 3].map((i) => log.append(entry(i)))), waited]).finally(() => clearTimeout(timer))
    first.forEach((r, i) => checkResult(r, i))
    expect(archive.started).toEqual([4])
    expect(archive.packed).toEqual([])
    // A crash now (answered, its CAR not written): the next open packs what was published.
    const afterCrash = new GatedArchive()
    const onDisk = new MemoryFiles()
    for (const [path, bytes] of files.files) onDisk.files.set(path, bytes.slice())
    const reopened = await open(onDisk, new FakeWitnesses(), { archive: afterCrash })
    await expect.poll(() => afterCrash.started).toEqual([4])
    afterCrash.release.shift()!()
    await reopened.settled()
    expect(afterCrash.packed).toEqual([4])
    const second = Promise.all([4, 5].map((i) => log.append(entry(i))))
    await new Promise((r) => setTimeout(r, 50))
    expect(w.sizes).toEqual([4]) // the next batch waits for the archive
    archive.release.shift()!()
    const answered = await second
    answered.forEach((r, i) => checkResult(r, i + 4))
    expect(w.sizes).toEqual([4, 6])
    archive.release.shift()!()
    await expect.poll(() => archive.packed).toEqual([4, 6])
    await log.close()
  })

  it('detects tampered storage on open', async () => {
    const files = new MemoryFiles()
    const log = await open(files)
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(entry(i))))
    await log.close()
    const t = files.files.get('tile/0/000.p/20')!
    t[5] ^= 1
    await expect(open(files)).rejects.toMatchObject({ name: 'CorruptLog' })
  })
})

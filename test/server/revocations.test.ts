/**
 * The revocation log and its SQLite index kept in step (src/server/revocations.ts): a failure or
 * a crash between the log append and the index write must never put a record in the log twice,
 * whether the record is retried in the same process or reconciled at the next open, published or
 * not.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import type { WitnessQuorum } from '../../src/log/log.js'
import { RevocationLog } from '../../src/server/revocations.js'
import { LocalBackend } from '../../src/storage/local-backend.js'
import { TILE_WIDTH, ed25519Signer, entryBundlePath, parseEntryBundle } from '../../src/tlog/index.js'
import { type RevocationRecord, UcanStore, parseRevocationRecord } from '../../src/ucan/index.js'
import { FaultyIO } from '../helpers/faulty-io.js'

const SEED = new Uint8Array(32).fill(9)

/** Witnesses that meet the quorum while `up`. */
class Witnesses implements WitnessQuorum {
  up = true
  async cosign(checkpoint: string) {
    return { note: checkpoint, cosigned: new Set<string>(), satisfied: this.up }
  }
}

const record = (ucan: string, scope = 'did:key:z6MkScope'): RevocationRecord => ({
  ucan,
  scope: scope as `did:${string}:${string}`,
  revoker: 'did:key:z6MkRevoker',
  invocation: 'bafyinvocation',
  time: 1_795_000_000,
})

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-revlog-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function open(store: UcanStore, witnesses: WitnessQuorum = new Witnesses(), io?: FaultyIO): Promise<RevocationLog> {
  return RevocationLog.open({
    backend: new LocalBackend(dir, { io }),
    originPrefix: 'test',
    signer: (origin) => ed25519Signer(origin, SEED),
    witnesses: () => witnesses,
    store: store.revocations,
    log: { batchMaxAgeMs: 1 },
  })
}

/** Every record in the log's integrated tree (published or not), read from its entry bundles. */
async function logged(r: RevocationLog): Promise<RevocationRecord[]> {
  const out: RevocationRecord[] = []
  const size = r.log.treeSize
  for (let n = 0; n * TILE_WIDTH < size; n++) {
    const bytes = await r.log.readFile(entryBundlePath(n, Math.min(TILE_WIDTH, size - n * TILE_WIDTH)))
    for (const e of parseEntryBundle(bytes!)) out.push(parseRevocationRecord(e))
  }
  return out
}

/** Makes the store's next `setLogIndex` throw, as a crash or disk error between the two writes. */
function failNextIndexWrite(store: UcanStore): void {
  const original = store.revocations.setLogIndex.bind(store.revocations)
  store.revocations.setLogIndex = () => {
    store.revocations.setLogIndex = original
    throw new Error('index write failed')
  }
}

describe('revocation log: one record per (ucan, scope), whatever fails in between', () => {
  test('the index write fails once: the retry in the same process finds the entry and appends nothing', async () => {
    const store = UcanStore.open(join(dir, 'ucan.db'))
    const r = await open(store)
    failNextIndexWrite(store)
    await expect(r.record(record('bafyA'))).rejects.toThrow('index write failed')
    const again = await r.record(record('bafyA'))
    expect(again).toMatchObject({ index: 0, created: false })
    expect((await logged(r)).map((x) => x.ucan)).toEqual(['bafyA'])
    expect(store.revocations.unlogged()).toEqual([])
    await r.close()
    store.close()
  })

  test('a crash after an unpublished append, before the index write: reopening reconciles from the log, appends nothing', async () => {
    const file = join(dir, 'ucan.db')
    const witnesses = new Witnesses()
    witnesses.up = false // the entry is integrated but not published when the process "dies"
    const a = UcanStore.open(file)
    const r1 = await open(a, witnesses)
    failNextIndexWrite(a)
    await expect(r1.record(record('bafyA'))).rejects.toThrow('index write failed')
    await r1.close()
    a.close()
    const b = UcanStore.open(file)
    const r2 = await open(b, witnesses)
    expect(b.revocations.unlogged()).toEqual([])
    expect((await logged(r2)).map((x) => x.ucan)).toEqual(['bafyA'])
    expect(await r2.record(record('bafyA'))).toMatchObject({ index: 0, created: false })
    expect((await logged(r2)).length).toBe(1)
    await r2.close()
    b.close()
  })

  test('a lost index (a fresh ucan.db) is rebuilt from the log, published or not', async () => {
    const witnesses = new Witnesses()
    const a = UcanStore.open(join(dir, 'a.db'))
    const r1 = await open(a, witnesses)
    await r1.record(record('bafyA'))
    witnesses.up = false
    await r1.record(record('bafyB'))
    await r1.close()
    a.close()
    const b = UcanStore.open(join(dir, 'b.db'))
    const r2 = await open(b, witnesses)
    expect(b.revocations.count()).toBe(2)
    expect(await r2.record(record('bafyB'))).toMatchObject({ index: 1, created: false })
    expect((await logged(r2)).map((x) => x.ucan)).toEqual(['bafyA', 'bafyB'])
    await r2.close()
    b.close()
  })
})

describe('revocation log: a failed write of its files (issue 15 item 2)', () => {
  test('refused StorageFailed; the row stays pending (in force, fail-safe); the next record reopens the log and appends every pending row exactly once', async () => {
    const io = new FaultyIO(dir)
    const store = UcanStore.open(join(dir, 'ucan.db'))
    const r = await open(store, new Witnesses(), io)
    await r.record(record('bafyA'))
    // The commit point's directory fsync fails: the log stops.
    io.failWhen = (s) => s.op === 'fsyncDir' && s.path === 'revocations/.state'
    await expect(r.record(record('bafyB'))).rejects.toMatchObject({ name: 'StorageFailed' })
    expect(io.failed).toBeDefined()
    // In force already (the row is durable before the append), not yet logged.
    expect(await store.revocations.findRevoked(new Map([['bafyB', new Set(['did:key:z6MkScope' as const])]]))).toBe('bafyB')
    expect(store.revocations.unlogged().map((x) => x.ucan)).toEqual(['bafyB'])
    // The fault gone: another revocation reopens the log; every pending row ends up logged once.
    io.failWhen = undefined
    expect((await r.record(record('bafyC'))).index).toBeDefined()
    expect(await r.record(record('bafyB'))).toMatchObject({ created: false })
    expect(store.revocations.unlogged()).toEqual([])
    expect((await logged(r)).map((x) => x.ucan).sort()).toEqual(['bafyA', 'bafyB', 'bafyC'])
    await r.close()
    // After a restart, the same: nothing pending, nothing twice.
    const again = await open(store)
    expect((await logged(again)).map((x) => x.ucan).sort()).toEqual(['bafyA', 'bafyB', 'bafyC'])
    await again.close()
    store.close()
  })
})

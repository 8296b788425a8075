/**
 * The PostgreSQL log backend (src/storage/postgres) on a real PostgreSQL server: its files pass the
 * store conformance suite the file store passes; the backend creates, lists and opens logs as the
 * LogBackend contract says; its archive builds byte-for-byte the CARs the file archive builds; and
 * the log engine runs on it across a close and reopen.
 */
import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { type WitnessQuorum, Log } from '../../src/log/log.js'
import { checkStoredState, readEntries } from '../../src/log/state.js'
import { CarPacker } from '../../src/storage/car-packer.js'
import { migrate } from '../../src/storage/postgres/migrate.js'
import { PgBackend } from '../../src/storage/postgres/pg-backend.js'
import { LOG_MIGRATIONS } from '../../src/storage/postgres/schema.js'
import { ed25519Signer, ed25519Verifier } from '../../src/tlog/index.js'
import { usePostgres } from '../helpers/postgres.js'
import { describeStore } from '../storage/store-conformance.js'
import { tempDir } from '../storage/helpers.js'

const SPACE = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
const OTHER = 'did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH'

const postgres = usePostgres()

/** A pool on a fresh database with the log schema applied. */
async function freshPool(): Promise<pg.Pool> {
  const pool = postgres.pool(await postgres.server().database(), 8)
  await migrate(pool, LOG_MIGRATIONS)
  return pool
}

describeStore('PgFiles', async () => {
  const pool = await freshPool()
  const backend = new PgBackend(pool)
  const { files, archive } = (await backend.open(SPACE, true))!
  return { store: files, cleanup: () => archive.close() }
})

/** A cosigner standing in for the witnesses (the engine's tests' own): quorum always met. */
const witnesses: WitnessQuorum = { cosign: async (note) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
const ORIGIN = `example.com/logs/${SPACE}`
const signer = ed25519Signer(ORIGIN, new Uint8Array(32).fill(3))
const entry = (i: number) => new TextEncoder().encode(`entry ${i}`)

describe('PgBackend', () => {
  it('creates, lists and opens space logs, never creating one on a read', async () => {
    const pool = await freshPool()
    const b = new PgBackend(pool)
    expect(await b.exists(SPACE)).toBe(false)
    expect(await b.open(SPACE, false)).toBeUndefined()
    expect(await b.files(SPACE)).toBeUndefined()
    expect(await b.list()).toEqual([])
    expect(await b.exists('not a did')).toBe(false)
    await expect(b.open('../etc', true)).rejects.toMatchObject({ name: 'InvalidLogIdError' })
    const opened = (await b.open(OTHER, true))!
    const second = (await b.open(SPACE, true))!
    expect(await b.list()).toEqual([SPACE, OTHER].sort())
    await opened.files.write([['checkpoint', new Uint8Array([1, 2])]])
    // The read-only view reads what the writer wrote, and refuses to write.
    const view = (await b.files(OTHER))!
    expect(await view.read('checkpoint')).toEqual(new Uint8Array([1, 2]))
    await expect(view.write([['checkpoint', new Uint8Array([3])]])).rejects.toMatchObject({ name: 'ReadOnlyFiles' })
    // Service logs are not space logs: never listed, never `exists`.
    const rev = await b.serviceLog('revocations')
    await rev.write([['checkpoint', new Uint8Array([9])]])
    expect(await (await b.serviceLog('revocations')).read('checkpoint')).toEqual(new Uint8Array([9]))
    expect(await b.list()).toEqual([SPACE, OTHER].sort())
    await expect(b.serviceLog('did:key:x')).rejects.toMatchObject({ name: 'InvalidLogIdError' })
    await Promise.all([opened.archive.close(), second.archive.close(), b.close()])
  })

  it('writes a batch all or nothing: a refused batch leaves every file as it was', async () => {
    const pool = await freshPool()
    const b = new PgBackend(pool)
    const { files, archive } = (await b.open(SPACE, true))!
    await files.write([['tile/0/000', new Uint8Array([1])]])
    // Bytes that are not a Uint8Array stop the batch before the database is touched.
    await expect(files.write([['tile/0/000', new Uint8Array([2])], ['x', 'nope' as unknown as Uint8Array]])).rejects.toThrow(TypeError)
    expect(await files.read('tile/0/000')).toEqual(new Uint8Array([1]))
    await archive.close()
    // After release, the lease refuses every write, whole batches included.
    await expect(files.write([['tile/0/000', new Uint8Array([3])], ['checkpoint', new Uint8Array([3])]])).rejects.toMatchObject({ name: 'LeaseLost' })
    const view = (await b.files(SPACE))!
    expect(await view.read('tile/0/000')).toEqual(new Uint8Array([1]))
    expect(await view.read('checkpoint')).toBeUndefined()
  })

  it('archives the same CARs, byte for byte, as the file archive', async () => {
    const pool = await freshPool()
    const b = new PgBackend(pool)
    const { archive } = (await b.open(SPACE, true))!
    const { dir, cleanup } = await tempDir()
    const packer = await CarPacker.open(dir)
    try {
      const checkpoints: Map<string, Uint8Array>[] = [
        new Map([
          ['checkpoint', new TextEncoder().encode('one')],
          ['tile/0/000.p/1', new Uint8Array(32).fill(1)],
          ['tile/entries/000.p/1', new Uint8Array([0, 1, 65])],
        ]),
        new Map([
          ['checkpoint', new TextEncoder().encode('two')],
          ['tile/0/000.p/2', new Uint8Array(64).fill(2)],
          ['tile/entries/000.p/2', new Uint8Array([0, 1, 65, 0, 1, 66])],
        ]),
      ]
      // Tree sizes 4 and 12: cars() orders them as numbers (12 sorts before 4 as text).
      const sizes = [4, 12]
      for (const [k, files] of checkpoints.entries()) {
        const ours = await archive.pack(sizes[k]!, files)
        const theirs = await packer.pack(sizes[k]!, files)
        expect(ours.carCid.toString()).toBe(theirs.carCid.toString())
        expect(ours.root.toString()).toBe(theirs.root.toString())
      }
      expect(archive.lastTreeSize).toBe(12)
      await expect(archive.pack(12, checkpoints[0]!)).rejects.toMatchObject({ name: 'StaleTreeSizeError' })
      expect((await archive.cars()).map((c) => c.treeSize)).toEqual([4, 12])
      // A reopened archive continues from the stored index.
      await archive.close()
      const again = (await b.open(SPACE, false))!
      expect(again.archive.lastTreeSize).toBe(12)
      const third = new Map([['checkpoint', new TextEncoder().encode('three')]])
      expect((await again.archive.pack(13, third)).carCid.toString()).toBe((await packer.pack(13, third)).carCid.toString())
      await again.archive.close()
    } finally {
      await packer.close()
      await cleanup()
    }
  })

  it('runs the log engine: appends survive a close and reopen, and the stored state checks', async () => {
    const pool = await freshPool()
    const b = new PgBackend(pool)
    const open = async () => {
      const storage = (await b.open(SPACE, true))!
      return Log.open({ id: SPACE, origin: ORIGIN, signer, verifier: ed25519Verifier(signer.vkey), witnesses, batchMaxAgeMs: 5, ...storage })
    }
    let log = await open()
    const first = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(entry(i))))
    expect(first.map((a) => a.index)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    await log.close()
    log = await open()
    expect(log.treeSize).toBe(300)
    const more = await log.append(entry(300))
    expect(more).toMatchObject({ index: 300, published: true })
    await log.settled()
    await log.close()
    const view = (await b.files(SPACE))!
    const state = await checkStoredState(view, { origin: ORIGIN, verifier: ed25519Verifier(signer.vkey) })
    expect(state.size).toBe(301)
    expect(state.published?.size).toBe(301)
    const entries = await readEntries(view, 301, 250, 51)
    expect(entries.map((e) => new TextDecoder().decode(e))).toEqual(Array.from({ length: 51 }, (_, i) => `entry ${250 + i}`))
    // Every checkpoint was archived.
    const cars = await pool.query('SELECT tree_size::int AS n FROM log_cars WHERE log_id = $1 ORDER BY tree_size', [SPACE])
    expect(cars.rows.at(-1)!.n).toBe(301)
  })
})

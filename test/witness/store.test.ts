/** SqliteWitnessStore guarantees (the shared conformance suite, store-conformance.ts, and SQLite's own), persistence across restarts, and openWitness's key file handling. */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MalformedKeyError, parseVerifierKey } from '../../src/tlog/note.js'
import { openWitness, SqliteWitnessStore } from '../../witness/index.js'
import { CP1, CP3, CP5, LOG, note, PROOF_1_3, PROOF_3_5, WITNESS } from '../vectors/litewitness.js'
import { expectResponse, request, startWitness } from './helpers.js'
import { witnessStoreConformance } from './store-conformance.js'

const EMPTY = Buffer.from('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'base64')
const root = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-witness-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

witnessStoreConformance('SqliteWitnessStore', async () => {
  const store = new SqliteWitnessStore(':memory:')
  return { store, close: () => store.close() }
})

describe('SqliteWitnessStore', () => {
  it('uses WAL with synchronous=FULL, and its trigger refuses a rollback even from other tools', () => {
    const file = join(dir, 'w.db')
    const s = new SqliteWitnessStore(file)
    s.addLog('o')
    s.compareAndSwap('o', 0, 5, root(CP5.text.split('\n')[2]!), 'cp5')
    const raw = new Database(file)
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(() => raw.prepare("UPDATE log SET tree_size = 1 WHERE origin = 'o'").run()).toThrow(/never decrease/)
    raw.close()
    s.close()
    const again = new SqliteWitnessStore(file)
    expect(again.getLog('o')?.treeSize).toBe(5)
    again.close()
  })
})

describe('openWitness', () => {
  it('creates a 0600 32-byte key on first use and keeps the same identity and state across restarts', async () => {
    const keyFile = join(dir, 'keys', 'witness.key')
    const dbFile = join(dir, 'state', 'witness.db')
    const first = await openWitness({ name: WITNESS.name, keyFile, dbFile, now: () => 1 })
    const st = await stat(keyFile)
    expect(st.mode & 0o777).toBe(0o600)
    expect((await readFile(keyFile)).length).toBe(32)
    const vkey = first.witness.vkey
    expect(parseVerifierKey(vkey)).toMatchObject({ name: WITNESS.name, type: 0x04 })
    first.store.addLog(LOG.origin)
    first.store.addKey(LOG.origin, LOG.vkey)

    const w1 = await startWitness(first.store)
    await expectResponse(await w1.post(request(0, [], note(CP1))), 200, 'text/plain; charset=utf-8')
    await expectResponse(await w1.post(request(1, PROOF_1_3, note(CP3))), 200, 'text/plain; charset=utf-8')
    await w1.close()
    first.close()

    const second = await openWitness({ name: WITNESS.name, keyFile, dbFile })
    expect(second.witness.vkey).toBe(vkey)
    expect(second.store.getLog(LOG.origin)).toMatchObject({ treeSize: 3, checkpoint: note(CP3), keys: [LOG.vkey] })
    const w2 = await startWitness(second.store)
    await expectResponse(await w2.post(request(0, [], note(CP5))), 409, 'text/x.tlog.size', '3\n')
    await expectResponse(await w2.post(request(3, PROOF_3_5, note(CP5))), 200, 'text/plain; charset=utf-8', WITNESS.cp5CosigLine)
    await w2.close()
    second.close()
  })

  it('uses an existing 0600 key file', async () => {
    const keyFile = join(dir, 'witness.key')
    await writeFile(keyFile, Buffer.from(WITNESS.seedHex, 'hex'), { mode: 0o600 })
    const w = await openWitness({ name: WITNESS.name, keyFile, dbFile: ':memory:' })
    expect(w.witness.vkey).toBe(WITNESS.vkey)
    w.close()
  })

  it('refuses a key file readable by group or others', async () => {
    const keyFile = join(dir, 'witness.key')
    await writeFile(keyFile, Buffer.from(WITNESS.seedHex, 'hex'), { mode: 0o600 })
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      await chmod(keyFile, mode)
      await expect(openWitness({ name: WITNESS.name, keyFile, dbFile: ':memory:' })).rejects.toThrow(/accessible by group or others.*chmod 600/)
    }
  })

  it('refuses a key file of the wrong length, and a bad name', async () => {
    const keyFile = join(dir, 'witness.key')
    await writeFile(keyFile, Buffer.alloc(31), { mode: 0o600 })
    await expect(openWitness({ name: WITNESS.name, keyFile, dbFile: ':memory:' })).rejects.toThrow(/exactly 32 bytes/)
    await writeFile(keyFile, Buffer.alloc(32), { mode: 0o600 })
    await expect(openWitness({ name: 'bad name', keyFile, dbFile: ':memory:' })).rejects.toThrow(MalformedKeyError)
  })
})

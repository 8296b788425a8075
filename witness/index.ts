/**
 * The bundled witness's public entry point (c2sp.org/tlog-witness v1, litewitness-compatible).
 * The server imports only this module; the witness imports only src/tlog and libraries.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { SqliteWitnessStore, type WitnessStore } from './store.js'
import { Witness } from './witness.js'
import { ed25519Cosigner } from '../src/tlog/cosignature.js'

export { Witness, MAX_ADD_CHECKPOINT_BODY, MAX_PROOF_LINES, TLOG_SIZE_CONTENT_TYPE } from './witness.js'
export type { WitnessOptions, WitnessResponse } from './witness.js'
export { SqliteWitnessStore } from './store.js'
export { PgWitnessStore, WITNESS_MIGRATIONS } from './pg-store.js'
export type { WitnessLog, WitnessStore, Awaitable } from './store.js'
export { witnessApp, REQUESTS_METRIC, COSIGNATURES_METRIC } from './http.js'
export { parseLogList, formatLogList, pullLogs, MalformedLogListError, LOG_LIST_HEADER, MAX_LOG_LIST_SIZE } from './loglist.js'
export type { LogList, LogListEntry, PullResult } from './loglist.js'
export type { WitnessAppOptions } from './http.js'

/** Size of the witness key file: one raw 32-byte Ed25519 seed (RFC 8032). */
export const WITNESS_KEY_SIZE = 32

/**
 * Opens the witness's key and state, creating them on first use.
 * - `keyFile`: a raw 32-byte Ed25519 seed. Created with mode 0600 (exclusively, so two processes
 *   never write different keys) from crypto.randomBytes if missing; if present it must be a
 *   regular file of exactly 32 bytes that neither group nor others can access.
 * - `dbFile`: the SQLite state (see SqliteWitnessStore). Parent directories are created (0700).
 * - `store`: instead of `dbFile`, a store the caller owns (e.g. PgWitnessStore); `close()` leaves it open.
 * - `name`: the witness key name; `now`: clock in Unix seconds (default: system clock).
 * @returns the witness, its store and `close()` (closes the SQLite database it opened).
 * @throws Error with a clear message for an unsafe or malformed key file; MalformedKeyError for a
 *   bad name.
 */
export async function openWitness<S extends WitnessStore = SqliteWitnessStore>(
  opts: { name: string; keyFile: string; now?: () => number } & ({ dbFile: string; store?: undefined } | { store: S; dbFile?: undefined }),
): Promise<{ witness: Witness; store: S; close(): void }> {
  const seed = await loadOrCreateKey(opts.keyFile)
  const file = opts.store === undefined ? opts.dbFile! : undefined
  if (file !== undefined && file !== ':memory:') await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const owned = file !== undefined ? new SqliteWitnessStore(file) : undefined
  const store = (owned ?? opts.store) as S
  try {
    const witness = new Witness({ name: opts.name, seed, store, ...(opts.now ? { now: opts.now } : {}) })
    return { witness, store, close: () => owned?.close() }
  } catch (e) {
    owned?.close()
    throw e
  }
}

/**
 * The vkey (type 0x04, c2sp.org/tlog-cosignature) of the witness whose key is in `keyFile`, under
 * `name`, without creating or changing anything.
 * @throws Error if the key file is missing, unsafe (group/other access) or not 32 bytes;
 *   MalformedKeyError for a bad name.
 */
export async function witnessVkey(opts: { name: string; keyFile: string }): Promise<string> {
  const seed = await loadOrCreateKey(opts.keyFile, false)
  return ed25519Cosigner(opts.name, seed).vkey
}

async function loadOrCreateKey(file: string, create = true): Promise<Uint8Array> {
  let created
  if (create) {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    try {
      created = await open(file, 'wx', 0o600)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
  }
  if (created !== undefined) {
    const seed = randomBytes(WITNESS_KEY_SIZE)
    try {
      await created.writeFile(seed)
      await created.sync()
    } catch (e) {
      await created.close()
      await unlink(file).catch(() => {})
      throw e
    }
    await created.close()
    await syncDir(dirname(file))
    return new Uint8Array(seed)
  }
  const fh = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT' ? new Error(`witness key file ${file} does not exist (ucanlog witness serve creates it on first start)`) : e
  })
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new Error(`witness key file ${file} is not a regular file`)
    if ((st.mode & 0o077) !== 0) {
      throw new Error(
        `witness key file ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ` +
          `run "chmod 600 ${file}" if the key has not leaked`,
      )
    }
    const data = await fh.readFile()
    if (data.length !== WITNESS_KEY_SIZE) {
      throw new Error(`witness key file ${file} must hold exactly ${WITNESS_KEY_SIZE} bytes (a raw Ed25519 seed), found ${data.length}`)
    }
    return new Uint8Array(data)
  } finally {
    await fh.close()
  }
}

/** Makes a newly created directory entry durable (best effort where directories cannot be synced). */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r').catch(() => undefined)
  if (d === undefined) return
  await d.sync().catch(() => {})
  await d.close()
}

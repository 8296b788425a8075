/**
 * The embedded default storage of every log: `<data>/logs/<spaceDID>/` holds the log in the
 * c2sp.org/tlog-tiles layout (a directory any static web server could serve), and
 * `<data>/cars/<spaceDID>/` one CAR per published checkpoint — the local stand-in for the
 * customer's Storacha space. Implements the log engine's `LogBackend` contract (src/log/storage.ts):
 * files are durable once a write resolves; `exists` and `list` never create anything.
 */
import { mkdir, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CarPacker } from './car-packer.js'
import type { DurableIO } from './durable.js'
import { FileStore } from './file-store.js'

/** A log id that is not a did:key DID (it becomes a directory name, so it is checked strictly). */
export class InvalidLogIdError extends Error {
  override name = 'InvalidLogIdError'
}

const LOG_ID = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/

/** Throws InvalidLogIdError unless `id` is a did:key (base58btc) DID. */
export function checkLogId(id: string): string {
  if (!LOG_ID.test(id)) throw new InvalidLogIdError(`not a did:key log id: ${JSON.stringify(id.slice(0, 80))}`)
  return id
}

/** The embedded default `LogBackend` (see the module comment); log ids must be did:key DIDs. */
export class LocalBackend {
  readonly logsDir: string
  readonly carsDir: string

  /**
   * @param dataDir the service's data directory (`--data`, default `./data`).
   * @param o.io how every file write, fsync, rename and removal of the logs and CARs runs
   *   (durable.ts DurableIO); default the direct one. Tests inject faults through it (issue 15 item 2).
   * @param o.cacheBytes page cache of each log's CAR index connection, bytes (sqlite-cache.ts; default 2 MiB).
   */
  constructor(
    readonly dataDir: string,
    private readonly o: { io?: DurableIO; cacheBytes?: number } = {},
  ) {
    this.logsDir = join(dataDir, 'logs')
    this.carsDir = join(dataDir, 'cars')
  }

  async exists(id: string): Promise<boolean> {
    if (!LOG_ID.test(id)) return false
    try {
      return (await stat(join(this.logsDir, id))).isDirectory()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  async open(id: string, create: boolean): Promise<{ files: FileStore; archive: CarPacker } | undefined> {
    checkLogId(id)
    if (!create && !(await this.exists(id))) return undefined
    await mkdir(this.logsDir, { recursive: true })
    const files = await FileStore.create(join(this.logsDir, id), this.o)
    const archive = await CarPacker.open(join(this.carsDir, id), this.o)
    return { files, archive }
  }

  /** The files of an existing log, for reading (opens no descriptor until a read); undefined when it does not exist. */
  async files(id: string): Promise<FileStore | undefined> {
    if (!(await this.exists(id))) return undefined
    return FileStore.create(join(this.logsDir, id), this.o)
  }

  /**
   * The files of a log the service keeps for itself (`revocations` → `<data>/revocations/`),
   * created when missing; no CARs.
   * @throws InvalidLogIdError unless `name` is a lowercase word.
   */
  serviceLog(name: string): Promise<FileStore> {
    if (!/^[a-z]+$/.test(name)) throw new InvalidLogIdError(`not a service log name: ${JSON.stringify(name.slice(0, 80))}`)
    return FileStore.create(join(this.dataDir, name), this.o)
  }

  /** The absolute path of a log's file (`<data>/logs/<id>/<path>`), for operators' messages. */
  location(id: string, path: string): string {
    return join(this.logsDir, id, path)
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.logsDir)).filter((n) => LOG_ID.test(n)).sort()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
  }
}

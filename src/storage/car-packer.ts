// Packs each published checkpoint's new files into one CAR (CARv1, https://ipld.io/specs/transport/car/carv1/)
// whose root is a UnixFS directory laid out as c2sp.org/tlog-tiles for the whole log.

import { CarWriter } from '@ipld/car/writer'
import Database from 'better-sqlite3'
import { realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { DIRECT_IO, type DurableIO, fsyncDir, mkdirDurable, renameDurable, tempPathFor, unlinkFile, writeTemp } from './durable.js'
import { checkRelativePath, InvalidPathError } from './file-store.js'
import { boundSqliteCache, sqliteCacheBytes } from './sqlite-cache.js'
import { type Block, type EncodedDirectory, type EncodedFile, SHARD_THRESHOLD, type ShardCache, encodeDirectory, encodeFile, sharedShardCache } from './unixfs.js'

/** Multicodec code of a CAR (0x0202): the codec of a PackResult's carCid. */
export const CAR_CODE = 0x0202
/** Digits of the zero-padded tree size in a CAR file name (enough for any safe integer). */
export const TREE_SIZE_DIGITS = 16
/** Name of the packer's SQLite index inside its directory. */
export const INDEX_FILE = 'index.sqlite'

/** One packed checkpoint. */
export interface PackResult {
  /** Tree size (entries) of the checkpoint this CAR publishes. */
  treeSize: number
  /** CID of the new root UnixFS directory (dag-pb): the whole log in the tlog-tiles layout. */
  root: CID
  /** CIDv1 of the CAR file: codec CAR 0x0202, multihash sha2-256 of the CAR bytes. */
  carCid: CID
  /** Absolute path of the CAR file: `<dir>/<treeSize, 16 digits>-<carCid>.car`. */
  file: string
  /** Length of the CAR file in bytes. */
  bytes: number
  /** Number of blocks in the CAR. */
  blocks: number
}

/** pack was called with a tree size not greater than the newest packed one. Nothing was written. */
export class StaleTreeSizeError extends Error {
  constructor(readonly treeSize: number, readonly lastTreeSize: number) {
    super(`tree size ${treeSize} is not greater than the last packed tree size ${lastTreeSize}`)
    this.name = 'StaleTreeSizeError'
  }
}

/** The packer was closed, by close() or by a failed pack; reopen it with CarPacker.open. */
export class PackerClosedError extends Error {
  constructor() {
    super('CAR packer is closed')
    this.name = 'PackerClosedError'
  }
}

/**
 * Points in pack's write phase where CarPackerOptions.faultHook runs; a hook that throws there
 * behaves like a crash at that point (the packer closes without cleaning up).
 *  - 'intent-recorded': the pending CAR is recorded in the index, nothing written yet.
 *  - 'car-written': the CAR is written and fsynced under its temporary name.
 *  - 'car-renamed': the CAR is renamed into place (and the directory fsynced), the index not yet
 *    committed — the crash window.
 */
export type PackFaultPoint = 'intent-recorded' | 'car-written' | 'car-renamed'

/** Options of CarPacker.open. */
export interface CarPackerOptions {
  /** Test hook for fault injection, see PackFaultPoint. Default none. */
  faultHook?: (point: PackFaultPoint) => void | Promise<void>
  /** How each file write, fsync, rename and removal runs (durable.ts {@link DurableIO}); default {@link DIRECT_IO}, tests inject faults through it. */
  io?: DurableIO
  /** Page cache of the index's connection, bytes (sqlite-cache.ts; default 2 MiB). */
  cacheBytes?: number
}

/** `<treeSize zero-padded to TREE_SIZE_DIGITS>-<carCid>.car`. */
export function carFileName(treeSize: number, carCid: CID): string {
  return `${String(treeSize).padStart(TREE_SIZE_DIGITS, '0')}-${carCid}.car`
}

/**
 * Encodes a CARv1 with the single root `root` and `blocks` in the given order, using @ipld/car's
 * CarWriter. The bytes are assembled in memory.
 */
export async function encodeCar(root: CID, blocks: Iterable<Block>): Promise<Uint8Array> {
  // @ipld/car carries its own copy of multiformats; its CID type differs only nominally, and at
  // run time it reads `bytes` and recognises our CIDs through CID.asCID.
  type CarCID = Parameters<CarWriter['put']>[0]['cid']
  const { writer, out } = CarWriter.create([root as unknown as CarCID])
  const chunks: Uint8Array[] = []
  const drained = (async () => {
    for await (const chunk of out) chunks.push(chunk)
  })()
  for (const b of blocks) await writer.put({ cid: b.cid as unknown as CarCID, bytes: b.bytes })
  await writer.close()
  await drained
  const car = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let off = 0
  for (const c of chunks) {
    car.set(c, off)
    off += c.length
  }
  return car
}

type Change = { kind: 'file'; bytes: Uint8Array; file?: EncodedFile } | { kind: 'dir' }

interface EntryRow {
  name: string
  is_dir: number
  cid: Uint8Array
  tsize: number
}

interface PackRow {
  tree_size: number
  root: string
  car_cid: string
  file: string
  bytes: number
  blocks: number
}

const SCHEMA_VERSION = 1

const SCHEMA = `
  -- Every entry of every directory of the newest root: dir is '' for the root, else a store path.
  CREATE TABLE entries (
    dir    TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    is_dir INTEGER NOT NULL,
    cid    BLOB    NOT NULL,
    tsize  INTEGER NOT NULL,
    PRIMARY KEY (dir, name)
  ) WITHOUT ROWID;
  CREATE TABLE packs (
    tree_size INTEGER PRIMARY KEY,
    root      TEXT    NOT NULL,
    car_cid   TEXT    NOT NULL,
    file      TEXT    NOT NULL,
    bytes     INTEGER NOT NULL,
    blocks    INTEGER NOT NULL
  );
  -- At most one CAR being written: removed on open if its pack was never committed.
  CREATE TABLE pending (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    tmp  TEXT NOT NULL,
    file TEXT NOT NULL
  );
`

/**
 * Opens the index in the packer directory `real` (a real path), creating it if missing, and removes
 * the files of a pack that a crash (or a pack failed for want of space) left uncommitted; see
 * {@link CarPacker}.
 */
async function openIndex(real: string, io: DurableIO, cacheBytes: number | undefined): Promise<Database.Database> {
  const db = new Database(join(real, INDEX_FILE), { timeout: 0 })
  try {
    boundSqliteCache(db, cacheBytes)
    // EXCLUSIVE before WAL: no shared-memory index, and the write lock is held until close.
    db.pragma('locking_mode = EXCLUSIVE')
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number
      if (version === 0) {
        db.exec(SCHEMA)
        db.pragma(`user_version = ${SCHEMA_VERSION}`)
      } else if (version !== SCHEMA_VERSION) {
        throw new Error(`${join(real, INDEX_FILE)}: unknown schema version ${version}`)
      }
    }).immediate()
    const pending = db.prepare('SELECT tmp, file FROM pending').get() as { tmp: string; file: string } | undefined
    if (pending !== undefined) {
      const committed = db.prepare('SELECT 1 FROM packs WHERE file = ?').get(pending.file) !== undefined
      for (const name of committed ? [pending.tmp] : [pending.tmp, pending.file]) await unlinkFile(join(real, name), io)
      await fsyncDir(real, io)
      db.prepare('DELETE FROM pending').run()
    }
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

/**
 * Packs a log's checkpoints into CARs, one per checkpoint, for upload to the log's space.
 *
 * Each CAR (CARv1, single root) holds exactly the blocks of the files the checkpoint added or
 * changed (UnixFS, see encodeFile) and the new UnixFS directory node of every directory on their
 * paths up to the root (see encodeDirectory; for a HAMT-sharded directory of more than
 * SHARD_THRESHOLD entries, only the shard nodes on the changed names' paths, so a checkpoint's
 * overhead stays bounded however large the log grows); its root is that new root directory, which lays out
 * the whole log per c2sp.org/tlog-tiles (`checkpoint`, `tile/<L>/<N>[.p/<W>]`,
 * `tile/entries/<N>[.p/<W>]`). Unchanged files and directories are linked by CID only, their blocks
 * living in earlier CARs: the union of all CARs is the whole log, and the newest root names it.
 *
 * State lives in one directory (for a log, `data/cars/<spaceDID>/`): the CAR files, named
 * `<treeSize, 16 digits>-<carCid>.car`, and INDEX_FILE, a SQLite database (WAL, synchronous=FULL,
 * exclusive locking) holding every directory entry of the newest root and the list of packs. A pack
 * reads and rewrites only the directories on changed paths, so it costs O(changed paths ×
 * directory fan-out) time and bytes, never O(log size).
 *
 * Guarantees:
 * - Durable: once pack resolves, its CAR file and its index update survive a crash.
 * - Crash-safe, by recording intent before renaming: pack first commits a `pending` row naming the
 *   CAR's temporary and final file names, then writes, fsyncs and renames the CAR, then commits the
 *   pack and the directory entries and deletes `pending` in one transaction. open deletes the files
 *   named by a leftover `pending` row, so a crash anywhere in between leaves the state of the last
 *   committed pack (lastTreeSize unchanged) and no stray files; the caller packs that checkpoint again.
 * - Exclusive: one CarPacker per directory, across processes; a second open fails with SQLite's
 *   "database is locked" error while the first is open.
 * - Concurrency: calls to pack are serialized in call order.
 * - Errors: StaleTreeSizeError (treeSize ≤ lastTreeSize), InvalidPathError (a refused path, or one
 *   that needs a file where the log has a directory or the other way round), RangeError (treeSize
 *   not a positive safe integer, or no files) leave the packer unchanged and usable. A failure
 *   while writing (a write or fsync error, ENOSPC, SQLITE_FULL or IOERR) rejects that pack and
 *   closes the index; the next pack reopens it first, with the same recovery as open (the failed
 *   pack's CAR is deleted, renamed or not), so archiving resumes once the fault clears. A throw
 *   from `faultHook` is a crash instead: the packer stays closed (PackerClosedError) until reopened.
 */
export class CarPacker {
  /** Real absolute path of the packer's directory. */
  readonly dir: string
  private db: Database.Database | undefined
  private readonly faultHook: CarPackerOptions['faultHook']
  private readonly io: DurableIO
  private readonly cacheBytes: number | undefined
  private last: PackResult | undefined
  private tail: Promise<void> = Promise.resolve()
  /** A pack failed for want of space (not closed by close()): the next pack reopens the index first. */
  private reopenable = false
  /** HAMT shard nodes of recent packs, shared by every packer of the process (memo only: every pack stays correct without it). */
  private readonly shards: ShardCache = sharedShardCache()

  private constructor(dir: string, db: Database.Database, options: CarPackerOptions) {
    this.dir = dir
    this.db = db
    this.faultHook = options.faultHook
    this.io = options.io ?? DIRECT_IO
    this.cacheBytes = options.cacheBytes
    const row = db.prepare('SELECT * FROM packs ORDER BY tree_size DESC LIMIT 1').get() as PackRow | undefined
    this.last = row === undefined ? undefined : this.toResult(row)
  }

  /**
   * Opens the packer whose state is in `dir`, creating the directory (mode 0755) and the index if
   * missing, and removing the files of a pack that a crash left uncommitted.
   */
  static async open(dir: string, options: CarPackerOptions = {}): Promise<CarPacker> {
    const io = options.io ?? DIRECT_IO
    await mkdirDurable(dir, io)
    const real = await realpath(dir)
    return new CarPacker(real, await openIndex(real, io, options.cacheBytes), options)
  }

  /**
   * Starts a packer in `dir` from a restored log (see `ucanlog restore`): writes `car` (a CAR whose
   * root is `root`, holding the restored log's `blocks` blocks) as the pack of `treeSize`, and records
   * `entries` — every entry of every directory under `root`, as walkDirectory yields them — as the
   * directory index, so the next pack builds on `root`. Durable once resolved.
   * @throws Error when `dir` already holds a pack (nothing is changed then); RangeError for a
   *   treeSize that is not a positive safe integer.
   */
  static async restore(
    dir: string,
    r: { treeSize: number; root: CID; car: Uint8Array; blocks: number; entries: Iterable<{ dir: string; name: string; isDir: boolean; cid: CID; tsize: number }> },
  ): Promise<PackResult> {
    if (!Number.isSafeInteger(r.treeSize) || r.treeSize < 1) throw new RangeError(`tree size ${r.treeSize} is not a positive safe integer`)
    const packer = await CarPacker.open(dir)
    try {
      const db = packer.open_()
      if (packer.last !== undefined) throw new Error(`${packer.dir} already holds packs; restore only into an empty directory`)
      const carCid = CID.createV1(CAR_CODE, await sha256.digest(r.car))
      const name = carFileName(r.treeSize, carCid)
      const file = join(packer.dir, name)
      const tmp = tempPathFor(file)
      await writeTemp(tmp, r.car)
      await renameDurable(tmp, file)
      const upsert = db.prepare('INSERT OR REPLACE INTO entries (dir, name, is_dir, cid, tsize) VALUES (?, ?, ?, ?, ?)')
      db.transaction(() => {
        for (const e of r.entries) upsert.run(e.dir, e.name, e.isDir ? 1 : 0, e.cid.bytes, e.tsize)
        db.prepare('INSERT INTO packs (tree_size, root, car_cid, file, bytes, blocks) VALUES (?, ?, ?, ?, ?, ?)').run(r.treeSize, r.root.toString(), carCid.toString(), name, r.car.length, r.blocks)
      })()
      return { treeSize: r.treeSize, root: r.root, carCid, file, bytes: r.car.length, blocks: r.blocks }
    } finally {
      await packer.close()
    }
  }

  /** Tree size of the newest CAR, 0 if there is none. */
  get lastTreeSize(): number {
    return this.last?.treeSize ?? 0
  }

  /** Root directory of the newest CAR, undefined if there is none. */
  get lastRoot(): CID | undefined {
    return this.last?.root
  }

  /**
   * Packs the checkpoint of size `treeSize` (entries): `files` maps each store path the checkpoint
   * added or changed (`checkpoint`, `tile/0/x001/067.p/5`, `tile/entries/000`, …) to its bytes. Writes
   * the CAR durably, updates the index, and resolves its PackResult. `files` and its bytes must
   * not change until the promise settles. See the class comment for errors.
   */
  pack(treeSize: number, files: ReadonlyMap<string, Uint8Array>): Promise<PackResult> {
    const run = this.tail.then(() => this.packNow(treeSize, new Map(files)))
    this.tail = run.then(
      () => {},
      () => {},
    )
    return run
  }

  /** Every pack in the index, by increasing tree size. */
  list(): PackResult[] {
    const rows = this.open_().prepare('SELECT * FROM packs ORDER BY tree_size').all() as PackRow[]
    return rows.map((r) => this.toResult(r))
  }

  /** Waits for pending packs to settle, then closes the index. Idempotent. */
  async close(): Promise<void> {
    await this.tail
    this.reopenable = false
    this.db?.close()
    this.db = undefined
  }

  private async packNow(treeSize: number, files: Map<string, Uint8Array>): Promise<PackResult> {
    if (this.db === undefined && this.reopenable) {
      this.db = await openIndex(this.dir, this.io, this.cacheBytes)
      this.reopenable = false
    }
    const db = this.open_()
    if (!Number.isSafeInteger(treeSize) || treeSize < 1) throw new RangeError(`tree size ${treeSize} is not a positive safe integer`)
    if (treeSize <= this.lastTreeSize) throw new StaleTreeSizeError(treeSize, this.lastTreeSize)
    const selectDir = db.prepare('SELECT name, is_dir, cid, tsize FROM entries WHERE dir = ?')
    const plan = await planPack(
      files,
      (dir) => (selectDir.all(dir) as EntryRow[]).map((r) => ({ name: r.name, isDir: r.is_dir === 1, cid: CID.decode(r.cid), tsize: r.tsize })),
      this.shards,
    )
    const { root, car, carCid } = plan
    const name = carFileName(treeSize, carCid)
    const file = join(this.dir, name)
    const tmp = tempPathFor(file)
    const result: PackResult = { treeSize, root, carCid, file, bytes: car.length, blocks: plan.blocks }

    // A throw from the test hook is a crash; anything else a failed write, recovered at the next pack.
    let crashed = false
    const hook = async (point: PackFaultPoint) => {
      try {
        await this.faultHook?.(point)
      } catch (err) {
        crashed = true
        throw err
      }
    }
    try {
      db.prepare('INSERT OR REPLACE INTO pending (id, tmp, file) VALUES (1, ?, ?)').run(tmpName(tmp), name)
      await hook('intent-recorded')
      await writeTemp(tmp, car, this.io)
      await hook('car-written')
      await renameDurable(tmp, file, this.io)
      await hook('car-renamed')
      const upsert = db.prepare('INSERT OR REPLACE INTO entries (dir, name, is_dir, cid, tsize) VALUES (?, ?, ?, ?, ?)')
      db.transaction(() => {
        for (const e of plan.entries) upsert.run(e.dir, e.name, e.isDir ? 1 : 0, e.cid.bytes, e.tsize)
        db.prepare('INSERT INTO packs (tree_size, root, car_cid, file, bytes, blocks) VALUES (?, ?, ?, ?, ?, ?)').run(
          treeSize,
          root.toString(),
          carCid.toString(),
          name,
          result.bytes,
          result.blocks,
        )
        db.prepare('DELETE FROM pending').run()
      })()
    } catch (err) {
      // Past this point the disk may hold a half-done pack: stop, like a crash, and let open recover.
      // A failed write or fsync (a full disk, EIO) is no crash: the next pack reopens, recovering
      // the same way (the CAR of the failed pack, renamed or not, is deleted: a rename whose
      // directory fsync failed is never trusted, issue 15 item 2), so archiving resumes.
      this.db = undefined
      db.close()
      this.reopenable = !crashed
      throw err
    }
    this.last = result
    return result
  }

  /** The page cache bound of the index's connection, bytes (read back from SQLite). @throws PackerClosedError when closed. */
  get sqliteCacheBytes(): number {
    return sqliteCacheBytes(this.open_())
  }

  private open_(): Database.Database {
    if (this.db === undefined) throw new PackerClosedError()
    return this.db
  }

  private toResult(row: PackRow): PackResult {
    return {
      treeSize: row.tree_size,
      root: CID.parse(row.root),
      carCid: CID.parse(row.car_cid),
      file: join(this.dir, row.file),
      bytes: row.bytes,
      blocks: row.blocks,
    }
  }
}

/** One entry of a directory of the archived tree (dir is '' for the root, else a store path). */
export interface ArchivedEntry {
  dir: string
  name: string
  isDir: boolean
  cid: CID
  tsize: number
}

/** A checkpoint's CAR, built by {@link planPack}, and the directory entries it changes. */
export interface PackPlan {
  /** CID of the new root UnixFS directory. */
  root: CID
  /** The CAR bytes (CARv1, single root `root`). */
  car: Uint8Array
  /** CIDv1 of the CAR: codec CAR 0x0202, sha2-256 of `car`. */
  carCid: CID
  /** Number of blocks in the CAR. */
  blocks: number
  /** Every directory entry the pack adds or replaces (the new index rows), once `car` is stored. */
  entries: ArchivedEntry[]
}

/**
 * Builds the CAR of one checkpoint (see {@link CarPacker}: the blocks of the files it added or
 * changed and the new directory nodes on their paths, in depth-first pre-order from the new root)
 * from `files` and the current entries of the directories on changed paths, which `readDir(dir)`
 * returns (dir '' = the root; [] for a directory not yet in the tree). Stores nothing: the caller
 * stores the CAR and then the returned entries, so every archive backend (the SQLite index here,
 * PostgreSQL tables elsewhere) shares one CAR encoding.
 * @throws InvalidPathError (a refused path, or one needing a file where the tree has a directory or
 *   the other way round), RangeError (no files).
 */
export async function planPack(
  files: ReadonlyMap<string, Uint8Array>,
  readDir: (dir: string) => Iterable<Omit<ArchivedEntry, 'dir'>> | Promise<Iterable<Omit<ArchivedEntry, 'dir'>>>,
  shards: ShardCache = sharedShardCache(),
): Promise<PackPlan> {
  if (files.size === 0) throw new RangeError('a pack needs at least one file')

  // dir ('' = root) → name → change, for every directory on a changed path.
  const tree = new Map<string, Map<string, Change>>([['', new Map()]])
  for (const [path, bytes] of files) {
    const segments = checkRelativePath(path).split('/')
    for (let i = 0; i < segments.length; i++) {
      const dir = segments.slice(0, i).join('/')
      const isFile = i === segments.length - 1
      let changes = tree.get(dir)
      if (changes === undefined) tree.set(dir, (changes = new Map()))
      const prior = changes.get(segments[i]!)
      if (prior !== undefined && (prior.kind === 'file' || isFile)) {
        throw new InvalidPathError(path, 'needs a file and a directory at the same path')
      }
      changes.set(segments[i]!, isFile ? { kind: 'file', bytes } : { kind: 'dir' })
    }
  }
  for (const changes of tree.values()) {
    for (const change of changes.values()) if (change.kind === 'file') change.file = await encodeFile(change.bytes)
  }

  // New directory nodes, deepest first, each from its current entries plus its changes.
  const dirs = new Map<string, EncodedDirectory>()
  // Sharded directories that were already sharded: only their nodes on changed names' paths are new.
  const wasSharded = new Set<string>()
  for (const dir of [...tree.keys()].sort((a, b) => depth(b) - depth(a))) {
    const entries = new Map<string, { name: string; cid: CID; tsize: number; isDir: boolean }>()
    for (const row of await readDir(dir)) entries.set(row.name, { name: row.name, cid: row.cid, tsize: row.tsize, isDir: row.isDir })
    if (entries.size > SHARD_THRESHOLD) wasSharded.add(dir)
    for (const [name, change] of tree.get(dir)!) {
      const path = child(dir, name)
      const isDir = change.kind === 'dir'
      if (entries.get(name)?.isDir === !isDir) {
        throw new InvalidPathError(path, `is a ${isDir ? 'file' : 'directory'} in the log`)
      }
      const node = change.kind === 'dir' ? dirs.get(path)! : change.file!
      entries.set(name, { name, cid: node.cid, tsize: node.tsize, isDir })
    }
    dirs.set(dir, await encodeDirectory(entries.values(), new Set(tree.get(dir)!.keys()), shards))
  }
  const root = dirs.get('')!.cid

  // Blocks in depth-first pre-order from the root, each once.
  const blocks = new Map<string, Block>()
  const add = (b: Block) => {
    const key = b.cid.toString()
    if (!blocks.has(key)) blocks.set(key, b)
  }
  const emit = (dir: string): void => {
    // A sharded directory contributes only its new shard nodes; unchanged ones are in earlier CARs.
    const d = dirs.get(dir)!
    for (const b of d.blocks) if (!wasSharded.has(dir) || d.dirty!.has(b.cid.toString())) add(b)
    const changes = tree.get(dir)!
    for (const name of [...changes.keys()].sort(byUtf8)) {
      const change = changes.get(name)!
      if (change.kind === 'dir') emit(child(dir, name))
      else change.file!.blocks.forEach(add)
    }
  }
  emit('')

  const car = await encodeCar(root, blocks.values())
  const carCid = CID.createV1(CAR_CODE, await sha256.digest(car))
  const entries: ArchivedEntry[] = []
  for (const [dir, changes] of tree) {
    for (const [name, change] of changes) {
      const node = change.kind === 'dir' ? dirs.get(child(dir, name))! : change.file!
      entries.push({ dir, name, isDir: change.kind === 'dir', cid: node.cid, tsize: node.tsize })
    }
  }
  return { root, car, carCid, blocks: blocks.size, entries }
}

function depth(dir: string): number {
  return dir === '' ? 0 : dir.split('/').length
}

function child(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`
}

function tmpName(tmp: string): string {
  return tmp.slice(tmp.lastIndexOf('/') + 1)
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

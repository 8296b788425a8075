// A directory of files addressed by relative POSIX paths: the embedded log's local tile store
// (c2sp.org/tlog-tiles layout: `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`).

import { chmod, lstat, mkdir, readFile, realpath, stat } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'
import { DIR_MODE, DIRECT_IO, type DurableIO, fsyncDir, hasCode, mkdirDurable, TEMP_PREFIX, unlinkFile, writeFileAtomic } from './durable.js'

/** Longest path checkRelativePath accepts, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024
/** Longest path segment checkRelativePath accepts, in UTF-8 bytes (the usual NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255

/**
 * A path was refused by checkRelativePath, or resolved (through a symbolic link) outside the
 * store's root. Nothing was read, created or changed.
 */
export class InvalidPathError extends Error {
  constructor(readonly path: unknown, reason: string) {
    super(`invalid path ${JSON.stringify(typeof path === 'string' ? path.slice(0, 200) : String(path))}: ${reason}`)
    this.name = 'InvalidPathError'
  }
}

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
// A UTF-16 surrogate without its partner: not encodable as UTF-8, so not a file name.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Validates a store path and returns it unchanged.
 *
 * A store path is a relative POSIX path of one or more `/`-separated segments, at most
 * MAX_PATH_BYTES bytes in total and MAX_SEGMENT_BYTES per segment (UTF-8). Refused, with
 * InvalidPathError: non-strings, the empty string, absolute paths, empty segments (`a//b`, a
 * trailing `/`), `.` and `..` segments, segments beginning with `.tmp-` (reserved for temporary
 * files), backslashes, NUL and every other C0/C1 control character, and lone surrogates. Other
 * dot-names are allowed (the log engine keeps private state under `.state/`).
 * A path that passes can therefore never name anything outside the root lexically; FileStore
 * additionally resolves symbolic links before using it.
 */
export function checkRelativePath(path: string): string {
  if (typeof path !== 'string') throw new InvalidPathError(path, 'not a string')
  if (path === '') throw new InvalidPathError(path, 'empty')
  if (path.startsWith('/')) throw new InvalidPathError(path, 'absolute')
  if (path.includes('\\')) throw new InvalidPathError(path, 'contains a backslash')
  if (CONTROL.test(path)) throw new InvalidPathError(path, 'contains a control character')
  if (LONE_SURROGATE.test(path)) throw new InvalidPathError(path, 'not well-formed Unicode')
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw new InvalidPathError(path, `longer than ${MAX_PATH_BYTES} bytes`)
  for (const segment of path.split('/')) {
    if (segment === '') throw new InvalidPathError(path, 'empty segment')
    if (segment === '.' || segment === '..') throw new InvalidPathError(path, `"${segment}" segment`)
    if (segment.startsWith(TEMP_PREFIX)) throw new InvalidPathError(path, `segment begins with the reserved "${TEMP_PREFIX}"`)
    if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) {
      throw new InvalidPathError(path, `segment longer than ${MAX_SEGMENT_BYTES} bytes`)
    }
  }
  return path
}

/**
 * A write's files by path, every path checked (checkRelativePath) and every value a Uint8Array
 * before anything is written; a path given twice keeps its last bytes. Shared by every store's
 * `write`, so a refused batch writes nothing in any of them.
 * @throws InvalidPathError, TypeError (a value that is not a Uint8Array)
 */
export function checkedBatch(files: Iterable<[string, Uint8Array]>): Map<string, Uint8Array> {
  const batch = new Map<string, Uint8Array>()
  for (const [path, bytes] of files) {
    checkRelativePath(path)
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`contents of ${path} is not a Uint8Array`)
    batch.set(path, bytes)
  }
  return batch
}

/**
 * Files under one root directory (for a log, `data/logs/<spaceDID>/`), addressed by store paths
 * (see checkRelativePath), with sunlight-style Backend guarantees:
 *
 * - Durable: once `write` resolves, every file in it survives a crash or power loss (file fsynced,
 *   renamed into place, parent directory fsynced; new directories fsynced into their parents).
 * - Atomic per file: each file is replaced by rename, so a reader — in this process or another, or
 *   after a crash — sees the complete old contents or the complete new contents, never a mix, and
 *   never a temporary file. A `write` of several files is NOT atomic as a whole: if it rejects,
 *   any subset of its files may have been written.
 * - Concurrency: any number of reads and writes may run at once. Writes of different paths are
 *   independent; concurrent writes of the same path leave exactly one of the written values.
 * - Not found: `read` resolves `undefined` when no regular file is at the path (missing, a
 *   directory, or a path through a regular file); `exists` resolves false in the same cases.
 *   Every other failure rejects: InvalidPathError for a refused path or one that resolves through a
 *   symbolic link to outside the root (nothing is created in that case), the underlying
 *   Node.js error otherwise.
 *
 * Files are created with mode 0644 and directories with 0755. A crash in the middle of a write may
 * leave a temporary `.tmp-<hex>` file beside its target; it is invisible through this class.
 * The store assumes nothing else renames or deletes directories under its root while it runs.
 */
export class FileStore {
  /** Real (symlink-free) absolute path of the root directory. */
  readonly root: string

  private constructor(
    root: string,
    private readonly io: DurableIO,
  ) {
    this.root = root
  }

  /**
   * Opens the store at `root`, creating it and its parents (mode 0755, durably) if missing.
   * `o.io`: how each write, fsync, rename and removal runs (durable.ts {@link DurableIO}); default
   * {@link DIRECT_IO}, tests inject faults through it.
   */
  static async create(root: string, o: { io?: DurableIO } = {}): Promise<FileStore> {
    const io = o.io ?? DIRECT_IO
    await mkdirDurable(root, io)
    return new FileStore(await realpath(root), io)
  }

  /**
   * The contents of the file at `path`, or `undefined` if there is none. Rejects with
   * InvalidPathError for a refused or escaping path.
   */
  async read(path: string): Promise<Uint8Array | undefined> {
    const real = await this.resolveExisting(checkRelativePath(path))
    if (real === undefined) return undefined
    try {
      const buf = await readFile(real)
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined
      throw err
    }
  }

  /** Whether a regular file is at `path`. Rejects with InvalidPathError for a refused or escaping path. */
  async exists(path: string): Promise<boolean> {
    const real = await this.resolveExisting(checkRelativePath(path))
    if (real === undefined) return false
    try {
      return (await stat(real)).isFile()
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR')) return false
      throw err
    }
  }

  /**
   * Writes each `[path, bytes]` atomically and durably (see the class comment), creating
   * directories as needed. All paths are validated before anything is touched, so a refused path
   * writes nothing. If a path appears twice, the last bytes win. The files are written
   * concurrently; when one fails, the promise rejects (with the first failure) only once every
   * other has finished, so nothing of the call is still being written afterwards.
   */
  async write(files: Iterable<[string, Uint8Array]>): Promise<void> {
    const settled = await Promise.allSettled([...checkedBatch(files)].map(([path, bytes]) => this.writeOne(path, bytes)))
    const failed = settled.find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  /**
   * Removes the files at `paths` (missing ones are ignored) and fsyncs their directories, so the
   * removal is durable once the promise resolves. All paths are validated first.
   */
  async remove(paths: Iterable<string>): Promise<void> {
    const list = [...new Set(paths)].map(checkRelativePath)
    const dirs = new Set<string>()
    await Promise.all(
      list.map(async (rel) => {
        const real = await this.resolveExisting(rel)
        if (real === undefined) return
        if (await unlinkFile(real, this.io)) dirs.add(dirname(real))
      }),
    )
    await Promise.all([...dirs].map((d) => fsyncDir(d, this.io)))
  }

  private async writeOne(path: string, bytes: Uint8Array): Promise<void> {
    const slash = path.lastIndexOf('/')
    const dir = slash < 0 ? this.root : await this.ensureDir(path.slice(0, slash))
    await writeFileAtomic(join(dir, path.slice(slash + 1)), bytes, undefined, this.io)
  }

  /** Real path of `rel` if it exists and lies inside the root; undefined if it does not exist. */
  private async resolveExisting(rel: string): Promise<string | undefined> {
    let real: string
    try {
      real = await realpath(join(this.root, rel))
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR')) return undefined
      throw err
    }
    this.checkInside(rel, real)
    return real
  }

  /**
   * Real path of directory `rel` (a checked store path), creating missing components one at a time
   * (mode 0755, each fsynced into its parent). A component that is a symbolic link is resolved and
   * must stay inside the root, so nothing is ever created outside it.
   */
  private async ensureDir(rel: string): Promise<string> {
    const existing = await this.resolveExisting(rel)
    if (existing !== undefined) return existing
    let cur = this.root
    for (const segment of rel.split('/')) {
      const next = join(cur, segment)
      let info = await lstat(next).catch((err: unknown) => {
        if (hasCode(err, 'ENOENT')) return undefined
        throw err
      })
      if (info === undefined) {
        try {
          await this.io.step({ op: 'mkdir', path: next }, () => mkdir(next, { mode: DIR_MODE }))
          await chmod(next, DIR_MODE)
          await fsyncDir(cur, this.io)
        } catch (err) {
          if (!hasCode(err, 'EEXIST')) throw err // lost a race with a concurrent write: fine
        }
        info = await lstat(next)
      }
      if (info.isSymbolicLink()) {
        const real = await realpath(next)
        this.checkInside(rel, real)
        cur = real
      } else {
        cur = next
      }
    }
    return cur
  }

  private checkInside(rel: string, real: string): void {
    if (real !== this.root && !real.startsWith(this.root + sep)) {
      throw new InvalidPathError(rel, 'resolves outside the store root')
    }
  }
}

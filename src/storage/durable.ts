// Internal helpers for durable, atomic file replacement on a POSIX filesystem.
// Not re-exported from index.ts: FileStore and CarPacker are the public surface.

import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'

/** Mode of every file this module creates (rw-r--r--), applied with fchmod so umask cannot narrow it. */
export const FILE_MODE = 0o644
/** Mode of every directory this module creates (rwxr-xr-x). */
export const DIR_MODE = 0o755

/** Prefix of every temporary file name; checkRelativePath refuses segments that begin with it. */
export const TEMP_PREFIX = '.tmp-'

/**
 * One filesystem step of a durable write, as a {@link DurableIO} sees it (issue 15 item 2: the seam
 * where tests inject a failed write or fsync). Paths are absolute.
 * - `write`: create the temporary file `path` (exclusively) and write `bytes` to it.
 * - `fsync`: fsync that temporary file (its contents durable).
 * - `rename`: rename `path` (a temporary file) over `to` (visible, not yet durable).
 * - `fsyncDir`: fsync directory `path` (the renames, creations and removals in it durable).
 * - `unlink`: remove `path` (durable once its directory is fsynced).
 * - `mkdir`: create directory `path` (durable once its parent is fsynced).
 */
export type DurableStep =
  | { op: 'write'; path: string; bytes: Uint8Array }
  | { op: 'fsync'; path: string }
  | { op: 'rename'; path: string; to: string }
  | { op: 'fsyncDir'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'mkdir'; path: string }

/**
 * Runs each {@link DurableStep}: `run` does the step; an implementation may refuse it (throw
 * instead of running: the step failed and did nothing) or observe it. Production uses
 * {@link DIRECT_IO}; tests inject faults (test/helpers/faulty-io.ts).
 */
export interface DurableIO {
  step<T>(step: DurableStep, run: () => Promise<T>): Promise<T>
}

/** The production {@link DurableIO}: every step just runs. */
export const DIRECT_IO: DurableIO = { step: (_step, run) => run() }

/**
 * A fresh temporary name in the same directory as `target`: `.tmp-<24 hex>` (fixed length, so it
 * fits wherever `target` does). checkRelativePath refuses the prefix, so a reader can never be
 * handed a temporary file.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`)
}

/** fsync a directory, making the creation, rename or removal of its entries durable. */
export async function fsyncDir(dir: string, io: DurableIO = DIRECT_IO): Promise<void> {
  await io.step({ op: 'fsyncDir', path: dir }, async () => {
    const fh = await open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  })
}

/**
 * Writes `bytes` to `tmp` (created exclusively, 'wx'), fsyncs it and closes it. On failure the
 * temporary file is removed (best effort) and the error rethrown.
 */
export async function writeTemp(tmp: string, bytes: Uint8Array, io: DurableIO = DIRECT_IO): Promise<void> {
  const fh = await io.step({ op: 'write', path: tmp, bytes }, async () => {
    const h = await open(tmp, 'wx', FILE_MODE)
    try {
      await h.chmod(FILE_MODE)
      await h.writeFile(bytes)
      return h
    } catch (err) {
      await h.close()
      await unlink(tmp).catch(() => {})
      throw err
    }
  })
  try {
    try {
      await io.step({ op: 'fsync', path: tmp }, () => fh.sync())
    } finally {
      await fh.close()
    }
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

/**
 * Atomically replaces `target` with `bytes`: temp file in the same directory, write, fsync, rename
 * over `target`, fsync the directory. Once it resolves the new contents are durable; a concurrent
 * or crashed-midway reader of `target` sees either the old file or the new one, never a mix.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array, tmp = tempPathFor(target), io: DurableIO = DIRECT_IO): Promise<void> {
  await writeTemp(tmp, bytes, io)
  await renameDurable(tmp, target, io)
}

/**
 * Renames `tmp` over `target` and fsyncs their directory: durable once it resolves. A failed rename
 * removes `tmp` (best effort); a failed directory fsync leaves the rename visible but not known to
 * be durable (the caller must not trust it: issue 15 item 2).
 */
export async function renameDurable(tmp: string, target: string, io: DurableIO = DIRECT_IO): Promise<void> {
  try {
    await io.step({ op: 'rename', path: tmp, to: target }, () => rename(tmp, target))
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fsyncDir(dirname(target), io)
}

/** Removes `path` (through `io`); ENOENT is not an error. Durable once its directory is fsynced. */
export async function unlinkFile(path: string, io: DurableIO = DIRECT_IO): Promise<boolean> {
  try {
    await io.step({ op: 'unlink', path }, () => unlink(path))
    return true
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return false
    throw err
  }
}

/** Whether `err` is a Node.js system error with one of the given codes. */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

/**
 * Creates directory `dir` and any missing parents, each with mode DIR_MODE (chmod, so umask cannot
 * narrow it) and each fsynced into its parent, so the directory survives a crash once this resolves.
 */
export async function mkdirDurable(dir: string, io: DurableIO = DIRECT_IO): Promise<void> {
  const first = await io.step({ op: 'mkdir', path: dir }, () => mkdir(dir, { recursive: true, mode: DIR_MODE }))
  if (first === undefined) return
  const created = [first]
  for (const segment of relative(first, dir).split(sep).filter((s) => s !== '')) created.push(join(created.at(-1)!, segment))
  for (const d of created) {
    await chmod(d, DIR_MODE)
    await fsyncDir(dirname(d), io)
  }
}


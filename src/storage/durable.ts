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
 * A fresh temporary name in the same directory as `target`: `.tmp-<24 hex>` (fixed length, so it
 * fits wherever `target` does). checkRelativePath refuses the prefix, so a reader can never be
 * handed a temporary file.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`)
}

/** fsync a directory, making the creation, rename or removal of its entries durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * Writes `bytes` to `tmp` (created exclusively, 'wx'), fsyncs it and closes it. On failure the
 * temporary file is removed (best effort) and the error rethrown.
 */
export async function writeTemp(tmp: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(tmp, 'wx', FILE_MODE)
  try {
    try {
      await fh.chmod(FILE_MODE)
      await fh.writeFile(bytes)
      await fh.sync()
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
export async function writeFileAtomic(target: string, bytes: Uint8Array, tmp = tempPathFor(target)): Promise<void> {
  await writeTemp(tmp, bytes)
  try {
    await rename(tmp, target)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fsyncDir(dirname(target))
}

/** Whether `err` is a Node.js system error with one of the given codes. */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

/**
 * Creates directory `dir` and any missing parents, each with mode DIR_MODE (chmod, so umask cannot
 * narrow it) and each fsynced into its parent, so the directory survives a crash once this resolves.
 */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE })
  if (first === undefined) return
  const created = [first]
  for (const segment of relative(first, dir).split(sep).filter((s) => s !== '')) created.push(join(created.at(-1)!, segment))
  for (const d of created) {
    await chmod(d, DIR_MODE)
    await fsyncDir(dirname(d))
  }
}


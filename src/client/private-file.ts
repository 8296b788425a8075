/**
 * Atomic writes of a client's private state files (the trust store, the monitor's cursors): a
 * temporary file created 0600 beside the target, written and fsynced, renamed over the target, then
 * the directory (created 0700) fsynced — a reader, or a process restarted after a crash, sees the
 * old file or the new one, never a mix.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Replaces `file` with `text` (UTF-8) atomically and durably, creating its directory (mode 0700)
 * when missing; the file is mode 0600. Once it resolves the new contents survive a crash.
 * @throws the file system's error (EACCES, ENOSPC, …); the temporary file is removed first.
 */
export async function writePrivateFileAtomic(file: string, text: string): Promise<void> {
  const dir = dirname(file)
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await mkdir(dir, { recursive: true, mode: 0o700 })
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(text)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

/**
 * The UTF-8 text of `file`, or undefined when it does not exist (ENOENT).
 * @throws `cannotRead(message)` for any other failure to read it (the caller's named error).
 */
export async function readPrivateFile(file: string, cannotRead: (message: string) => Error): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw cannotRead(`cannot read ${file}: ${(err as Error).message}`)
  }
}

/**
 * The monitor's cursor per log: the next entry index to print and the checkpoint the printed
 * entries were verified against, kept in `<stateDir>/monitor/<spaceDID>.json` beside the trust store
 * (trust-store.ts, which keeps the pinned keys and the largest checkpoint seen by any client), written
 * atomically (private-file.ts) after the entries are printed — so a restarted monitor resumes where
 * it stopped and never skips an entry (at-least-once; see `ucanlog monitor --help`).
 */
import { join } from 'node:path'
import { decodeHash, encodeBase64 } from '../tlog/index.js'
import { readPrivateFile, writePrivateFileAtomic } from './private-file.js'
import { type SeenCheckpoint, TrustStoreError, trustFilePath } from './trust-store.js'

/**
 * A log's cursor: `next` ≥ 0, the first entry index not printed yet (entries before it were printed or
 * skipped by `--from`; it may pass `checkpoint.size` when `--from` named a later index), and the
 * verified checkpoint they were read from.
 */
export interface MonitorCursor {
  space: string
  next: number
  checkpoint: SeenCheckpoint
}

/** The cursor file of `space`: `<stateDir>/monitor/<space>.json`. @throws TypeError when `space` is not a did:key. */
export function cursorFilePath(stateDir: string, space: string): string {
  return trustFilePath(join(stateDir, 'monitor'), space)
}

/**
 * The saved cursor of `space`, or undefined when there is none.
 * @throws TrustStoreError when the file exists but cannot be read or parsed (the message names it).
 */
export async function loadCursor(stateDir: string, space: string): Promise<MonitorCursor | undefined> {
  const file = cursorFilePath(stateDir, space)
  const text = await readPrivateFile(file, (m) => new TrustStoreError(m))
  if (text === undefined) return undefined
  try {
    const j = JSON.parse(text) as { space?: unknown; next?: unknown; size?: unknown; rootHash?: unknown; checkpoint?: unknown }
    if (j.space !== space) throw new Error(`it is not the cursor of ${space}`)
    if (!Number.isSafeInteger(j.next) || !Number.isSafeInteger(j.size) || (j.next as number) < 0 || (j.size as number) < 0) throw new Error('"next" and "size" are not entry counts')
    if (typeof j.rootHash !== 'string' || typeof j.checkpoint !== 'string') throw new Error('"rootHash" and "checkpoint" must be strings')
    return { space, next: j.next as number, checkpoint: { size: j.size as number, rootHash: decodeHash(j.rootHash), note: j.checkpoint } }
  } catch (err) {
    throw new TrustStoreError(`${file} is not a ucanlog monitor cursor (${(err as Error).message}); move it away to start again (--from)`)
  }
}

/**
 * Saves `cursor` atomically and durably (0600 file in a 0700 directory).
 * @returns the file's path.
 * @throws TrustStoreError when it cannot be written.
 */
export async function saveCursor(stateDir: string, cursor: MonitorCursor): Promise<string> {
  const file = cursorFilePath(stateDir, cursor.space)
  const c = cursor.checkpoint
  try {
    await writePrivateFileAtomic(file, JSON.stringify({ space: cursor.space, next: cursor.next, size: c.size, rootHash: encodeBase64(c.rootHash), checkpoint: c.note }, null, 2) + '\n')
  } catch (err) {
    throw new TrustStoreError(`cannot write ${file}: ${(err as Error).message}; check that ${stateDir} is writable (--state, UCANLOG_STATE)`)
  }
  return file
}

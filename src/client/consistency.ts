/**
 * Consistency with a checkpoint seen before (RFC 6962 §2.1.2), as the auditor and `ucanlog prove`
 * check it: a smaller tree than the one seen is a rollback, a tree that does not extend it a fork.
 */
import { type Checkpoint, type Hash, type HashReader, checkTree, proveTree } from '../tlog/index.js'
import { ForkError, RollbackError, VerificationError } from './verify-errors.js'

/**
 * Checks that the verified checkpoint `cp` extends `previous` (size in entries, 32-byte root), with a
 * consistency proof built from `reader` (authenticated against `cp`'s root: src/client/tiles.ts).
 * @param what how the errors name `previous` (default "the size N seen last time").
 * @returns the previous size.
 * @throws RollbackError (LogRolledBack) when `cp` is smaller; ForkError (LogForked) when the proof
 *   does not verify; a VerificationError of `reader` (e.g. MissingFile) as is.
 */
export async function checkConsistentWith(
  previous: { size: number; rootHash: Hash },
  cp: Pick<Checkpoint, 'size' | 'rootHash'>,
  reader: HashReader,
  what = `the size ${previous.size} seen last time`,
): Promise<number> {
  const p = previous
  if (p.size > cp.size) throw new RollbackError(`the log rolled back: last seen size ${p.size}, now ${cp.size}`)
  try {
    if (p.size > 0) checkTree(await proveTree(cp.size, p.size, reader), cp.size, cp.rootHash, p.size, p.rootHash)
  } catch (err) {
    if (err instanceof VerificationError) throw err
    throw new ForkError(`the log forked: its checkpoint of size ${cp.size} is not consistent with ${what}`)
  }
  return p.size
}

/**
 * Running `ucanlog serve` (the built CLI, a real process) on a PostgreSQL database, for the
 * test/postgres serve tests: one instance, or several sharing one database and one service key.
 */
import type { ChildProcess } from 'node:child_process'
import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO, spawnServe } from '../e2e/helpers.js'

/** A running instance: its URL, the service DID, the process, and everything it printed. */
export interface ServedInstance {
  url: string
  did: string
  child: ChildProcess
}

/**
 * Runs `ucanlog serve` on `dataDir` with its logs in `databaseUrl` (lease 1000 ms unless `args`
 * say otherwise); collects everything it prints into `printed`; the child is pushed to `children`
 * (the caller kills them after the tests).
 */
export async function servePg(dataDir: string, databaseUrl: string, printed: string[], children: ChildProcess[], args: string[] = []): Promise<ServedInstance> {
  const r = await spawnServe(
    ['--data', dataDir, '--port', '0', '--log-level', 'info', '--witness-policy', join(REPO, 'witness_policy.txt'), '--database-lease', '1000', ...args],
    'pipe',
    { env: { UCANLOG_DATABASE_URL: databaseUrl } },
  )
  children.push(r.child)
  r.child.stdout!.on('data', (d: Buffer) => printed.push(d.toString()))
  r.child.stderr!.on('data', (d: Buffer) => printed.push(d.toString()))
  return r
}

/**
 * Gives data directory `to` the service key, the bundled witness's key and the origin prefix of
 * `from`, as an operator gives every instance of one service the same key (docs/storage.md): the
 * instances then sign every log's checkpoints alike.
 */
export async function shareKeys(from: string, to: string): Promise<void> {
  for (const f of ['service.key', 'witness.key', 'origin-prefix']) await copyFile(join(from, f), join(to, f))
}

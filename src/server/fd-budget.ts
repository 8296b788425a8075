/**
 * The descriptor budget: how many client connections the process can hold open while keeping
 * enough file descriptors in reserve for what the service itself must open (logs, databases,
 * tile files, outbound witness connections). Every accepted TCP connection costs one descriptor;
 * when the process runs out, opening a log or a database fails for everyone (EMFILE), so the
 * connection caps are derived from (or checked against) what is left after the reserve.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { DEFAULT_MAX_OPEN_LOGS, FDS_PER_OPEN_LOG } from '../log/log-manager.js'

/** The process's open-file limit (RLIMIT_NOFILE soft limit) and where it was read. */
export interface FdLimit {
  /** Descriptors the process may hold open at once; `Infinity` when unlimited. */
  soft: number
  /** `/proc/self/limits` or `ulimit -n`. */
  source: string
}

/**
 * Reads the soft RLIMIT_NOFILE of this process: on Linux from `/proc/self/limits` ("Max open
 * files"), elsewhere from `sh -c 'ulimit -n'` (a child inherits the limit). Node raises the soft
 * limit to the hard one at start, so this is the limit in force. Never throws.
 * @returns undefined when neither is available (e.g. Windows): the budget is then not checked.
 */
export function readFdLimit(): FdLimit | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (m) return { soft: m[1] === 'unlimited' ? Infinity : Number(m[1]), source: '/proc/self/limits' }
  } catch {}
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (out === 'unlimited') return { soft: Infinity, source: 'ulimit -n' }
    if (/^\d+$/.test(out)) return { soft: Number(out), source: 'ulimit -n' }
  } catch {}
  return undefined
}

/** Descriptors kept out of the connection budget, by what holds them (counts of descriptors). */
export interface FdReserve {
  /** The process at start: stdio, the event loop and libuv/V8 pipes, the listening socket (29 measured on Linux, Node 20). */
  process: number
  /** ucan.db: 2 SQLite connections in WAL mode (db + -wal + -shm, db + -wal). */
  ucanDb: number
  /** The bundled witness's witness.db in WAL mode (db, -wal, -shm). */
  witnessDb: number
  /** The Storacha upload queue database in WAL mode (when uploads are on). */
  uploadQueue: number
  /** Open logs: each holds 2 (its CAR index.sqlite and its -wal), the revocation log included. */
  logs: number
  /** Tile, entry-bundle, checkpoint and CAR files being read or written at one time. */
  files: number
  /** Outbound sockets: DNS, witness and Storacha HTTP connections. */
  outbound: number
}

/** Open logs reserved for by default: the default open-log cap (`--max-open-logs`) + the revocation log. */
export const DEFAULT_RESERVED_LOGS = DEFAULT_MAX_OPEN_LOGS + 1

/**
 * The default reserve, 221 descriptors with the default 65 logs: the measured start-up set plus bounded headroom for
 * `logs` open logs (default {@link DEFAULT_RESERVED_LOGS}), files and outbound connections.
 * @param logs open logs to reserve for (count of logs, ≥ 0); each costs {@link FDS_PER_OPEN_LOG}.
 */
export function defaultFdReserve(logs: number = DEFAULT_RESERVED_LOGS): FdReserve {
  return { process: 32, ucanDb: 5, witnessDb: 3, uploadQueue: 3, logs: logs * FDS_PER_OPEN_LOG, files: 32, outbound: 16 }
}

/** What the open-file limit leaves for client connections. */
export interface FdBudget {
  /** The open-file limit (descriptors); `Infinity` when unlimited. */
  limit: number
  /** Descriptors kept in reserve (sum of the {@link FdReserve}). */
  reserved: number
  /** Descriptors left for client connections (one each): `limit − reserved`, at least 0. */
  connections: number
}

/**
 * The budget arithmetic: one descriptor per client connection, after the reserve.
 * @param limit the open-file limit (descriptors, `Infinity` when unlimited).
 * @param reserve descriptors kept for the service's own files and sockets.
 */
export function fdBudget(limit: number, reserve: FdReserve): FdBudget {
  const reserved = Object.values(reserve).reduce((a, b) => a + b, 0)
  return { limit, reserved, connections: Math.max(0, limit - reserved) }
}

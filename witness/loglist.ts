/**
 * The witness network's log-list format (transparency-dev/witness-network `log-list-format.md`,
 * `logs/v0`), the list a witness operator pulls to learn which logs to witness:
 *
 *     # comments and blank lines are ignored; every line is whitespace-trimmed
 *     logs/v0                        header: the first other line
 *     vkey <vkey>                    starts an entry (a log key, type 0x01 Ed25519)
 *     origin <origin>                optional; default: the vkey's key name
 *     qpd <n>                        add-checkpoint requests per day
 *     contact <free text>
 *
 * Parsing is as lenient as torchwood's `witnessctl pull-logs` where the format document is strict:
 * unknown keys are ignored, invalid or unsupported vkeys and repeated origins are skipped (first one
 * wins) and reported, but a wrong header, a key line before the first `vkey`, or an empty `vkey` make
 * the whole list malformed. Applying a list ({@link pullLogs}) only ever adds logs: the witness
 * network never removes a log or changes its key because a list changed.
 */
import { ed25519Verifier, parseVerifierKey } from '../src/tlog/note.js'
import type { WitnessStore } from './store.js'

/** The header line of a `logs/v0` list. */
export const LOG_LIST_HEADER = 'logs/v0'
/** Largest accepted log list, in bytes (64 MiB; the 40k-log staging list is about 6 MB). */
export const MAX_LOG_LIST_SIZE = 64 << 20

/** A log list that cannot be used at all (wrong header, entry structure); the message names the line. */
export class MalformedLogListError extends Error {
  override name = 'MalformedLogListError'
}

/**
 * One log of a list.
 * - `origin`: the checkpoint origin (c2sp.org/tlog-checkpoint), the `origin` line or the key name.
 * - `vkey`: the log's Ed25519 verifier key (c2sp.org/signed-note, type 0x01), canonical form.
 * - `qpd`: add-checkpoint requests per day the log may send, 1 ≤ qpd < 2^31, when listed and valid.
 * - `contact`: free text for humans, when listed.
 */
export interface LogListEntry {
  origin: string
  vkey: string
  qpd?: number
  contact?: string
}

/** A parsed list: the usable logs in list order, and one message per entry that was skipped. */
export interface LogList {
  logs: LogListEntry[]
  skipped: string[]
}

/**
 * Parses a `logs/v0` log list.
 * @param text the list, UTF-8 text of at most {@link MAX_LOG_LIST_SIZE} bytes; LF or CRLF lines.
 * @returns the usable entries and messages for skipped ones (bad vkey, type other than 0x01,
 *   repeated origin).
 * @throws MalformedLogListError (message names the line number) for a list that is too large, lacks
 *   the `logs/v0` header, has a key line before the first `vkey`, or an empty `vkey`.
 */
export function parseLogList(text: string): LogList {
  if (Buffer.byteLength(text, 'utf8') > MAX_LOG_LIST_SIZE) throw new MalformedLogListError(`log list larger than ${MAX_LOG_LIST_SIZE} bytes`)
  const logs: LogListEntry[] = []
  const skipped: string[] = []
  const seen = new Set<string>()
  let sawHeader = false
  let cur: { line: number; vkey: string; origin?: string; qpd?: number; contact?: string } | undefined

  const finish = () => {
    if (cur === undefined) return
    const { line, vkey } = cur
    let canonical: string
    let name: string
    try {
      canonical = ed25519Verifier(vkey).vkey
      name = parseVerifierKey(canonical).name
    } catch (e) {
      skipped.push(`line ${line}: skipping vkey ${JSON.stringify(vkey)}: ${(e as Error).message}`)
      cur = undefined
      return
    }
    const origin = cur.origin ?? name
    if (seen.has(origin)) {
      skipped.push(`line ${line}: skipping a second entry for origin ${JSON.stringify(origin)}`)
    } else {
      seen.add(origin)
      const entry: LogListEntry = { origin, vkey: canonical }
      if (cur.qpd !== undefined) entry.qpd = cur.qpd
      if (cur.contact !== undefined) entry.contact = cur.contact
      logs.push(entry)
    }
    cur = undefined
  }

  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    if (!sawHeader) {
      if (line !== LOG_LIST_HEADER) throw new MalformedLogListError(`line ${n}: expected the header "${LOG_LIST_HEADER}", got ${JSON.stringify(line.slice(0, 80))}`)
      sawHeader = true
      continue
    }
    const sp = line.search(/\s/)
    const key = sp < 0 ? line : line.slice(0, sp)
    const value = sp < 0 ? '' : line.slice(sp + 1).trim()
    if (key === 'vkey') {
      finish()
      if (value === '') throw new MalformedLogListError(`line ${n}: empty vkey`)
      cur = { line: n, vkey: value }
      continue
    }
    if (cur === undefined) throw new MalformedLogListError(`line ${n}: expected a "vkey" line first, got ${JSON.stringify(line.slice(0, 80))}`)
    if (key === 'origin' && value !== '') cur.origin = value
    else if (key === 'qpd' && /^[1-9][0-9]{0,9}$/.test(value) && Number(value) < 2 ** 31) cur.qpd = Number(value)
    else if (key === 'contact') cur.contact = value
    // Anything else (unknown keys, an invalid qpd) is ignored, as torchwood does.
  }
  finish()
  if (!sawHeader) throw new MalformedLogListError(`no "${LOG_LIST_HEADER}" header`)
  return { logs, skipped }
}

/**
 * Formats logs as a `logs/v0` list: one `vkey` line per log, an `origin` line only when the origin
 * differs from the key name, then `qpd` and `contact` when given.
 * @param logs each with a valid Ed25519 vkey (type 0x01).
 * @throws MalformedKeyError for an invalid vkey.
 */
export function formatLogList(logs: readonly LogListEntry[]): string {
  let out = `${LOG_LIST_HEADER}\n`
  for (const l of logs) {
    const { name } = parseVerifierKey(ed25519Verifier(l.vkey).vkey)
    out += `\nvkey ${l.vkey}\n`
    if (l.origin !== name) out += `origin ${l.origin}\n`
    if (l.qpd !== undefined) out += `qpd ${l.qpd}\n`
    if (l.contact !== undefined) out += `contact ${l.contact}\n`
  }
  return out
}

/** What {@link pullLogs} did: origins added, and warnings about things an operator should look at. */
export interface PullResult {
  added: string[]
  /** Listed logs the witness already knows with other keys, or knows but has disabled. */
  warnings: string[]
}

/**
 * Applies a log list to a witness store, add-only (witnessctl `pull-logs` semantics):
 * - an origin the witness does not know is added with the listed key;
 * - a known log is never changed: if it has other keys, or none (disabled), a warning says so.
 * Logs not in the list are left alone; nothing is ever removed.
 * Store errors reject the promise; logs added before the error stay added.
 */
export async function pullLogs(store: WitnessStore, list: LogList): Promise<PullResult> {
  const added: string[] = []
  const warnings: string[] = []
  for (const l of list.logs) {
    const known = await store.getLog(l.origin)
    if (known === undefined) {
      await store.addLog(l.origin)
      await store.addKey(l.origin, l.vkey)
      added.push(l.origin)
    } else if (known.keys.length === 0) {
      warnings.push(`log ${l.origin} is listed but disabled here (it has no keys); leaving it disabled`)
    } else if (!known.keys.includes(l.vkey)) {
      warnings.push(`log ${l.origin} is listed with a different key ${l.vkey}; keeping ${known.keys.join(', ')}`)
    }
  }
  return { added, warnings }
}

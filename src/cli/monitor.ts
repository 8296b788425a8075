/**
 * `ucanlog monitor` (issue 13 item 4): follows one or many logs — the `--space`s given, else every
 * space's log the service lists at `/logs.txt` (re-read each round, so new logs are picked up) —
 * polling each checkpoint, verifying it and its consistency with every checkpoint seen before and
 * with `--compare` sources (src/client/monitor.ts), then printing the new entries, verified against
 * the tiles, as JSON lines. Keys and the last checkpoint are pinned in the trust store shared with
 * `audit` and `append` (`--state`); the cursor (next index to print) beside it.
 */
import { readFile } from 'node:fs/promises'
import { Command } from 'commander'
import { ServiceRefusedError, UnexpectedAnswerError } from '../client/errors.js'
import { isUtf8 } from '../client/entries.js'
import { MAX_LOG_FILE_BYTES, httpLogFiles, readBody } from '../client/http.js'
import { type CompareSource, type SeenCheckpointAt, checkNewCheckpoint, readNewEntries, type MonitorEntry } from '../client/monitor.js'
import { loadCursor, saveCursor, cursorFilePath, type MonitorCursor } from '../client/monitor-cursor.js'
import { LogMisbehavedError, LOG_MISBEHAVED_EXIT_CODE } from '../client/monitor-errors.js'
import { NoPublishedLogError, type TrustAnchors, defaultStateDir, loadTrust, resolveTrust, saveTrust, trustFilePath } from '../client/trust-store.js'
import { type Policy, equalBytes, parsePolicy } from '../tlog/index.js'
import { MAX_LOG_LIST_SIZE, parseLogList } from '../../witness/index.js'
import { pollDelay } from './backoff.js'
import { ExitCode, UsageError, exitStatusHelp, unreachable } from './exit-codes.js'
import { urlOption } from './service-did.js'

/** Longest wait for one HTTP request of the monitor, ms; past it the source counts as unreachable (retried with backoff). */
export const MONITOR_FETCH_TIMEOUT_MS = 30_000


const SPACE_DID = /^did:key:z[1-9A-HJ-NP-Za-km-z]+$/
/** A space's log origin in `/logs.txt`: `<prefix>/logs/<spaceDID>` (the revocation log, `<prefix>/revocations`, is not followed). */
const SPACE_ORIGIN = /\/logs\/(did:key:z[1-9A-HJ-NP-Za-km-z]+)$/

interface Options {
  url: string
  space: string[]
  compare: string[]
  state: string
  witnessPolicy?: string
  logVkey?: string
  match?: string
  matchHex?: string
  from: string
  interval: string
  maxBackoff: string
  maxLogs: string
  once?: boolean
  json?: boolean
}

/** One followed log: its pins once resolved, its cursor, and when it is polled next (ms since the epoch) after how many failures in a row. */
interface Followed {
  space: string
  anchors?: TrustAnchors
  policy?: Policy
  cursor?: MonitorCursor
  failures: number
  dueAt: number
}

/** `ucanlog monitor`: see the module comment and `--help`. */
export function monitorCommand(): Command {
  return new Command('monitor')
    .description(
      'Follow logs: poll each checkpoint, verify its signatures and cosignatures, its consistency with every checkpoint seen before and with --compare sources, ' +
        'then print each new entry, verified against the tiles, as a JSON line {space, index, leafHash, size, data (base64)}.',
    )
    .addHelpText(
      'after',
      '\nState: --state is the trust store `audit` and `append` share (pinned log key, policy, largest checkpoint seen) plus\n' +
        'monitor/<space>.json, the cursor: the next index to print. The cursor is written (atomically) after the entries are\n' +
        'printed and flushed, one bundle (≤ 256 entries) at a time, so a restarted monitor resumes after the last entry it\n' +
        'printed: no gaps ever; on SIGINT/SIGTERM it stops after the bundle it is printing (no duplicates); killed between\n' +
        'printing and writing the cursor, it prints that bundle\'s entries again (at-least-once).\n' +
        '\nErrors reaching a source (unreachable, HTTP 429/5xx) are retried with exponential backoff (from --interval, doubling,\n' +
        'capped at --max-backoff, with jitter); with --once they end the run.\n' +
        exitStatusHelp({
          0: '--once: every log polled and its new entries printed; or stopped by SIGINT/SIGTERM',
          3: 'verification failed (a signature, a cosignature quorum, an entry or tile not matching the signed root)',
          4: '--once: a source could not be reached',
          [LOG_MISBEHAVED_EXIT_CODE]:
            'the log misbehaved: two validly signed checkpoints contradict each other (LogForked, SplitView, LogRolledBack),\n' +
            '     across polls, across restarts (the pinned one) or across --compare sources; both checkpoints are printed as\n' +
            '     evidence (stderr; under --json a line {"misbehavior":{kind, space, message, checkpoints}} on stdout)',
        }),
    )
    .addOption(urlOption())
    .option('--space <did>', 'a space whose log to follow (repeat for more); default: every space\'s log in <url>/logs.txt', collect, [])
    .option('--compare <url>', 'a second source of the same logs (a mirror, a gateway copy, another replica) serving <url>/logs/<space>/…: its checkpoint must agree (repeat for more)', collect, [])
    .option('--state <dir>', 'the trust store shared with `audit` and `append`, and the monitor\'s cursors (env UCANLOG_STATE)', defaultStateDir())
    .option('--witness-policy <file>', 'witness policy to require (default: the pinned one, else the service\'s /info, pinned)')
    .option('--log-vkey <vkey>', 'the log\'s vkey (one --space only; default: the pinned one, else the service\'s /head, pinned)')
    .option('--match <regex>', 'print only entries whose UTF-8 text matches this JavaScript regular expression (entries that are not UTF-8 never match)')
    .option('--match-hex <hex>', 'print only entries containing these bytes (hex)')
    .option('--from <index>', 'where to start a log that has no cursor yet: an entry index, or `end` (only entries appended from now on)', '0')
    .option('--interval <seconds>', 'time between polls of a log (±10% jitter); also the first backoff after an error', '10')
    .option('--max-backoff <seconds>', 'longest wait between retries after errors', '300')
    .option('--max-logs <n>', 'most logs followed at once (from /logs.txt); others are reported and skipped', '1000')
    .option('--once', 'poll every log once, print its new entries, and exit')
    .option('--json', 'print the evidence of a misbehaving log, and any error, as JSON on stdout')
    .action(async (o: Options) => runMonitor(o))
}

function collect(v: string, acc: string[]): string[] {
  return [...acc, v]
}

function seconds(flag: string, v: string, min: number): number {
  const n = Number(v)
  if (!Number.isFinite(n) || n < min || n > 86_400) throw new UsageError(`${flag} must be a number of seconds from ${min} to 86400, got ${JSON.stringify(v)}`)
  return n * 1000
}

function count(flag: string, v: string, min: number): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`)
  return n
}

async function runMonitor(o: Options): Promise<void> {
  for (const s of o.space) if (!SPACE_DID.test(s)) throw new UsageError(`--space must be a did:key, got ${JSON.stringify(s.slice(0, 80))}`)
  if (o.logVkey !== undefined && o.space.length !== 1) throw new UsageError('--log-vkey needs exactly one --space (each log has its own key)')
  const intervalMs = seconds('--interval', o.interval, 0.05)
  const maxBackoffMs = Math.max(intervalMs, seconds('--max-backoff', o.maxBackoff, 0.05))
  const maxLogs = count('--max-logs', o.maxLogs, 1)
  const from = o.from === 'end' ? 'end' : count('--from', o.from, 0)
  const matches = matcher(o)
  const policyText = o.witnessPolicy !== undefined ? await readFile(o.witnessPolicy, 'utf8').catch((err: Error) => Promise.reject(new UsageError(`cannot read --witness-policy: ${err.message}`))) : undefined
  for (const u of [o.url, ...o.compare]) {
    try {
      new URL('/', u)
    } catch {
      throw new UsageError(`not a URL: ${JSON.stringify(u)}`)
    }
  }
  const get = getter(o.url, MAX_LOG_FILE_BYTES)
  const getList = getter(o.url, MAX_LOG_LIST_SIZE)
  const compareGets = o.compare.map((u) => ({ url: u, get: getter(u, MAX_LOG_FILE_BYTES) }))

  let stop = false
  let wake: (() => void) | undefined
  const onSignal = () => {
    stop = true
    wake?.()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // stdout closed by its reader (e.g. `| head`): stop; the failed write ends the run without a stack trace.
  process.stdout.on('error', onSignal)

  const logs = new Map<string, Followed>()
  const list = { failures: 0, dueAt: 0, full: false }
  for (const s of o.space) logs.set(s, { space: s, failures: 0, dueAt: 0 })
  const log = (msg: string) => process.stderr.write(`monitor: ${msg}\n`)
  /** Runs `step`; on a source error that may pass, reschedules with backoff (unless --once); anything else ends the run. */
  const attempt = async (what: string, sched: { failures: number; dueAt: number }, step: () => Promise<void>) => {
    try {
      await step()
      sched.failures = 0
      sched.dueAt = Date.now() + pollDelay(0, intervalMs, maxBackoffMs)
    } catch (err) {
      if (o.once || !retryable(err)) throw err
      sched.failures++
      const wait = pollDelay(sched.failures, intervalMs, maxBackoffMs)
      sched.dueAt = Date.now() + wait
      log(`${what}: ${(err as Error).message}; retrying in ${(wait / 1000).toFixed(1)} s (attempt ${sched.failures})`)
    }
  }

  try {
    for (;;) {
      if (o.space.length === 0 && list.dueAt <= Date.now()) {
        await attempt(`${o.url}/logs.txt`, list, async () => {
          for (const s of await listedSpaces(o.url, getList)) {
            if (logs.has(s)) continue
            if (logs.size >= maxLogs) {
              if (!list.full) log(`following --max-logs ${maxLogs} logs already; ${s} and any other new log are not followed`)
              list.full = true
              break
            }
            logs.set(s, { space: s, failures: 0, dueAt: 0 })
          }
        })
      }
      for (const f of logs.values()) {
        if (stop) break
        if (f.dueAt > Date.now()) continue
        await attempt(f.space, f, () => poll(f))
      }
      if (o.once || stop) return
      const next = Math.min(...[...logs.values()].map((f) => f.dueAt), o.space.length === 0 ? list.dueAt : Infinity)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, next - Date.now()))
        wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      wake = undefined
      if (stop) return
    }
  } catch (err) {
    if (err instanceof LogMisbehavedError) await reportMisbehavior(err, o.json === true)
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.stdout.off('error', onSignal)
  }

  /** One poll of one log: pins, checkpoint checks, the new entries printed and the cursor saved. */
  async function poll(f: Followed): Promise<void> {
    const stored = await loadTrust(o.state, f.space)
    if (!f.anchors) {
      let resolved
      try {
        resolved = await resolveTrust({
          url: o.url,
          space: f.space,
          stored,
          explicit: { logVkey: o.logVkey, policy: policyText },
          get,
          firstUse: 'first monitor',
        })
      } catch (err) {
        if (!(err instanceof NoPublishedLogError)) throw err
        log(`${f.space}: no published checkpoint yet`)
        return
      }
      for (const n of resolved.notes) process.stderr.write(`note: ${f.space}: ${n}\n`)
      f.anchors = resolved.anchors
      f.policy = parsePolicy(resolved.anchors.policy)
      f.cursor = await loadCursor(o.state, f.space)
    }
    const anchors = f.anchors
    // Another client (audit, append) may have pinned a larger checkpoint meanwhile.
    if (stored?.last && (!anchors.last || stored.last.size > anchors.last.size)) anchors.last = stored.last
    const seen: SeenCheckpointAt[] = []
    if (anchors.last) seen.push({ ...anchors.last, source: `pinned in ${trustFilePath(o.state, f.space)}` })
    const c = f.cursor?.checkpoint
    if (c && !seen.some((s) => s.size === c.size && equalBytes(s.rootHash, c.rootHash))) seen.push({ ...c, source: `the cursor ${cursorFilePath(o.state, f.space)}` })

    const fetchFile = httpLogFiles(o.url, f.space, get)
    const compare: CompareSource[] = compareGets.map((g) => ({ source: new URL(`/logs/${f.space}/checkpoint`, g.url).href, fetchFile: httpLogFiles(g.url, f.space, g.get) }))
    const v = await checkNewCheckpoint({
      space: f.space,
      anchors,
      policy: f.policy!,
      source: new URL(`/logs/${f.space}/checkpoint`, o.url).href,
      fetchFile,
      seen,
      compare,
      now: Math.floor(Date.now() / 1000),
      warn: (m) => log(`${f.space}: ${m}`),
    })
    if (!v) return
    const cp = { size: v.checkpoint.size, rootHash: v.checkpoint.rootHash, note: v.note }
    const grew = !anchors.last || anchors.last.size !== cp.size
    anchors.last = cp
    await saveTrust(o.state, anchors)

    const start = f.cursor?.next ?? (from === 'end' ? cp.size : from)
    let printed = 0
    const next = await readNewEntries({
      space: f.space,
      fetchFile,
      checkpoint: cp,
      from: start,
      stopped: () => stop,
      emit: async (entries: MonitorEntry[], next: number) => {
        const lines = entries.filter((e) => matches(Buffer.from(e.data, 'base64'))).map((e) => JSON.stringify(e) + '\n')
        if (lines.length > 0) await writeOut(lines.join(''))
        printed += lines.length
        f.cursor = { space: f.space, next, checkpoint: cp }
        await saveCursor(o.state, f.cursor)
      },
    })
    if (!f.cursor || f.cursor.next !== next || f.cursor.checkpoint.size !== cp.size) {
      f.cursor = { space: f.space, next, checkpoint: cp }
      await saveCursor(o.state, f.cursor)
    }
    if (grew || printed > 0) log(`${f.space}: checkpoint ${cp.size} verified${seen.length ? ` (consistent with ${seen.map((s) => s.size).join(', ')})` : ''}; ${printed} entries printed; cursor ${next}`)
  }
}

/** The space DIDs of the logs `<url>/logs.txt` lists (logs/v0; origins `<prefix>/logs/<space>`). */
async function listedSpaces(url: string, get: (u: URL) => Promise<Response>): Promise<string[]> {
  const u = new URL('/logs.txt', url)
  const res = await get(u)
  if (!res.ok) throw new ServiceRefusedError({ name: 'HTTPError', message: `GET ${u.href} answered HTTP ${res.status}` }, res.status)
  const out: string[] = []
  for (const l of parseLogList(await res.text()).logs) {
    const m = SPACE_ORIGIN.exec(l.origin)
    if (m) out.push(m[1]!)
  }
  return out
}

/**
 * A GET of one source: a timeout of {@link MONITOR_FETCH_TIMEOUT_MS}, a network failure as the CLI's
 * UnreachableError (exit 4) naming `base`, HTTP 429 or 5xx as ServiceRefusedError with its status
 * (both retried with backoff), and the body read whole but never past `maxBytes`
 * (UnexpectedAnswerError, exit 2, before reading more); other statuses are the caller's (404: not published).
 */
function getter(base: string, maxBytes: number): (u: URL) => Promise<Response> {
  return async (u) => {
    const res = await fetch(u, { signal: AbortSignal.timeout(MONITOR_FETCH_TIMEOUT_MS) }).catch((err: unknown) => {
      throw unreachable(base, err)
    })
    if (res.status === 429 || res.status >= 500) {
      await res.body?.cancel()
      throw new ServiceRefusedError({ name: 'HTTPError', message: `GET ${u.href} answered HTTP ${res.status}` }, res.status)
    }
    const body = await readBody(res, maxBytes).catch((err: unknown) => {
      throw err instanceof UnexpectedAnswerError ? err : unreachable(base, err)
    })
    const nullBody = res.status === 204 || res.status === 304
    return new Response(nullBody ? null : body, { status: res.status, headers: res.headers })
  }
}

/** Whether an error may pass by itself: a source unreachable, or answering 429 / 5xx. */
function retryable(err: unknown): boolean {
  const e = err as { exitCode?: unknown; status?: unknown }
  if (e?.exitCode === ExitCode.Unreachable) return true
  return err instanceof ServiceRefusedError && typeof e.status === 'number' && (e.status === 429 || e.status >= 500)
}

/** The entry filter of `--match` (a regex over the UTF-8 text) and `--match-hex` (a byte string contained). */
function matcher(o: Options): (entry: Uint8Array) => boolean {
  let re: RegExp | undefined
  if (o.match !== undefined) {
    try {
      re = new RegExp(o.match, 'u')
    } catch (err) {
      throw new UsageError(`--match is not a regular expression: ${(err as Error).message}`)
    }
  }
  let hex: Buffer | undefined
  if (o.matchHex !== undefined) {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(o.matchHex)) throw new UsageError('--match-hex must be an even number of hex digits, e.g. 00ff')
    hex = Buffer.from(o.matchHex, 'hex')
  }
  return (entry) => {
    if (re && !(isUtf8(entry) && re.test(Buffer.from(entry).toString('utf8')))) return false
    if (hex && Buffer.from(entry).indexOf(hex) === -1) return false
    return true
  }
}

/** Writes to stdout and resolves once the data is handed to the OS (so the cursor is written after the lines are out). */
function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())))
}

/** Prints both checkpoints of a misbehaving log: a JSON line on stdout under --json, else a block on stderr. */
async function reportMisbehavior(err: LogMisbehavedError, json: boolean): Promise<void> {
  if (json) {
    await writeOut(JSON.stringify({ misbehavior: { kind: err.name, space: err.space, message: err.message, checkpoints: err.evidence } }) + '\n')
    return
  }
  process.stderr.write(
    `monitor: the log of ${err.space} MISBEHAVED (${err.name}): ${err.message}\n` +
      err.evidence.map((e, i) => `--- checkpoint ${i + 1}: size ${e.size}, root ${e.rootHash}, from ${e.source}\n${e.note}${e.note.endsWith('\n') ? '' : '\n'}`).join('') +
      '---\n',
  )
}

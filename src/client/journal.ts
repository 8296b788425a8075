/**
 * The append journal (issue 12 "exactly-once bulk append"): an append-only file of JSON lines in
 * which a bulk append records, before sending, each signed `tlog/append` invocation (its CAR bytes,
 * CID, `exp`, the entry's position and leaf hash) and, as they come, each outcome. Every record is
 * on disk (fsync'd) before the call that wrote it resolves, so an invocation is never sent before
 * it is recorded. A rerun with the same journal and input resumes from it (append-batch.ts).
 *
 * Records, one JSON object per line, `type` first:
 * - `start`: `{ type, version: 1, space, service, treeSize, time }`: the log's size (entries) when the
 *   journal started, where a lookup for an expired, unanswered invocation begins; `time` Unix seconds.
 * - `signed`: `{ type, position, line, leafHash, inputHash, cid, exp, invocation }`: `leafHash` the
 *   entry's RFC 6962 leaf hash, `inputHash` the running hash of the input up to and including this
 *   entry (both standard base64), `exp` Unix seconds, `invocation` standard base64 of its CAR.
 *   A later `signed` record for the same position supersedes an earlier one (a re-signed, expired one).
 * - `outcome`: `{ type, position, cid, ok }` (the append result), `{ …, error: { name, message } }`
 *   (a refusal) or `{ …, found: { index } }` (an expired, unanswered invocation's entry found in the log).
 * - `end`: `{ type, entries, inputHash }`: the input ended after `entries` entries.
 *
 * A torn last line (a crash mid-write) is ignored when the journal is read: its record never
 * completed, so nothing was sent on its account.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, open } from 'node:fs/promises'
import { decodeBase64, encodeBase64 } from '../tlog/encoding.js'
import type { AppendResult } from '../ucan/wire.js'
import { UcanlogError } from './errors.js'

/** The journal's first record. */
export interface JournalStart {
  type: 'start'
  version: 1
  /** The space DID whose log the entries go to. */
  space: string
  /** The service DID the invocations are addressed to. */
  service: string
  /** Entries in the log when the journal started. */
  treeSize: number
  /** Unix seconds. */
  time: number
}

/** A signed invocation, recorded before it is sent. */
export interface JournalSigned {
  type: 'signed'
  /** 0-based position of the entry in the input. */
  position: number
  /** 1-based input line (or argument) number. */
  line: number
  /** RFC 6962 leaf hash of the entry, standard base64. */
  leafHash: string
  /** Running hash of the input through this entry ({@link nextInputHash}), standard base64. */
  inputHash: string
  /** The invocation's CID. */
  cid: string
  /** The invocation's expiry, Unix seconds. */
  exp: number
  /** The invocation as a CAR (ucanto `archive()`), standard base64. */
  invocation: string
}

/** A refusal as recorded: the receipt's (or the HTTP answer's) error name and message. */
export interface RecordedError {
  name: string
  message: string
  /** The HTTP status, for `HTTPError` (the service refused the request itself). */
  status?: number
}

/** An outcome: the append result, a refusal, or the entry found in the log by a lookup. */
export type JournalOutcome = { type: 'outcome'; position: number; cid: string } & (
  | { ok: AppendResult }
  | { error: RecordedError }
  | { found: { index: number } }
)

/** The input's end. */
export interface JournalEnd {
  type: 'end'
  /** Entries in the input. */
  entries: number
  /** Running hash of the whole input ({@link nextInputHash}), standard base64. */
  inputHash: string
}

/** Any journal record. */
export type JournalRecord = JournalStart | JournalSigned | JournalOutcome | JournalEnd

/** What the journal knows of one input position. */
export interface JournalEntry {
  /** The latest signed invocation for it (without its CAR once an outcome is known). */
  signed: Omit<JournalSigned, 'invocation'> & { invocation?: string }
  /** Its outcome, when recorded. */
  outcome?: JournalOutcome
}

/** The journal file cannot be used: unreadable, not a journal, or for another space or service. Exit code 1. */
export class JournalError extends UcanlogError {
  override name = 'JournalError'
}

/** The input differs from the one the journal was started with. Exit code 1. */
export class JournalMismatchError extends JournalError {
  override name = 'JournalMismatch'
}

/** The running input hash before any entry: SHA-256 of a domain label, standard base64. */
export const INITIAL_INPUT_HASH = encodeBase64(createHash('sha256').update('ucanlog append journal input v1').digest())

/** The running input hash after one more entry: SHA-256(previous hash ‖ the entry's leaf hash), standard base64. */
export function nextInputHash(previous: string, leafHash: Uint8Array): string {
  return encodeBase64(createHash('sha256').update(decodeBase64(previous)).update(leafHash).digest())
}

/**
 * An open journal: what it held when opened ({@link Journal.start}, {@link Journal.entry},
 * {@link Journal.end}) and {@link Journal.record} to append to it (group-committed: records written
 * together share one write and one fsync).
 */
export class Journal {
  #fh: FileHandle
  #entries = new Map<number, JournalEntry>()
  #pending: { line: string; done: (err?: Error) => void }[] = []
  #flushing: Promise<void> | undefined
  /** The `start` record, once there is one. */
  start: JournalStart | undefined
  /** The `end` record, if the input's end was recorded. */
  end: JournalEnd | undefined

  private constructor(
    fh: FileHandle,
    readonly path: string,
  ) {
    this.#fh = fh
  }

  /**
   * Opens (creating, mode 0600) the journal at `path` and reads what it holds.
   * @throws JournalError if it cannot be opened or a complete line is not a journal record.
   */
  static async open(path: string): Promise<Journal> {
    const fh = await open(path, 'a+', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw new JournalError(`cannot open the journal ${path} (${err.code ?? err.message}); choose a writable --journal path`)
    })
    const j = new Journal(fh, path)
    try {
      const text = (await fh.readFile()).toString('utf8')
      const lines = text.split('\n')
      const torn = lines.pop() // after the last \n: empty, or a record whose write never completed
      if (torn) await fh.truncate(text.length - Buffer.byteLength(torn)).catch(() => {})
      lines.forEach((l, i) => l && j.#apply(parseRecord(l, path, i + 1)))
    } catch (err) {
      await fh.close()
      throw err
    }
    return j
  }

  /** What the journal holds for input position `position` (0-based), if anything. */
  entry(position: number): JournalEntry | undefined {
    return this.#entries.get(position)
  }

  /** Every position's record so far (signed, and outcome when known). */
  entries(): IterableIterator<JournalEntry> {
    return this.#entries.values()
  }

  /** Positions with a signed invocation recorded. */
  get size(): number {
    return this.#entries.size
  }

  /** Appends `record` and resolves once it is on disk (written and fsync'd). */
  record(record: JournalRecord): Promise<void> {
    this.#apply(record)
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ line: JSON.stringify(record) + '\n', done: (err) => (err ? reject(err) : resolve()) })
      this.#flushing ??= this.#flush()
    })
  }

  /** Closes the file (after every pending record is on disk). */
  async close(): Promise<void> {
    while (this.#flushing) await this.#flushing
    await this.#fh.close()
  }

  async #flush(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending
      this.#pending = []
      try {
        await this.#fh.write(batch.map((p) => p.line).join(''))
        await this.#fh.datasync()
        for (const p of batch) p.done()
      } catch (err) {
        const e = new JournalError(`cannot write the journal ${this.path}: ${(err as Error).message}`)
        for (const p of batch) p.done(e)
      }
    }
    this.#flushing = undefined
  }

  #apply(r: JournalRecord): void {
    if (r.type === 'start') this.start = r
    else if (r.type === 'end') this.end = r
    else if (r.type === 'signed') this.#entries.set(r.position, { signed: r })
    else {
      const e = this.#entries.get(r.position)
      if (e && e.signed.cid === r.cid) {
        e.outcome = r
        delete e.signed.invocation // answered: its bytes are never needed again
      }
    }
  }
}

function parseRecord(line: string, path: string, n: number): JournalRecord {
  let r: unknown
  try {
    r = JSON.parse(line)
  } catch {
    throw new JournalError(`${path} line ${n} is not JSON: this is not an append journal; pass another --journal`)
  }
  const type = (r as { type?: unknown } | null)?.type
  if (type !== 'start' && type !== 'signed' && type !== 'outcome' && type !== 'end') {
    throw new JournalError(`${path} line ${n} is not a journal record; pass another --journal`)
  }
  return r as JournalRecord
}

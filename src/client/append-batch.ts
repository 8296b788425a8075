/**
 * Bulk append (issue 12 items 3 and 4): appends a stream of entries as `tlog/append` invocations,
 * a bounded number in flight, and reports each entry's outcome. With a {@link Journal} it is
 * exactly-once across reruns: every invocation is signed and recorded (fsync'd) before it is sent
 * and every outcome is recorded as it comes, so a rerun with the same journal and input resends
 * the same invocation for an entry whose answer never came (the service's replay guard answers it
 * with the original result, docs/wire.md) and skips entries whose outcome is recorded.
 *
 * Limits of the journal: invocations live {@link JOURNAL_INVOCATION_LIFETIME} seconds. An
 * unanswered invocation past its `exp` cannot be resent (the service refuses it as `Expired`, and
 * forgets it): its entry is then looked up in the log (entries from the size recorded when the
 * journal started, compared by leaf hash, each log index claimed by at most one input position);
 * found, it counts as already appended, otherwise a new invocation is signed. The lookup cannot
 * tell this input's entry from identical bytes appended by someone else to the same log after the
 * journal started; it then counts the entry as appended when it may not be (never a duplicate, a
 * possible loss of an identical entry). It waits until {@link RESEND_MARGIN} seconds after `exp`,
 * so an invocation accepted just before its `exp` is in the log before it is looked for.
 */
import { Delegation, Message } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import { leafHash } from '../tlog/hash.js'
import { decodeBase64, encodeBase64 } from '../tlog/encoding.js'
import { appendInvocation, readInvocation, DEFAULT_INVOCATION_LIFETIME } from '../ucan/client.js'
import { systemNow } from '../ucan/clock.js'
import { DEFAULT_MAX_INVOCATION_LIFETIME } from '../ucan/invocation.js'
import { type AppendResult, DEFAULT_MAX_BODY_BYTES, type TlogService } from '../ucan/wire.js'
import { AppendRefusedError, RequestTooLargeError, ServiceUnreachableError } from './errors.js'
import { rootCause } from './http.js'
import type { SourceEntry } from './entries.js'
import { INITIAL_INPUT_HASH, type Journal, JournalError, JournalMismatchError, type JournalOutcome, type RecordedError, nextInputHash } from './journal.js'
import { checkAppendResult } from './receipt.js'
import type { VerifiedReceipt } from './verify-append.js'
import { VerificationFailedError } from './verify-errors.js'

/**
 * What checks each receipt: verify-append.ts `AppendVerifier` (from verify-session.ts
 * `openAppendVerification`), or anything with its `verifyReceipt`. It throws (a named error, exit
 * code 3) when the receipt does not verify.
 */
export interface ReceiptVerifier {
  verifyReceipt(receipt: API.Receipt, entry: Uint8Array, invocation?: API.Link): Promise<VerifiedReceipt>
}

/**
 * Lifetime of an invocation recorded in a journal, in seconds: the service's maximum (3600,
 * invocation.ts `DEFAULT_MAX_INVOCATION_LIFETIME`) less 60 s for a client clock ahead of the
 * service's, so a resume within the hour resends the very invocation.
 */
export const JOURNAL_INVOCATION_LIFETIME = DEFAULT_MAX_INVOCATION_LIFETIME - 60

/** Seconds before `exp` after which a recorded invocation is no longer resent, and after `exp` before its entry is looked up in the log. */
export const RESEND_MARGIN = 30

/** Delays between sends of the same invocation when no answer came (connection refused, reset, timeout), in ms. */
const NETWORK_RETRY_MS = [250, 500, 1000, 2000]

/** An error {@link appendBatch} throws once the batch started: it carries the summary of what was done before it stopped. */
export type AppendBatchError = Error & { exitCode?: number; summary?: AppendSummary }

/** What happened to one entry. */
export interface EntryOutcome {
  /** 0-based position in the input. */
  position: number
  /** 1-based input line or argument number. */
  line: number
  /**
   * `appended`: answered in this run (sent now, or an earlier run's invocation resent);
   * `already-appended`: its outcome was in the journal, or (expired, unanswered) it was found in the log;
   * `refused`: the service refused it (now, or as recorded in the journal).
   */
  status: 'appended' | 'already-appended' | 'refused'
  /** The append result, when the service's answer is known (now or from the journal). */
  result?: AppendResult
  /** The entry's index in the log, when known. */
  index?: number
  /** Why it was refused. */
  error?: RecordedError
  /** Whether an earlier run's invocation was resent for it (the same signed bytes). */
  resent?: boolean
}

/** What a batch did. */
export interface AppendSummary {
  /** Entries read from the input. */
  entries: number
  /** Entries answered as appended in this run. */
  appended: number
  /** Entries appended by an earlier run (journal), not sent again. */
  alreadyAppended: number
  /** Each refused entry, in input order, and why. */
  refused: { position: number; line: number; error: RecordedError }[]
  /** Appended entries whose result was not yet published (no checkpoint met the witness policy). */
  unpublished: number
  /** The answered result with the largest tree size, if any. */
  last?: AppendResult
  /** Lowest and highest log index of the entries appended or already appended (when known). */
  indexes?: { min: number; max: number }
  /** Whether the batch stopped early because `signal` was aborted. */
  interrupted: boolean
}

/** Options of {@link appendBatch}. */
export interface AppendBatchOptions {
  /** A connection to the service (ucan/client.ts `connect`). */
  connection: API.ConnectionView<TlogService>
  /** The agent that signs the invocations. */
  agent: API.Signer
  /** The service DID. */
  service: API.DID
  /** The space whose log the entries go to. */
  space: API.DIDKey
  /** The Agent → Service delegation each invocation carries (`delegateAgentToService`). */
  agentToService: API.Delegation
  /** Opt-in exactly-once journal ({@link Journal.open}). */
  journal?: Journal
  /** Invocations in flight at once; default 16. */
  concurrency?: number
  /** Most bytes of one request body; default {@link DEFAULT_MAX_BODY_BYTES} (the service's default `--max-body`). */
  maxBodyBytes?: number
  /** Stop at the first refused entry (default: refusals are reported, the batch goes on). */
  failFast?: boolean
  /** Invocation lifetime in seconds; default {@link JOURNAL_INVOCATION_LIFETIME} with a journal, else ucan/client.ts `DEFAULT_INVOCATION_LIFETIME`. */
  lifetime?: number
  /**
   * Verifies each receipt before its entry counts (verify-session.ts `openAppendVerification`'s
   * `verifier`; settle the run with its `finish()` after the batch, and only then call the appends
   * verified). A receipt that does not verify stops the batch with {@link VerificationFailedError}.
   * Omitted: only receipt.ts `checkAppendResult` (the result against the checkpoint it carries; no
   * signature, cosignature or consistency check), so nothing may be called verified.
   */
  verifier?: ReceiptVerifier
  /** Called with each entry's outcome as it is known (in completion order). */
  onOutcome?: (outcome: EntryOutcome) => void
  /** When aborted, no new entry is started; those in flight finish; the summary says `interrupted`. */
  signal?: AbortSignal
  /** Clock, Unix seconds, on which invocations get their `exp` and recorded ones are judged expired; default the system clock. */
  now?: () => number
}

/**
 * Appends every entry of `source` (entries.ts) and resolves to the summary.
 * @throws AppendRefusedError (exit 2) if any entry was refused, after the whole batch (at the first with `failFast`);
 * @throws ServiceUnreachableError (exit 4) when the service does not answer after retries (the batch stops);
 * @throws VerificationFailedError (exit 3) when an answer does not verify (the batch stops);
 * @throws RequestTooLargeError (exit 1) when a request would be over `maxBodyBytes`;
 * @throws JournalMismatchError / JournalError (exit 1) when the journal is for another input, space or service;
 * @throws the source's own errors (entries.ts: InvalidUtf8, InvalidBase64, EntryTooLarge) where the input is bad.
 * Every error thrown after the batch started carries `summary` (what was done before it stopped).
 */
export async function appendBatch(source: AsyncIterable<SourceEntry> | Iterable<SourceEntry>, o: AppendBatchOptions): Promise<AppendSummary> {
  const now = o.now ?? systemNow
  const journal = o.journal
  const concurrency = Math.max(1, o.concurrency ?? 16)
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const lifetime = o.lifetime ?? (journal ? JOURNAL_INVOCATION_LIFETIME : DEFAULT_INVOCATION_LIFETIME)
  const verifier = o.verifier ?? { verifyReceipt: async (receipt: API.Receipt, entry: Uint8Array) => selfConsistent(receipt, entry) }
  const summary: AppendSummary = { entries: 0, appended: 0, alreadyAppended: 0, refused: [], unpublished: 0, interrupted: false }
  let fatal: Error | undefined
  // ucan/client.ts dates invocations on the system clock: a lifetime that puts `exp` `seconds` after `now()`.
  const onClock = (seconds: number) => seconds + (now() - systemNow())

  const readLog = async (offset: number, limit: number): Promise<{ entries: Uint8Array[]; total: number }> => {
    const [receipt] = await sendRetrying(() => o.connection.execute(readInvocation({ issuer: o.agent, service: o.service, space: o.space, offset, limit, lifetime: onClock(DEFAULT_INVOCATION_LIFETIME) })))
    const out = receipt!.out as { ok?: { entries: string[]; total: number }; error?: RecordedError }
    if (out.error?.name === 'UnknownLog') return { entries: [], total: 0 }
    if (out.error) throw new AppendRefusedError(`tlog/read refused: ${out.error.name}: ${out.error.message}`)
    return { entries: out.ok!.entries.map(decodeBase64), total: out.ok!.total }
  }

  if (journal) {
    if (journal.start) {
      if (journal.start.space !== o.space || journal.start.service !== o.service) {
        throw new JournalError(`the journal ${journal.path} is for space ${journal.start.space} at service ${journal.start.service}, not ${o.space} at ${o.service}; use a new --journal`)
      }
    } else {
      const { total } = await readLog(0, 1)
      await journal.record({ type: 'start', version: 1, space: o.space, service: o.service, treeSize: total, time: now() })
    }
  }

  const report = (out: EntryOutcome): void => {
    if (out.status === 'appended') summary.appended++
    else if (out.status === 'already-appended') summary.alreadyAppended++
    else summary.refused.push({ position: out.position, line: out.line, error: out.error! })
    if (out.result && (summary.last === undefined || out.result.treeSize > summary.last.treeSize)) summary.last = out.result
    if (out.result && !out.result.published && out.status === 'appended') summary.unpublished++
    const index = out.index ?? out.result?.index
    if (index !== undefined && out.status !== 'refused') {
      summary.indexes = summary.indexes ? { min: Math.min(summary.indexes.min, index), max: Math.max(summary.indexes.max, index) } : { min: index, max: index }
    }
    o.onOutcome?.(out)
    if (out.status === 'refused' && o.failFast) fatal ??= refusedError(summary)
  }

  // The log's entries since the journal started, by leaf hash, for expired unanswered invocations (built once, when first needed).
  let logIndex: Promise<{ byHash: Map<string, number[]>; claimed: Set<number> }> | undefined
  const lookup = async (hash: Uint8Array): Promise<number | undefined> => {
    logIndex ??= (async () => {
      const byHash = new Map<string, number[]>()
      const claimed = new Set<number>()
      for (const e of journal!.entries()) {
        const oc = e.outcome
        if (oc && 'ok' in oc) claimed.add(oc.ok.index)
        if (oc && 'found' in oc) claimed.add(oc.found.index)
      }
      for (let offset = journal!.start!.treeSize; ; ) {
        const { entries, total } = await readLog(offset, 1000)
        entries.forEach((e, i) => {
          const h = encodeBase64(leafHash(e))
          byHash.set(h, [...(byHash.get(h) ?? []), offset + i])
        })
        offset += entries.length
        if (entries.length === 0 || offset >= total) break
      }
      return { byHash, claimed }
    })()
    const { byHash, claimed } = await logIndex
    const index = byHash.get(encodeBase64(hash))?.find((i) => !claimed.has(i))
    if (index !== undefined) claimed.add(index)
    return index
  }

  const handle = async (e: SourceEntry, hash: Uint8Array, inputHash: string): Promise<void> => {
    const known = journal?.entry(e.position)
    if (known?.outcome) return report(fromJournal(e, known.outcome))
    let invocation: API.Delegation | undefined
    let resent = false
    if (known) {
      const t = now()
      if (known.signed.invocation !== undefined && t < known.signed.exp - RESEND_MARGIN) {
        invocation = await extract(known.signed.invocation)
        resent = true
      } else {
        const after = known.signed.exp + RESEND_MARGIN
        if (t <= after) await new Promise((r) => setTimeout(r, (after - t + 1) * 1000))
        const index = await lookup(hash)
        if (index !== undefined) {
          await journal!.record({ type: 'outcome', position: e.position, cid: known.signed.cid, found: { index } })
          return report({ position: e.position, line: e.line, status: 'already-appended', index })
        }
      }
    }
    if (invocation === undefined) {
      const inv = await appendInvocation({ agent: o.agent, service: o.service, space: o.space, entry: e.bytes, agentToService: o.agentToService, lifetime: onClock(lifetime) })
      invocation = (await inv.delegate()) as API.Delegation
      const size = requestSize(await Message.build({ invocations: [invocation as unknown as API.Invocation] }))
      if (size > maxBody) {
        throw new RequestTooLargeError(`line ${e.line}: the request would be ${size} bytes, over the service's body limit of ${maxBody} bytes (--max-body-bytes); the entry is ${e.bytes.length} bytes and the proof chain ${size - e.bytes.length} bytes`)
      }
      if (journal) {
        const car = await invocation.archive()
        if (car.error) throw car.error
        await journal.record({ type: 'signed', position: e.position, line: e.line, leafHash: encodeBase64(hash), inputHash, cid: invocation.cid.toString(), exp: invocation.expiration, invocation: encodeBase64(car.ok) })
      }
    }
    const cid = invocation.cid.toString()
    let receipt: API.Receipt
    try {
      ;[receipt] = (await sendRetrying(() => o.connection.execute(invocation as never))) as unknown as [API.Receipt]
    } catch (err) {
      const status = (err as { status?: unknown }).status
      if (typeof status !== 'number') throw err
      const error = { name: 'HTTPError', status, message: `the service answered HTTP ${status}${(err as { statusText?: string }).statusText ? ` ${(err as { statusText?: string }).statusText}` : ''} (nothing was appended)` }
      await journal?.record({ type: 'outcome', position: e.position, cid, error })
      return report({ position: e.position, line: e.line, status: 'refused', error, resent })
    }
    let verdict: VerifiedReceipt
    try {
      verdict = await verifier.verifyReceipt(receipt, e.bytes, invocation.cid)
    } catch (err) {
      // Not recorded: a rerun with the journal resends the same invocation and verifies the answer again.
      throw new VerificationFailedError(`line ${e.line}: the service's answer does not verify: ${(err as Error).name}: ${(err as Error).message}`, { cause: err })
    }
    if (verdict.status === 'refused') {
      await journal?.record({ type: 'outcome', position: e.position, cid, error: verdict.error })
      return report({ position: e.position, line: e.line, status: 'refused', error: verdict.error, resent })
    }
    await journal?.record({ type: 'outcome', position: e.position, cid, ok: verdict.result })
    report({ position: e.position, line: e.line, status: 'appended', result: verdict.result, resent })
  }

  const inflight = new Set<Promise<void>>()
  let inputHash = INITIAL_INPUT_HASH
  let ended = false
  try {
    for await (const e of source) {
      if (fatal) break
      if (o.signal?.aborted) {
        summary.interrupted = true
        break
      }
      const hash = leafHash(e.bytes)
      inputHash = nextInputHash(inputHash, hash)
      summary.entries++
      if (journal) {
        const known = journal.entry(e.position)
        if ((journal.end && e.position >= journal.end.entries) || (known && known.signed.inputHash !== inputHash)) {
          throw new JournalMismatchError(
            `line ${e.line} differs from the input the journal ${journal.path} was started with; rerun with that same input, or use a new --journal for this one`,
          )
        }
      }
      while (inflight.size >= concurrency && !fatal) await Promise.race(inflight)
      if (fatal) break
      const p: Promise<void> = handle(e, hash, inputHash)
        .catch((err: Error) => void (fatal ??= err))
        .finally(() => inflight.delete(p))
      inflight.add(p)
    }
    ended = !fatal && !summary.interrupted
  } catch (err) {
    fatal ??= err as Error
  }
  await Promise.all(inflight)
  if (ended && journal && !fatal) {
    if (journal.end && (journal.end.entries !== summary.entries || journal.end.inputHash !== inputHash)) {
      fatal = new JournalMismatchError(`the input ends after ${summary.entries} entries, the one the journal ${journal.path} was started with after ${journal.end.entries}; rerun with that same input, or use a new --journal`)
    } else if (!journal.end) {
      await journal.record({ type: 'end', entries: summary.entries, inputHash }).catch((err: Error) => void (fatal ??= err))
    }
  }
  summary.refused.sort((a, b) => a.position - b.position)
  if (fatal) {
    ;(fatal as AppendBatchError).summary = summary
    throw fatal
  }
  if (summary.refused.length > 0) throw Object.assign(refusedError(summary), { summary })
  return summary
}

/**
 * Without a verifier: the receipt's refusal, or its result checked against the checkpoint it
 * carries (receipt.ts `checkAppendResult`), nothing more. Never call such an append verified.
 */
function selfConsistent(receipt: API.Receipt, entry: Uint8Array): VerifiedReceipt {
  const out = receipt.out as { ok?: AppendResult; error?: { name?: unknown; message?: unknown } }
  if (out.error !== undefined || out.ok === undefined) return { status: 'refused', error: { name: String(out.error?.name ?? 'Error'), message: String(out.error?.message ?? 'no result') } }
  if (!out.ok.published) return { status: 'unpublished', result: out.ok }
  checkAppendResult(out.ok, entry)
  return { status: 'verified', result: out.ok }
}

function refusedError(summary: AppendSummary): AppendRefusedError {
  const first = [...summary.refused].sort((a, b) => a.position - b.position)[0]!
  const more = summary.refused.length - 1
  return new AppendRefusedError(
    `append refused: ${first.error.name}: ${first.error.message} (line ${first.line})${more > 0 ? `; ${more} more entr${more === 1 ? 'y' : 'ies'} refused, listed in the summary` : ''}`,
  )
}

function fromJournal(e: SourceEntry, oc: JournalOutcome): EntryOutcome {
  if ('ok' in oc) return { position: e.position, line: e.line, status: 'already-appended', result: oc.ok }
  if ('found' in oc) return { position: e.position, line: e.line, status: 'already-appended', index: oc.found.index }
  return { position: e.position, line: e.line, status: 'refused', error: { name: oc.error.name, message: `${oc.error.message} (refused in an earlier run)` } }
}

async function extract(carBase64: string): Promise<API.Delegation> {
  const r = await Delegation.extract(decodeBase64(carBase64))
  if (r.error) throw new JournalError(`a recorded invocation does not decode: ${r.error.message}; the journal is damaged, use a new --journal`)
  return r.ok
}

function requestSize(message: API.AgentMessage): number {
  return CAR.request.encode(message as never).body.byteLength
}

/** Receipt errors after which the same invocation is sent again (docs/wire.md: nothing ran, or not yet). */
const RESEND_REFUSALS = new Set(['RateLimited', 'InvocationPending'])

/**
 * Sends, resending the same request while nothing was answered: a network failure (no HTTP status)
 * is retried after {@link NETWORK_RETRY_MS}, then thrown as ServiceUnreachableError; HTTP 429 or a
 * `RateLimited` or `InvocationPending` receipt (nothing ran, or another instance of the service is
 * still running this same invocation) waits 1 s doubling to 8 s, for at most 5 minutes. Resending
 * is safe: it is the same signed invocation, and the service's replay guard answers a repeat with
 * the first result. Other HTTP statuses are thrown as they come (with `status`).
 */
export async function sendRetrying<T>(send: () => T | PromiseLike<T>): Promise<Awaited<T>> {
  let network = 0
  let delay = 1000
  let waited = 0
  for (;;) {
    try {
      const answer = await send()
      const [r] = answer as unknown as [{ out?: { error?: { name?: string } } } | undefined]
      if (!RESEND_REFUSALS.has(r?.out?.error?.name ?? '') || waited >= 300_000) return answer
    } catch (err) {
      const status = (err as { status?: unknown }).status
      if (typeof status !== 'number') {
        if (network >= NETWORK_RETRY_MS.length) throw new ServiceUnreachableError(`no answer from the service (${rootCause(err)})`, { cause: err })
        await new Promise((r) => setTimeout(r, NETWORK_RETRY_MS[network++]))
        continue
      }
      if (status !== 429 || waited >= 300_000) throw err
    }
    await new Promise((r) => setTimeout(r, delay))
    waited += delay
    delay = Math.min(delay * 2, 8000)
  }
}

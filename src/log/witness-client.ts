/**
 * The log side of c2sp.org/tlog-witness: asks every witness of the policy to cosign a checkpoint and
 * collects cosignatures (c2sp.org/tlog-cosignature) until the policy's quorum (c2sp.org/tlog-policy)
 * is met.
 *
 * One client per log: a witness keeps one tree size per origin, and the client remembers, per witness
 * URL, the size that witness last cosigned so the next request carries the right `old` size and
 * consistency proof. On a 409 with `Content-Type: text/x.tlog.size` it resyncs to the witness's size;
 * a size larger than the log's own is a permanent error for that round (it would mean the witness saw
 * a different log).
 */
import {
  type Hash,
  type Policy,
  encodeBase64,
  openNote,
  parseNote,
} from '../tlog/index.js'

/** Default per-witness request timeout (ms), as Tessera's DefaultWitnessTimeout. */
export const DEFAULT_WITNESS_TIMEOUT_MS = 1000
/** Retries of one witness after a 409 resync, per round. */
const MAX_TRIES = 3

/** Options for {@link WitnessClient}, validated by the service's configuration. */
export interface WitnessClientOptions {
  /** The parsed policy; only witnesses with a URL are asked. */
  policy: Policy
  /** Per-witness timeout in ms (default {@link DEFAULT_WITNESS_TIMEOUT_MS}). */
  timeoutMs?: number
  /** Wait for every witness until the timeout instead of stopping at quorum (default false). */
  greedy?: boolean
  fetch?: typeof fetch
  /**
   * Schedules a round's timeout: calls `fire` once `ms` milliseconds have passed unless the returned
   * function cancels it first. Default: `setTimeout`/`clearTimeout` (tests inject one they fire by hand).
   */
  timer?: (ms: number, fire: () => void) => () => void
  /** Called with per-witness failures, for logs and metrics. */
  onWitnessError?: (url: string, message: string) => void
}

/** The outcome of one cosigning round. */
export interface CosignResult {
  /** The checkpoint note with the log signature(s) and every verified cosignature line appended. */
  note: string
  /** Names of the policy witnesses whose cosignature verified. */
  cosigned: Set<string>
  /** True when `cosigned` meets the policy's quorum. */
  satisfied: boolean
}

/** Supplies RFC 6962 §2.1.2 consistency proofs from the log's own tiles: oldSize → the new size. */
export type ProveConsistency = (oldSize: number) => Promise<Hash[]>

class PermanentWitnessError extends Error {}

/** The witness client of one log (see the module comment); `cosign` is one round. */
/**
 * The witness client of one log (c2sp.org/tlog-witness v1 client side). `cosign` may be called for
 * successive checkpoints of that log; calls must not overlap (the log engine serializes them).
 */
export class WitnessClient {
  private readonly lastSize = new Map<string, number>()
  private readonly urls: Map<string, string[]>
  private readonly timeoutMs: number
  private readonly fetch: typeof fetch

  constructor(private readonly opts: WitnessClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_WITNESS_TIMEOUT_MS
    this.fetch = opts.fetch ?? globalThis.fetch
    // One request per witness URL, even if several policy witnesses share it (Tessera PR #1028);
    // URLs that differ only in spelling (case of the host, a trailing slash) are the same witness.
    this.urls = new Map()
    for (const w of opts.policy.witnesses) {
      if (!w.url) continue
      const url = submissionPrefix(w.url)
      const names = this.urls.get(url) ?? []
      names.push(w.name)
      this.urls.set(url, names)
    }
  }

  /**
   * Sends the log-signed `checkpoint` (a signed note of tree size `size`) to every witness URL in
   * parallel and resolves as soon as the quorum is met (or, when greedy, when all answered or timed
   * out), or when every witness has answered or timed out without meeting it.
   */
  async cosign(checkpoint: string, size: number, prove: ProveConsistency): Promise<CosignResult> {
    const cosigned = new Set<string>()
    const lines: string[] = []
    const quorum = () => this.opts.policy.satisfied(cosigned)
    if (this.urls.size === 0 || (quorum() && !this.opts.greedy)) return { note: checkpoint, cosigned, satisfied: quorum() }

    const proofs = new Map<number, Promise<Hash[]>>() // shared per round: most witnesses need the same proof
    const proofFor = (old: number) => {
      let p = proofs.get(old)
      if (!p) proofs.set(old, (p = prove(old)))
      return p
    }
    let finish!: () => void
    const done = new Promise<void>((resolve) => (finish = resolve))
    const controller = new AbortController()
    let timedOut = false
    const tasks = [...this.urls].map(async ([url, names]) => {
      try {
        const sigLines = await this.submit(url, checkpoint, size, proofFor, controller.signal)
        for (const name of names) {
          const w = this.opts.policy.witnesses.find((x) => x.name === name)!
          for (const line of sigLines) {
            try {
              const opened = openNote(checkpoint + line, [w.verifier])
              if (opened.verified.length > 0) {
                cosigned.add(name)
                lines.push(line)
              }
            } catch {
              // a line for another key at this URL, or an invalid one: not counted
            }
          }
          if (!cosigned.has(name)) this.opts.onWitnessError?.(url, `no valid cosignature from ${name}`)
        }
      } catch (err) {
        if (timedOut) this.opts.onWitnessError?.(url, `no answer within ${this.timeoutMs} ms`)
        else if (!controller.signal.aborted) this.opts.onWitnessError?.(url, (err as Error).message)
        // else: the quorum was met and this straggler was cancelled
      }
      if (quorum() && !this.opts.greedy) finish()
    })
    const cancelTimer = (this.opts.timer ?? realTimer)(this.timeoutMs, () => {
      timedOut = true
      controller.abort()
    })
    await Promise.race([Promise.allSettled(tasks), done])
    cancelTimer()
    controller.abort() // stop stragglers once the quorum is met
    const note = checkpoint + [...new Set(lines)].join('')
    return { note, cosigned: new Set(cosigned), satisfied: quorum() }
  }

  /** One witness: up to {@link MAX_TRIES} requests, resyncing the old size on a 409. Returns its signature lines. */
  private async submit(
    url: string,
    checkpoint: string,
    size: number,
    proofFor: ProveConsistency,
    signal: AbortSignal,
  ): Promise<string[]> {
    for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
      let old = this.lastSize.get(url) ?? 0
      if (old > size) old = 0 // the log cannot prove from a size it does not have; ask the witness
      const proof = old === 0 || old === size ? [] : await proofFor(old)
      const body = `old ${old}\n` + proof.map((h) => encodeBase64(h) + '\n').join('') + '\n' + checkpoint
      const res = await this.fetch(new URL('add-checkpoint', url), {
        method: 'POST',
        body,
        signal,
        redirect: 'error',
      })
      const text = await res.text()
      if (res.status === 200) {
        this.lastSize.set(url, size)
        return parseSignatureLines(text)
      }
      // 409 means "your old size is wrong, here is mine" only with this media type; without it
      // (tlog-witness v1.0.0) it is a same-size root mismatch, a permanent error below.
      if (res.status === 409 && mediaType(res.headers.get('content-type')) === 'text/x.tlog.size') {
        const theirs = parseSize(text.trim())
        if (theirs > size) throw new PermanentWitnessError(`witness is at size ${theirs}, ahead of the log's ${size}`)
        this.lastSize.set(url, theirs)
        continue
      }
      if (res.status === 403 || res.status === 404) throw new PermanentWitnessError(`witness does not know this log (${res.status}: ${text.trim().slice(0, 100)})`)
      throw new PermanentWitnessError(`witness answered ${res.status}: ${text.trim().slice(0, 100)}`)
    }
    throw new PermanentWitnessError('witness kept answering 409')
  }
}

/** The default {@link WitnessClientOptions.timer}: `setTimeout`, cancelled by `clearTimeout`. */
function realTimer(ms: number, fire: () => void): () => void {
  const t = setTimeout(fire, ms)
  return () => clearTimeout(t)
}

/** A witness URL as a submission prefix ending in "/", so `add-checkpoint` resolves below it. */
function submissionPrefix(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url.endsWith('/') ? url : url + '/' // not a URL: every request fails and is reported
  }
  if (!u.pathname.endsWith('/')) u.pathname += '/'
  return u.href
}

/** The media type of a Content-Type header, lowercased, without parameters. */
function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase()
}

/** Parses a 200 add-checkpoint body: one or more note signature lines, nothing else. */
function parseSignatureLines(body: string): string[] {
  if (!body.endsWith('\n')) throw new PermanentWitnessError('cosignature response does not end in a newline')
  // Reuse the note parser for the syntax of signature lines: a dummy text plus the body.
  parseNote('x\n\n' + body)
  return body
    .slice(0, -1)
    .split('\n')
    .map((l) => l + '\n')
}

function parseSize(s: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw new PermanentWitnessError('malformed text/x.tlog.size body')
  return Number(s)
}

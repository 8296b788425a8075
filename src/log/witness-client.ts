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
/**
 * The most bytes read from one witness response (c2sp.org/tlog-witness add-checkpoint: a 200 is one
 * cosignature line per key at that URL, ~130 bytes each; a 409 is a decimal size): beyond it the
 * answer is refused with {@link WitnessResponseTooLarge} and the connection dropped, so a witness
 * sending an endless body costs at most this much memory.
 */
export const MAX_WITNESS_RESPONSE_BYTES = 4096
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
  /** Called with every per-URL failure of every round (each request that failed or answered no valid cosignature). */
  onWitnessError?: (url: string, message: string) => void
  /**
   * Called for each round a policy witness (by name) did not cosign, with `episodeStart` true for
   * the first such round since this client started or since that witness last cosigned: log on
   * `episodeStart` (once per failure episode, not once per checkpoint), count every call. A
   * witness cancelled because the quorum was already met neither fails nor recovers.
   */
  onWitnessFailure?: (e: { name: string; url: string; message: string; episodeStart: boolean }) => void
  /** Called when a policy witness whose failure episode was reported cosigns again (the episode ends). */
  onWitnessRecovered?: (e: { name: string; url: string }) => void
}

/** A witness response body longer than {@link MAX_WITNESS_RESPONSE_BYTES}: not read further, not counted. */
export class WitnessResponseTooLarge extends Error {
  override name = 'WitnessResponseTooLarge'
  constructor(max: number) {
    super(`witness response has more than ${max} bytes`)
  }
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
  /** Names of the policy witnesses in a failure episode (reported failing, not cosigned since). */
  private readonly failing = new Set<string>()
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
          if (cosigned.has(name)) this.recovered(name, url)
          else {
            this.opts.onWitnessError?.(url, `no valid cosignature from ${name}`)
            this.failed(name, url, `no valid cosignature from ${name}`)
          }
        }
      } catch (err) {
        const message = timedOut ? `no answer within ${this.timeoutMs} ms` : controller.signal.aborted ? undefined : describe(err)
        // undefined: the quorum was met and this straggler was cancelled
        if (message !== undefined) {
          this.opts.onWitnessError?.(url, message)
          for (const name of names) this.failed(name, url, message)
        }
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

  /** Reports a round `name` did not cosign (see {@link WitnessClientOptions.onWitnessFailure}). */
  private failed(name: string, url: string, message: string): void {
    const episodeStart = !this.failing.has(name)
    this.failing.add(name)
    this.opts.onWitnessFailure?.({ name, url, message, episodeStart })
  }

  /** Ends `name`'s failure episode, if any (see {@link WitnessClientOptions.onWitnessRecovered}). */
  private recovered(name: string, url: string): void {
    if (this.failing.delete(name)) this.opts.onWitnessRecovered?.({ name, url })
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
      const text = await readBounded(res, MAX_WITNESS_RESPONSE_BYTES)
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

/**
 * The body of `res` as UTF-8, read up to `max` bytes.
 * @throws WitnessResponseTooLarge past `max` bytes (the body is cancelled, the connection dropped).
 */
async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let n = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    n += value.byteLength
    if (n > max) {
      await reader.cancel().catch(() => {})
      throw new WitnessResponseTooLarge(max)
    }
    chunks.push(value)
  }
  const all = new Uint8Array(n)
  let at = 0
  for (const c of chunks) all.set(c, (at += c.byteLength) - c.byteLength)
  return new TextDecoder().decode(all)
}

/**
 * A failure's message, with its name when it is a named error (WitnessResponseTooLarge: …) and the
 * network cause of a failed fetch (`fetch failed: ECONNRESET`), never a stack.
 */
function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } }
  const head = e instanceof WitnessResponseTooLarge ? `${e.name}: ${e.message}` : String(e?.message ?? e)
  const cause = e?.cause?.code ?? e?.cause?.message
  return cause ? `${head}: ${cause}` : head
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

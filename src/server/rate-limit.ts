/**
 * Per-key token buckets for the RPC route's admission control: one bucket per agent (the
 * verified invocation issuer) and one per space (the invocation's `with`). A request is admitted
 * only if every bucket it touches has a token for each of its invocations; otherwise nothing is
 * taken and the caller answers HTTP 429 with `Retry-After` (RFC 9110 §10.2.3, whole seconds).
 */

/** Default sustained rate per agent, invocations per second. */
export const DEFAULT_AGENT_RATE = 100
/** Default burst per agent, invocations. */
export const DEFAULT_AGENT_BURST = 1000
/** Default sustained rate per space, invocations per second. */
export const DEFAULT_SPACE_RATE = 200
/** Default burst per space, invocations. */
export const DEFAULT_SPACE_BURST = 2000
/** Most keys a limiter tracks; full buckets (which carry no state) are dropped first. */
export const DEFAULT_MAX_KEYS = 100_000

/** Options of {@link TokenBuckets}. */
export interface TokenBucketOptions {
  /** Refill rate, tokens per second; 0 disables the limiter (everything is admitted). */
  rate: number
  /** Bucket capacity, tokens (≥ 1 when `rate` > 0). */
  burst: number
  /** Clock in milliseconds; default `Date.now`. */
  now?: () => number
  /** Most keys tracked; default {@link DEFAULT_MAX_KEYS}. */
  maxKeys?: number
}

/** Token buckets keyed by string, all with the same rate and burst. Not shared across processes. */
export class TokenBuckets {
  readonly rate: number
  readonly burst: number
  readonly #now: () => number
  readonly #max: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  /** @throws RangeError for a negative rate, or a burst < 1 with a positive rate. */
  constructor(o: TokenBucketOptions) {
    if (!(o.rate >= 0) || !Number.isFinite(o.rate)) throw new RangeError('rate must be ≥ 0')
    if (o.rate > 0 && !(o.burst >= 1)) throw new RangeError('burst must be ≥ 1')
    this.rate = o.rate
    this.burst = o.burst
    this.#now = o.now ?? Date.now
    this.#max = o.maxKeys ?? DEFAULT_MAX_KEYS
  }

  /**
   * Seconds until `key` has `n` tokens (0 if it has them now). More than `burst` tokens can never
   * be available at once; asking for them answers the time to a full bucket.
   */
  wait(key: string, n: number): number {
    if (this.rate === 0) return 0
    const have = this.#tokens(key)
    const need = Math.min(n, this.burst) - have
    return need <= 0 ? 0 : need / this.rate
  }

  /** Takes `n` tokens from `key` (call after {@link wait} answered 0 for every bucket involved). */
  take(key: string, n: number): void {
    if (this.rate === 0) return
    const tokens = this.#tokens(key) - n
    this.#buckets.delete(key)
    this.#buckets.set(key, { tokens, at: this.#now() })
    if (this.#buckets.size > this.#max) this.#evict()
  }

  #tokens(key: string): number {
    const b = this.#buckets.get(key)
    if (b === undefined) return this.burst
    return Math.min(this.burst, b.tokens + ((this.#now() - b.at) / 1000) * this.rate)
  }

  /** Drops full buckets (no state lost), then the least recently used until under the cap. */
  #evict(): void {
    for (const key of this.#buckets.keys()) if (this.#tokens(key) >= this.burst) this.#buckets.delete(key)
    while (this.#buckets.size > this.#max) this.#buckets.delete(this.#buckets.keys().next().value as string)
  }
}

/** The per-agent and per-space limits of {@link createAdmission}. */
export interface AdmissionOptions {
  agent: TokenBucketOptions
  space: TokenBucketOptions
}

/**
 * An `admit` hook for `createUcanService`: counts each verified invocation against its issuer's
 * bucket and its resource's (space's) bucket; answers the seconds to wait (the largest over the
 * buckets involved) when any lacks tokens, taking nothing, or undefined after taking them.
 */
export function createAdmission(o: AdmissionOptions): (invocations: readonly { issuer: string; resource: string }[]) => number | undefined {
  const agents = new TokenBuckets(o.agent)
  const spaces = new TokenBuckets(o.space)
  return (invocations) => {
    const perAgent = new Map<string, number>()
    const perSpace = new Map<string, number>()
    for (const { issuer, resource } of invocations) {
      perAgent.set(issuer, (perAgent.get(issuer) ?? 0) + 1)
      perSpace.set(resource, (perSpace.get(resource) ?? 0) + 1)
    }
    let wait = 0
    for (const [k, n] of perAgent) wait = Math.max(wait, agents.wait(k, n))
    for (const [k, n] of perSpace) wait = Math.max(wait, spaces.wait(k, n))
    if (wait > 0) return wait
    for (const [k, n] of perAgent) agents.take(k, n)
    for (const [k, n] of perSpace) spaces.take(k, n)
    return undefined
  }
}

/**
 * Admission control of the RPC route (src/ucan/admission.ts `Admission`): per-key token buckets for
 * client addresses, agents (verified invocation issuers) and spaces, a memory of the signed
 * invocations already charged, and the fair scheduler that hands out turns on the CPU
 * round-robin across client addresses (fair-scheduler.ts).
 *
 * Who pays: every invocation costs its client address before any work (forged, replayed and
 * unauthorized traffic is paid by its sender); a verified issuer pays once per signed invocation,
 * whatever its outcome (a replay of an invocation already charged costs its issuer nothing); a
 * space pays only for a write a verified chain authorized. A refusal answers the seconds to wait
 * (HTTP 429 `Retry-After`, RFC 9110 §10.2.3, in whole seconds, or a `RateLimited` receipt).
 */
import { isIPv4, isIPv6 } from 'node:net'
import type { Admission, Charge, RequestContext } from '../ucan/admission.js'
import { DEFAULT_AUTHORIZE_CONCURRENCY, DEFAULT_CLIENT_CONCURRENCY, DEFAULT_CLIENT_QUEUE, DEFAULT_MAX_QUEUED_REQUESTS, FairScheduler } from './fair-scheduler.js'

/** Default sustained rate per client address, invocations per second. */
export const DEFAULT_CLIENT_RATE = 100
/** Default burst per client address, invocations. */
export const DEFAULT_CLIENT_BURST = 1000
/** Default most signed invocations remembered as charged (replays of them are free to their issuer). */
export const DEFAULT_CHARGE_MEMORY = 100_000
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
  /**
   * Clock in milliseconds, read only for intervals (refill since a bucket's last take); default
   * `performance.now` (monotonic: a wall-clock jump neither stalls nor refills a bucket). A clock
   * that goes back counts as no time elapsed.
   */
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
    this.#now = o.now ?? (() => performance.now())
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
    const t = this.#now()
    if (t < b.at) b.at = t // the clock went back: no time elapsed, and refill resumes from now
    return Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rate)
  }

  /** Drops full buckets (no state lost), then the least recently used until under the cap. */
  #evict(): void {
    for (const key of this.#buckets.keys()) if (this.#tokens(key) >= this.burst) this.#buckets.delete(key)
    while (this.#buckets.size > this.#max) this.#buckets.delete(this.#buckets.keys().next().value as string)
  }
}

/**
 * The signed invocations already charged to their issuer, each until its `exp` (Unix seconds,
 * inclusive). At most `max`; when full, expired ones are swept (at most once a second) and then
 * the oldest forgotten, so a replay of a forgotten invocation is charged to its issuer again,
 * once. Filling it costs the filler's own address a token per entry. Ids are admission.ts `chargeId`
 * digests (44 characters), so an entry is ~100 B of heap whatever the issuer's key.
 */
export class ChargeMemory {
  readonly #seen = new Map<string, number>()
  readonly #max: number
  readonly #now: () => number
  #nextSweep = -Infinity

  /** @param max integer ≥ 1. @param now clock in milliseconds. @throws RangeError for a bad max. */
  constructor(max: number, now: () => number = Date.now) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer')
    this.#max = max
    this.#now = now
  }

  /** Whether `id` was charged and its `exp` has not passed. */
  has(id: string): boolean {
    const exp = this.#seen.get(id)
    return exp !== undefined && exp >= this.#now() / 1000
  }

  /** Remembers `id` as charged until `expiresAt` (Unix seconds; Infinity = until forgotten). */
  add(id: string, expiresAt: number): void {
    this.#seen.delete(id)
    if (this.#seen.size >= this.#max) {
      const t = this.#now() / 1000
      if (t >= this.#nextSweep) {
        for (const [k, exp] of this.#seen) if (exp < t) this.#seen.delete(k)
        this.#nextSweep = t + 1
      }
      while (this.#seen.size >= this.#max) this.#seen.delete(this.#seen.keys().next().value as string)
    }
    this.#seen.set(id, expiresAt)
  }

  /** Invocations remembered. */
  get size(): number {
    return this.#seen.size
  }
}

/**
 * The bucket key of a client address: an IPv4 address as is (also when IPv4-mapped, `::ffff:a.b.c.d`),
 * an IPv6 address by its /64 prefix (one subscriber usually holds a whole /64), anything else
 * (including no address) as given or `''`.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined) return ''
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!
  if (!isIPv6(address)) return address
  const [head = '', tail] = address.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`
}

/** The limits of {@link createAdmission}. */
export interface AdmissionOptions {
  /** Per client address (the TCP peer, IPv6 by /64: {@link clientKey}); requests with no address share one bucket. */
  client: TokenBucketOptions
  /** Per verified issuer. */
  agent: TokenBucketOptions
  /** Per space, for authorized writes only. */
  space: TokenBucketOptions
  /** Most turns (requests and invocations worked on) held at once per client address; default {@link DEFAULT_CLIENT_CONCURRENCY}. */
  concurrency?: number
  /** Most turns held at once in the whole service; default {@link DEFAULT_AUTHORIZE_CONCURRENCY}. */
  globalConcurrency?: number
  /** Most turns one client address may have waiting; default {@link DEFAULT_CLIENT_QUEUE}. */
  queue?: number
  /** Most turns all client addresses together may have waiting (the heaviest address's newest is shed past it); default {@link DEFAULT_MAX_QUEUED_REQUESTS}. */
  queueTotal?: number
  /** Longest wait for a turn, ms (0 = unbounded, the default); past it → ServiceBusy. */
  queueWaitMs?: number
  /** Most signed invocations remembered as charged; default {@link DEFAULT_CHARGE_MEMORY}. */
  memory?: number
  /** Clock of the charge memory, milliseconds; default `Date.now`. */
  now?: () => number
}

/**
 * The service's {@link Admission}: client-address, agent and space token buckets, a
 * {@link ChargeMemory} and a {@link FairScheduler} of authorizations across addresses. Refusals take nothing.
 * @throws RangeError for bad rates, bursts, concurrency or memory.
 */
export function createAdmission(o: AdmissionOptions): Admission {
  const clients = createClientLimit(o.client)
  const agents = new TokenBuckets(o.agent)
  const spaces = new TokenBuckets(o.space)
  const charged = new ChargeMemory(o.memory ?? DEFAULT_CHARGE_MEMORY, o.now)
  const slots = new FairScheduler({
    max: o.globalConcurrency ?? DEFAULT_AUTHORIZE_CONCURRENCY,
    perKey: o.concurrency ?? DEFAULT_CLIENT_CONCURRENCY,
    maxQueued: o.queue ?? DEFAULT_CLIENT_QUEUE,
    maxQueuedTotal: o.queueTotal ?? DEFAULT_MAX_QUEUED_REQUESTS,
    maxWaitMs: o.queueWaitMs ?? 0,
  })
  const address = (r: RequestContext) => clientKey(r.client)
  return {
    request: (n, r) => clients(r.client, { n }),
    turn: (r, o) => slots.acquire(address(r), o),
    check(c) {
      if (charged.has(c.id)) return undefined
      const wait = agents.wait(c.issuer, 1)
      return wait > 0 ? wait : undefined
    },
    charge(c: Charge) {
      if (charged.has(c.id)) return undefined
      const wait = Math.max(agents.wait(c.issuer, 1), c.space === undefined ? 0 : spaces.wait(c.space, 1))
      if (wait > 0) return wait
      agents.take(c.issuer, 1)
      if (c.space !== undefined) spaces.take(c.space, 1)
      charged.add(c.id, c.expiresAt)
      return undefined
    },
    debit(c) {
      if (charged.has(c.id)) return
      agents.take(c.issuer, 1)
      charged.add(c.id, c.expiresAt)
    },
  }
}

/**
 * A per-client-address limit: a token bucket per {@link clientKey} (unknown clients share one), for
 * every invocation (the admission's client bucket) or for one kind of rare, costly operation
 * (creating a log, recording a revocation). The returned function charges `n` (default 1) to
 * `client`, all or nothing, and answers undefined, or answers the seconds until they could be
 * taken (nothing taken); with `dryRun` it only answers (nothing taken either way).
 * @param o.rate operations per second (0 = unlimited), @param o.burst operations (≥ 1 when rate > 0).
 * @throws RangeError for a bad rate or burst.
 */
export function createClientLimit(o: TokenBucketOptions): (client: string | undefined, opts?: { n?: number; dryRun?: boolean }) => number | undefined {
  const buckets = new TokenBuckets(o)
  return (client, opts) => {
    const key = clientKey(client)
    const n = opts?.n ?? 1
    const wait = buckets.wait(key, n)
    if (wait > 0) return wait
    if (!opts?.dryRun) buckets.take(key, n)
    return undefined
  }
}

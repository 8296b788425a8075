/**
 * Bounds on what `tlog/read` responses may hold: one byte budget per RPC request, shared by all
 * its invocations (so 64 reads in one small request cannot ask for 64 full pages), and one
 * service-wide pool of response bytes in flight (so many such requests at once cannot hold an
 * unbounded amount of memory), of which one client address may hold at most a quarter (so one
 * address reading hard cannot refuse everyone else's reads). Bytes are counted as the base64 text
 * of the entries returned.
 */

/** Bytes of entry text (standard base64) all reads of one request may return together, by default. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

/** Bytes of read responses all requests in flight may hold together, by default (16 full budgets). */
export const DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT = 64 * 1024 * 1024

/** The response budget of one request. */
export interface RequestBudget {
  /** Bytes still available to this request's reads. */
  remaining(): number
  /** Records `bytes` returned by a read (≤ `remaining()`). */
  charge(bytes: number): void
  /**
   * Runs `read` once every read of this request started before it has finished, so concurrent
   * reads of one request see each other's charges (no two spend the same bytes).
   */
  serialize<T>(read: () => Promise<T>): Promise<T>
  /** Returns this request's reservation to the pool. Idempotent. */
  release(): void
}

/** The service-wide pool that request budgets are reserved from. */
export interface ResponsePool {
  /**
   * Reserves a budget of `perRequest` bytes for one request from `client` (its IP address, when
   * known), or `undefined` when the pool has less than that free or `client` already holds its
   * share, a quarter of the pool's budgets (at least one); the caller refuses that request:
   * `ReadCapacityExhausted`, HTTP 503.
   */
  reserve(client?: string): RequestBudget | undefined
  /** A budget not taken from the pool (direct calls outside a request). */
  unpooled(): RequestBudget
  /** Bytes currently reserved. */
  inFlight(): number
}

/**
 * Creates the pool.
 * @param perRequest bytes per request, integer ≥ 1.
 * @param inFlight bytes over all requests, integer ≥ perRequest.
 * @throws RangeError for values out of range.
 */
export function createResponsePool(perRequest: number, inFlight: number): ResponsePool {
  if (!Number.isSafeInteger(perRequest) || perRequest < 1) throw new RangeError('maxResponseBytes must be a positive integer')
  if (!Number.isSafeInteger(inFlight) || inFlight < perRequest) {
    throw new RangeError('maxResponseBytesInFlight must be an integer ≥ maxResponseBytes')
  }
  let reserved = 0
  // Budgets held per client address: at most a quarter of the pool each.
  const perClient = Math.max(1, Math.floor(inFlight / perRequest / 4))
  const held = new Map<string, number>()
  const budget = (onRelease: () => void): RequestBudget => {
    let left = perRequest
    let tail: Promise<unknown> = Promise.resolve()
    let released = false
    return {
      remaining: () => left,
      charge(bytes) {
        left = Math.max(0, left - bytes)
      },
      serialize(read) {
        const run = tail.then(read, read)
        tail = run.catch(() => {})
        return run
      },
      release() {
        if (released) return
        released = true
        onRelease()
      },
    }
  }
  return {
    reserve(client) {
      if (reserved + perRequest > inFlight) return undefined
      const mine = client === undefined ? 0 : (held.get(client) ?? 0)
      if (client !== undefined && mine >= perClient) return undefined
      reserved += perRequest
      if (client !== undefined) held.set(client, mine + 1)
      return budget(() => {
        reserved -= perRequest
        if (client === undefined) return
        const n = (held.get(client) ?? 1) - 1
        if (n === 0) held.delete(client)
        else held.set(client, n)
      })
    },
    unpooled: () => budget(() => {}),
    inFlight: () => reserved,
  }
}

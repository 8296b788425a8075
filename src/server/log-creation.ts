/**
 * The per-client limit on creating logs (issue 8): every new log costs disk and, while open, file
 * descriptors, and keys are free, so creations are charged to the client's IP address (from the
 * TCP socket) in a token bucket. Plugged into LogManager as `admitCreate`.
 */
import { TokenBuckets, clientKey } from './rate-limit.js'

/** Default sustained log creations per client address, logs per second. */
export const DEFAULT_LOG_CREATE_RATE = 1
/** Default burst of log creations per client address, logs. */
export const DEFAULT_LOG_CREATE_BURST = 20

/**
 * A LogManager `admitCreate` hook: charges one creation to `client` (keyed by {@link clientKey};
 * unknown clients share one bucket); answers the seconds to wait when its bucket is empty (nothing
 * taken), else undefined; with `dryRun`, only answers (nothing is taken either way).
 * @param o.rate logs per second (0 = unlimited), @param o.burst logs (≥ 1 when rate > 0).
 * @throws RangeError for a bad rate or burst.
 */
export function createLogCreationLimit(o: { rate: number; burst: number; now?: () => number }): (client: string | undefined, o?: { dryRun?: boolean }) => number | undefined {
  const buckets = new TokenBuckets(o)
  return (client, o) => {
    const key = clientKey(client)
    const wait = buckets.wait(key, 1)
    if (wait > 0) return wait
    if (!o?.dryRun) buckets.take(key, 1)
    return undefined
  }
}

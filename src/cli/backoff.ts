/**
 * Poll scheduling of `ucanlog monitor`: the wait before the next poll of a source, with jitter so
 * that many monitors (or many logs of one monitor) do not poll in lockstep.
 */

/**
 * The wait before the next poll, ms.
 * - After a success (`failures` = 0): `intervalMs` ± 10%.
 * - After `failures` ≥ 1 errors in a row: exponential backoff from `intervalMs`, doubling per
 *   failure and capped at `maxMs` (d = min(maxMs, intervalMs · 2^(failures−1))), with "equal jitter":
 *   uniformly in [d/2, d].
 * @param random a uniform number in [0, 1) (default Math.random).
 */
export function pollDelay(failures: number, intervalMs: number, maxMs: number, random: () => number = Math.random): number {
  if (failures <= 0) return intervalMs * (0.9 + random() * 0.2)
  const d = Math.min(maxMs, intervalMs * 2 ** Math.min(failures - 1, 40))
  return d / 2 + (random() * d) / 2
}

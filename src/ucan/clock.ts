/**
 * The service's clock: Unix seconds (UCAN `exp`/`nbf` are Unix seconds). Every default clock of
 * src/ucan is this one; tests inject their own `now`.
 *
 * Two kinds of time are read (docs/reliability.md, "clock"): the wall clock ({@link systemNow}) for
 * what is compared with a UCAN's `exp`/`nbf` — a wall-clock jump moves those checks with it, as it
 * must, since the issuer wrote wall-clock times — and elapsed time ({@link monotonicSeconds},
 * immune to jumps) for intervals. Forgetting what expires (the replay guard's sweeps) uses
 * {@link forgettingClock}: the wall clock, but never ahead of the time that really elapsed, so a
 * jump forward and back cannot make the guard forget an invocation that is still valid.
 */

/** Unix seconds from the system clock, rounded down. */
export const systemNow = (): number => Math.floor(Date.now() / 1000)

/** Seconds of monotonic time (performance.now: never jumps, unrelated to the wall clock). */
export const monotonicSeconds = (): number => performance.now() / 1000

/**
 * A clock (Unix seconds) for deciding that something remembered until an `exp` may be forgotten:
 * `now()` whenever it is at or behind the wall time projected from its last such reading plus the
 * `monotonic` seconds elapsed since (it then becomes the new base); otherwise — the wall clock
 * jumped forward — the projection. So a forward jump forgets nothing early (entries go only as
 * time really passes), a backward jump keeps entries longer (always safe: a remembered outcome is
 * the right answer for the same invocation). After a genuine forward correction (the clock was
 * behind) entries are kept up to the size of that correction longer, until the wall clock is read
 * at or behind the projection again (at the latest after a restart).
 */
export function forgettingClock(now: () => number = systemNow, monotonic: () => number = monotonicSeconds): () => number {
  let base = now()
  let at = monotonic()
  return () => {
    const wall = now()
    const m = monotonic()
    const projected = base + (m - at)
    if (wall <= projected) {
      base = wall
      at = m
      return wall
    }
    return projected
  }
}

/**
 * The forgetting clock of a store given `now` (Unix seconds) and `monotonic` (seconds) options: the
 * system's {@link forgettingClock} by default; an injected `now` alone is used as is (tests that
 * move it by hand to expire entries), with an injected `monotonic` too it is guarded like the system's.
 */
export function forgettingClockOf(o: { now?: () => number; monotonic?: () => number }): () => number {
  if (o.now === undefined) return forgettingClock(systemNow, o.monotonic ?? monotonicSeconds)
  return o.monotonic === undefined ? o.now : forgettingClock(o.now, o.monotonic)
}

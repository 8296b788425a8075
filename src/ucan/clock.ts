/**
 * The service's clock: Unix seconds (UCAN `exp`/`nbf` are Unix seconds). Every default clock of
 * src/ucan is this one; tests inject their own `now`.
 */

/** Unix seconds from the system clock, rounded down. */
export const systemNow = (): number => Math.floor(Date.now() / 1000)

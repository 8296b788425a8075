/**
 * The monitor's poll scheduling (src/cli/backoff.ts): the interval with ±10% jitter after a success;
 * after errors, exponential backoff from the interval, doubling, capped, with equal jitter.
 */
import { describe, expect, it } from 'vitest'
import { pollDelay } from '../../src/cli/backoff.js'

describe('pollDelay', () => {
  it('after a success: the interval ± 10%', () => {
    expect(pollDelay(0, 1000, 60_000, () => 0)).toBe(900)
    expect(pollDelay(0, 1000, 60_000, () => 0.5)).toBe(1000)
    expect(pollDelay(0, 1000, 60_000, () => 0.999999)).toBeCloseTo(1100, 2)
  })

  it('after errors: doubling from the interval, in [d/2, d], capped at the maximum', () => {
    const lowest = (f: number) => pollDelay(f, 1000, 60_000, () => 0)
    const highest = (f: number) => pollDelay(f, 1000, 60_000, () => 0.999999)
    expect([1, 2, 3, 4].map(highest).map(Math.round)).toEqual([1000, 2000, 4000, 8000])
    expect([1, 2, 3, 4].map(lowest)).toEqual([500, 1000, 2000, 4000])
    expect(highest(7)).toBeCloseTo(60_000, 0)
    expect(highest(1000)).toBeCloseTo(60_000, 0)
    expect(lowest(1000)).toBe(30_000)
  })
})

/** Token buckets and the admission hook (src/server/rate-limit.ts), on an injected clock. */
import { describe, expect, test } from 'vitest'
import { TokenBuckets, createAdmission } from '../../src/server/rate-limit.js'

describe('TokenBuckets', () => {
  test('a full bucket of `burst` tokens, refilled at `rate` per second, capped at burst', () => {
    let ms = 0
    const b = new TokenBuckets({ rate: 2, burst: 3, now: () => ms })
    expect(b.wait('k', 3)).toBe(0)
    b.take('k', 3)
    expect(b.wait('k', 1)).toBe(0.5)
    ms = 500
    expect(b.wait('k', 1)).toBe(0)
    ms = 100_000
    expect(b.wait('k', 3)).toBe(0)
    expect(b.wait('k', 10)).toBe(0) // more than burst can never be had at once: asks for a full bucket
    expect(b.wait('other', 3)).toBe(0) // keys are independent
  })

  test('rate 0 disables; bad options are refused', () => {
    const off = new TokenBuckets({ rate: 0, burst: 0 })
    off.take('k', 1e9)
    expect(off.wait('k', 1e9)).toBe(0)
    expect(() => new TokenBuckets({ rate: -1, burst: 1 })).toThrow(RangeError)
    expect(() => new TokenBuckets({ rate: 1, burst: 0 })).toThrow(RangeError)
  })

  test('tracks at most maxKeys (full buckets dropped first, no state lost)', () => {
    let ms = 0
    const b = new TokenBuckets({ rate: 1, burst: 1, now: () => ms, maxKeys: 2 })
    b.take('a', 1)
    ms = 5000 // 'a' is full again
    b.take('b', 1)
    b.take('c', 1)
    expect(b.wait('b', 1)).toBe(1)
    expect(b.wait('c', 1)).toBe(1)
  })
})

describe('createAdmission', () => {
  test('counts each invocation against its agent and its space; refuses all-or-nothing with the longest wait', () => {
    let ms = 0
    const admit = createAdmission({ agent: { rate: 1, burst: 2, now: () => ms }, space: { rate: 10, burst: 3, now: () => ms } })
    const inv = (issuer: string, resource: string) => ({ issuer, resource })
    expect(admit([inv('a', 's'), inv('a', 's')])).toBeUndefined()
    expect(admit([inv('a', 's')])).toBe(1) // agent a is empty: 1 token at 1/s
    expect(admit([inv('b', 's')])).toBeUndefined() // another agent, same space (1 token left)
    expect(admit([inv('c', 's')])).toBeCloseTo(0.1) // the space is empty now
    ms = 1000
    expect(admit([inv('a', 's')])).toBeUndefined()
  })
})

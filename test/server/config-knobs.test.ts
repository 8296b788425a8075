import { describe, expect, it } from 'vitest'
import { DEFAULT_CONFIG, KNOBS, resolveConfig } from '../../src/server/config.js'

// The knob table is the one source of the flags, env vars and their ranges: a range that cannot hold
// its own default (as `1 << 40`, which JavaScript evaluates to 256) refuses every value a user gives.
describe('every integer knob has a sane range', () => {
  const integerKnobs = KNOBS.filter((k) => k.integer !== undefined)

  it.each(integerKnobs.map((k) => [k.flag, k] as const))('%s: min < max, both safe integers, and the default inside', (_flag, k) => {
    const { min, max } = k.integer!
    expect(Number.isSafeInteger(min) && Number.isSafeInteger(max)).toBe(true)
    expect(min).toBeLessThan(max)
    const def = DEFAULT_CONFIG[k.key] as number
    expect(def).toBeGreaterThanOrEqual(min)
    expect(def).toBeLessThanOrEqual(max)
  })

  it.each(integerKnobs.map((k) => [k.flag, k] as const))('%s: its default given explicitly is accepted, one past max is refused', (_flag, k) => {
    const def = String(DEFAULT_CONFIG[k.key])
    expect(resolveConfig({ [k.key]: def }, {})[k.key]).toBe(Number(def))
    expect(() => resolveConfig({ [k.key]: String(k.integer!.max + 1) }, {})).toThrow(k.flag)
  })

  it('--max-response-bytes-in-flight takes a value above its default (it once refused every value)', () => {
    expect(resolveConfig({ maxResponseBytesInFlight: String(1 << 30) }, {}).maxResponseBytesInFlight).toBe(1 << 30)
  })
})

/** Token buckets, the charge memory and the admission (src/server/rate-limit.ts), on an injected clock. */
import { describe, expect, test } from 'vitest'
import { ChargeMemory, TokenBuckets, clientKey, createAdmission } from '../../src/server/rate-limit.js'

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
  const setup = (o: { client?: number; agent?: number; space?: number; memory?: number } = {}) => {
    let ms = 0
    const clock = () => ms
    const admission = createAdmission({
      client: { rate: 1, burst: o.client ?? 100, now: clock },
      agent: { rate: 1, burst: o.agent ?? 100, now: clock },
      space: { rate: 10, burst: o.space ?? 100, now: clock },
      memory: o.memory ?? 100,
      now: clock,
    })
    return { admission, advance: (by: number) => (ms += by) }
  }
  const charge = (id: string, issuer: string, space?: string) => ({ id, expiresAt: Infinity, issuer: issuer as `did:${string}:${string}`, ...(space && { space }) })

  test('client addresses: every invocation costs its address, all-or-nothing, other addresses unaffected', () => {
    const { admission, advance } = setup({ client: 3 })
    expect(admission.request(2, { client: '127.0.0.2' })).toBeUndefined()
    expect(admission.request(2, { client: '127.0.0.2' })).toBe(1) // 1 token left, 2 wanted at 1/s
    expect(admission.request(1, { client: '127.0.0.2' })).toBeUndefined() // the refusal took nothing
    expect(admission.request(1, { client: '127.0.0.2' })).toBe(1)
    expect(admission.request(3, { client: '127.0.0.1' })).toBeUndefined()
    advance(1000)
    expect(admission.request(1, { client: '127.0.0.2' })).toBeUndefined()
  })

  test('an authorized write charges its agent and its space, all-or-nothing, with the longest wait', () => {
    const { admission } = setup({ agent: 2, space: 3 })
    expect(admission.charge(charge('i1', 'a', 's'))).toBeUndefined()
    expect(admission.charge(charge('i2', 'a', 's'))).toBeUndefined()
    expect(admission.charge(charge('i3', 'a', 's'))).toBe(1) // agent a is empty: 1 token at 1/s
    expect(admission.check(charge('i3', 'a'))).toBe(1) // and is refused before authorization too
    expect(admission.charge(charge('i4', 'b', 's'))).toBeUndefined() // another agent, same space (1 token left)
    expect(admission.charge(charge('i5', 'c', 's'))).toBeCloseTo(0.1) // the space is empty now
    expect(admission.charge(charge('i6', 'c'))).toBeUndefined() // a read by c costs no space
  })

  test('a signed invocation is charged once: replays of it are free to its issuer and space', () => {
    const { admission } = setup({ agent: 1, space: 1 })
    expect(admission.charge(charge('i1', 'a', 's'))).toBeUndefined()
    for (let n = 0; n < 5; n++) {
      expect(admission.check(charge('i1', 'a'))).toBeUndefined()
      expect(admission.charge(charge('i1', 'a', 's'))).toBeUndefined()
    }
    expect(admission.charge(charge('i2', 'a', 's'))).toBe(1) // a new one is charged
  })

  test('a refused charge is not remembered (the invocation may be sent again); a failure is debited once', () => {
    const { admission, advance } = setup({ agent: 1 })
    admission.debit(charge('bad', 'm'))
    admission.debit(charge('bad', 'm')) // its replay: free
    expect(admission.check(charge('next', 'm'))).toBe(1)
    advance(1000)
    expect(admission.check(charge('next', 'm'))).toBeUndefined()
    expect(admission.charge(charge('next', 'm', 's'))).toBeUndefined()
    expect(admission.charge(charge('later', 'm', 's'))).toBe(1) // refused: not remembered
    advance(1000)
    expect(admission.charge(charge('later', 'm', 's'))).toBeUndefined() // charged now
  })

  test('requests are worked on at most `concurrency` at once per client address; another address is not behind them', async () => {
    const admission = createAdmission({ client: { rate: 0, burst: 0 }, agent: { rate: 0, burst: 0 }, space: { rate: 0, burst: 0 }, concurrency: 2 })
    const running = new Map<string, number>()
    const most = new Map<string, number>()
    const gates: (() => void)[] = []
    const task = async (client: string) => {
      const release = await admission.turn({ client })
      running.set(client, (running.get(client) ?? 0) + 1)
      most.set(client, Math.max(most.get(client) ?? 0, running.get(client)!))
      await new Promise<void>((go) => gates.push(go))
      running.set(client, running.get(client)! - 1)
      release()
    }
    const all = [...Array.from({ length: 6 }, () => task('a')), task('b')]
    await new Promise((r) => setImmediate(r))
    expect(running.get('a')).toBe(2) // four wait
    expect(running.get('b')).toBe(1) // another address is not behind them
    while (gates.length > 0) {
      gates.shift()!()
      await new Promise((r) => setImmediate(r))
    }
    await Promise.all(all)
    expect(most.get('a')).toBe(2)
  })
})

describe('ChargeMemory', () => {
  test('remembers until exp (inclusive), and at most max: expired first, then the oldest', () => {
    let ms = 0
    const m = new ChargeMemory(2, () => ms)
    m.add('a', 10)
    m.add('b', 100)
    expect(m.has('a') && m.has('b')).toBe(true)
    ms = 10_000
    expect(m.has('a')).toBe(true)
    ms = 11_000
    expect(m.has('a')).toBe(false)
    m.add('c', 100) // full: the expired 'a' is swept
    expect(m.has('b') && m.has('c')).toBe(true)
    m.add('d', 100) // full, nothing expired: the oldest ('b') is forgotten
    expect(m.has('b')).toBe(false)
    expect(m.has('c') && m.has('d')).toBe(true)
    expect(m.size).toBe(2)
    expect(() => new ChargeMemory(0)).toThrow(RangeError)
  })
})

describe('clientKey', () => {
  test('IPv4 as is (also IPv4-mapped), IPv6 by /64, none shared', () => {
    expect(clientKey('127.0.0.2')).toBe('127.0.0.2')
    expect(clientKey('::ffff:127.0.0.2')).toBe('127.0.0.2')
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(clientKey('::1')).toBe('0:0:0:0::/64')
    expect(clientKey(undefined)).toBe('')
    // The connection caps count by the same key (src/server/listener.ts).
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:0db8:1:2::9')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'))
  })
})

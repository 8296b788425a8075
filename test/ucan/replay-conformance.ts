/**
 * The ReplayGuard's behaviour (src/ucan/replay.ts) as one suite, run against every guard: memory
 * and SQLite (test/ucan/replay.test.ts) and PostgreSQL (test/postgres/replay-guard.test.ts). The
 * same ids, owners, clocks and shares must give the same answers. `seen` is awaited, so a guard
 * that answers it asynchronously is checked alike.
 */
import { describe, expect, test } from 'vitest'
import { type ReplayGuard, ReplayGuardFull } from '../../src/ucan/index.js'

/** A fresh guard on the given clock and share, and how to close it. */
export type OpenReplayGuard = (o: { now: () => number; maxPerOwner?: number }) => Promise<{ guard: ReplayGuard; close(): Promise<void> | void }>

/** Registers the conformance tests for the guards `open` makes (each test gets a fresh, empty one). */
export function replayGuardConformance(name: string, open: OpenReplayGuard): void {
  describe(`ReplayGuard conformance: ${name}`, () => {
    test('runs a task once per id until its expiry, inclusive; then runs it again', async () => {
      let t = 1000
      const { guard, close } = await open({ now: () => t })
      let runs = 0
      const task = async () => ++runs
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1010 }, task)).toBe(1)
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1010 }, task)).toBe(1)
      t = 1010
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1010 }, task)).toBe(1)
      t = 1011
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1020 }, task)).toBe(2)
      expect(await guard.once({ owner: 'A', id: 'b', expiresAt: 1020 }, task)).toBe(3)
      await close()
    })

    test('concurrent calls share one run', async () => {
      const { guard, close } = await open({ now: () => 0 })
      let runs = 0
      let release!: () => void
      const gate = new Promise<void>((r) => (release = r))
      const task = async () => {
        runs++
        await gate
        return { ok: runs }
      }
      const calls = [1, 2, 3].map(() => guard.once({ owner: 'A', id: 'x', expiresAt: 10 }, task))
      release()
      expect(await Promise.all(calls)).toEqual([{ ok: 1 }, { ok: 1 }, { ok: 1 }])
      expect(runs).toBe(1)
      await close()
    })

    test('a full share refuses only its owner (ReplayGuardFull, nothing run); a seen id is still answered; expiry frees the share', async () => {
      let t = 1000
      const { guard, close } = await open({ now: () => t, maxPerOwner: 2 })
      await guard.once({ owner: 'A', id: 'a1', expiresAt: 1005 }, async () => 'a1')
      await guard.once({ owner: 'A', id: 'a2', expiresAt: 1100 }, async () => 'a2')
      let ran = false
      const full = guard.once({ owner: 'A', id: 'a3', expiresAt: 1100 }, async () => (ran = true))
      await expect(full).rejects.toBeInstanceOf(ReplayGuardFull)
      await expect(full).rejects.toMatchObject({ name: 'ReplayGuardFull', owner: 'A', limit: 2 })
      expect(ran).toBe(false)
      // Another owner is not affected, up to its own share.
      expect(await guard.once({ owner: 'B', id: 'b1', expiresAt: 1100 }, async () => 'b1')).toBe('b1')
      expect(await guard.once({ owner: 'B', id: 'b2', expiresAt: 1100 }, async () => 'b2')).toBe('b2')
      await expect(guard.once({ owner: 'B', id: 'b3', expiresAt: 1100 }, async () => 'b3')).rejects.toBeInstanceOf(ReplayGuardFull)
      // A replay of a remembered id takes no room and gets its first outcome.
      expect(await guard.once({ owner: 'A', id: 'a2', expiresAt: 1100 }, async () => 'again')).toBe('a2')
      t = 1006 // a1 expired: one place free for A
      expect(await guard.once({ owner: 'A', id: 'a3', expiresAt: 1100 }, async () => 'a3')).toBe('a3')
      await expect(guard.once({ owner: 'A', id: 'a4', expiresAt: 1100 }, async () => 'a4')).rejects.toBeInstanceOf(ReplayGuardFull)
      await close()
    })

    test('an expired id run again takes one place, not two', async () => {
      let t = 1000
      const { guard, close } = await open({ now: () => t, maxPerOwner: 2 })
      await guard.once({ owner: 'A', id: 'a', expiresAt: 1001 }, async () => 1)
      t = 1002
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1100 }, async () => 2)).toBe(2)
      expect(await guard.once({ owner: 'A', id: 'b', expiresAt: 1100 }, async () => 3)).toBe(3)
      await expect(guard.once({ owner: 'A', id: 'c', expiresAt: 1100 }, async () => 4)).rejects.toBeInstanceOf(ReplayGuardFull)
      await close()
    })

    test('seen: the remembered outcome until its expiry, inclusive; never runs anything or takes a place', async () => {
      let t = 1000
      const { guard, close } = await open({ now: () => t, maxPerOwner: 1 })
      expect(await guard.seen('a')).toBeUndefined()
      expect(await guard.seen('a')).toBeUndefined() // asking does not register it
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1010 }, async () => 'first')).toBe('first')
      expect(await guard.seen('a')).toBe('first')
      expect(await guard.seen('b')).toBeUndefined()
      t = 1010
      expect(await guard.seen('a')).toBe('first')
      t = 1011
      expect(await guard.seen('a')).toBeUndefined()
      // The one place of A is free again (a expired), whatever seen was asked.
      expect(await guard.once({ owner: 'A', id: 'c', expiresAt: 1100 }, async () => 'c')).toBe('c')
      await close()
    })

    test('a clock between whole seconds: an id whose expiry has passed by a fraction is run again; one not yet passed is remembered', async () => {
      let t = 1000
      const { guard, close } = await open({ now: () => t, maxPerOwner: 2 })
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1000 }, async () => 1)).toBe(1)
      expect(await guard.once({ owner: 'A', id: 'b', expiresAt: 1001 }, async () => 2)).toBe(2)
      t = 1000.5
      expect(await guard.seen('a')).toBeUndefined()
      expect(await guard.once({ owner: 'A', id: 'a', expiresAt: 1100 }, async () => 3)).toBe(3)
      expect(await guard.once({ owner: 'A', id: 'b', expiresAt: 1001 }, async () => 4)).toBe(2)
      expect(await guard.seen('b')).toBe(2)
      await close()
    })

    test('rejects a bad share at construction', async () => {
      await expect(open({ now: () => 0, maxPerOwner: 0 })).rejects.toThrow(RangeError)
      await expect(open({ now: () => 0, maxPerOwner: 1.5 })).rejects.toThrow(RangeError)
    })
  })
}

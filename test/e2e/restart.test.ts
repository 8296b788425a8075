/**
 * Crash safety: `ucanlog serve` (the built CLI, a real process) is killed with SIGKILL while appends
 * are in flight, restarted on the same data directory, and appended to again. Every acknowledged
 * entry must be at its acknowledged index, and every checkpoint any client was shown must be
 * consistent with the final one (the log never forks or rolls back).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ackedAppends, checkAcked, killMidLoad } from './acked-appends.js'
import { REPO, spawnServe } from './helpers.js'

const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

async function serve(dataDir: string): Promise<{ url: string; did: string; child: ChildProcess }> {
  const r = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt')])
  children.push(r.child)
  return r
}

describe('kill -9 mid-load, restart, append more', () => {
  it('loses no acknowledged entry and every checkpoint seen is consistent with the final one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-restart-'))
    try {
      const appends = await ackedAppends('restart entry')

      // Phase 1: load, then SIGKILL while appends are still in flight.
      const ackedBeforeKill = await killMidLoad(appends, await serve(dataDir), 150, 24)
      expect(ackedBeforeKill).toBeGreaterThanOrEqual(150)
      expect(appends.sent).toBeGreaterThan(ackedBeforeKill) // some appends were in flight when it died

      // Phase 2: restart on the same data directory (a new port, so the witness URL changes too).
      const second = await serve(dataDir)
      await appends.load(second.url, second.did, appends.sent + 60, { stop: false }, 24)
      expect(appends.acked.size).toBe(ackedBeforeKill + 60)

      // Every acknowledged entry is where its receipt said, verified by a full audit; every
      // checkpoint a client was shown is consistent with the final tree.
      await checkAcked(second.url, appends)
      second.child.kill('SIGTERM')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

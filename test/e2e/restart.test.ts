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
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { checkTree, decodeBase64, entryBundlePath, parseEntryBundle, proveTree, tileHashReader, tilePath } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, spawnServe } from './helpers.js'
import { servedLog } from './read-helpers.js'

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
      const space = await generateKey()
      const agent = await generateKey()
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const acked = new Map<number, { entry: string; r: AppendResult }>()
      let sent = 0

      const load = async (url: string, did: string, count: number | undefined, signal: { stop: boolean }) => {
        const conn = connect(`${url}/rpc`, did as API.DID)
        const worker = async () => {
          while (!signal.stop && (count === undefined || sent < count)) {
            const entry = `restart entry ${sent++}`
            const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent })
            let out
            try {
              out = (await conn.execute(inv))[0]!.out as { ok?: AppendResult }
            } catch {
              return // the server died under us: this append was never acknowledged
            }
            if (!out.ok) throw new Error(`append refused: ${JSON.stringify(out)}`)
            acked.set(out.ok.index, { entry, r: out.ok })
          }
        }
        await Promise.all(Array.from({ length: 24 }, worker))
      }

      // Phase 1: load, then SIGKILL while appends are still in flight.
      const first = await serve(dataDir)
      const signal = { stop: false }
      const running = load(first.url, first.did, undefined, signal)
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (acked.size >= 150) {
            clearInterval(t)
            resolve()
          }
        }, 5)
      })
      first.child.kill('SIGKILL')
      signal.stop = true
      await running
      const ackedBeforeKill = acked.size
      expect(ackedBeforeKill).toBeGreaterThanOrEqual(150)
      expect(sent).toBeGreaterThan(ackedBeforeKill) // some appends were in flight when it died

      // Phase 2: restart on the same data directory (a new port, so the witness URL changes too).
      const second = await serve(dataDir)
      const target = sent + 60
      await load(second.url, second.did, target, { stop: false })
      expect(acked.size).toBe(ackedBeforeKill + 60)

      // Every acknowledged entry is where its receipt said, verified by a full audit.
      const served = await servedLog(second.url, space.did())
      const { fetchFile } = served
      const report = await auditLog(served)
      expect(report.size).toBeGreaterThanOrEqual(Math.max(...acked.keys()) + 1)
      const bundles = new Map<number, Uint8Array[]>()
      for (const [index, { entry }] of acked) {
        const n = Math.floor(index / 256)
        if (!bundles.has(n)) bundles.set(n, parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(256, report.size - n * 256))))!))
        expect(new TextDecoder().decode(bundles.get(n)![index % 256]), `entry at ${index}`).toBe(entry)
      }

      // Every checkpoint a client was shown is consistent with the final tree.
      const reader = tileHashReader(report.size, report.rootHash, {
        readTiles: (tiles) => Promise.all(tiles.map(async (t) => (await fetchFile(tilePath(t)))!)),
      })
      const seen = new Map<number, string>()
      for (const { r } of acked.values()) seen.set(r.treeSize, r.rootHash)
      for (const [size, root] of seen) {
        expect(size).toBeLessThanOrEqual(report.size)
        checkTree(await proveTree(report.size, size, reader), report.size, report.rootHash, size, decodeBase64(root))
      }
      second.child.kill('SIGTERM')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

/**
 * Never lose data: Storacha goes down in the middle of a load of appends; appends keep working from
 * local storage; the service (`ucanlog serve`, a real process) is killed with SIGKILL mid-load and
 * restarted; Storacha comes back; every checkpoint's CAR lands in the space, and the space alone
 * audits.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { TILE_WIDTH, entryBundlePath, parseEntryBundle, parsePolicy } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, spawnServe } from './helpers.js'
import { expectEveryCarInSpace, head, spaceReader, waitForHead } from './storacha-helpers.js'

const children: ChildProcess[] = []
let storacha: LocalStoracha | undefined
let dataDir: string | undefined
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await storacha?.close()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

async function serve(data: string, s: LocalStoracha): Promise<{ url: string; did: string; child: ChildProcess }> {
  const args = ['--data', data, '--port', '0', '--log-level', 'fatal', '--witness-policy', join(REPO, 'witness_policy.txt'), '--batch-max-age', '100']
  args.push('--storacha-url', s.url, '--storacha-did', s.did, '--storacha-receipts', s.receiptsEndpoint, '--upload-retry-max', '200')
  const r = await spawnServe(args, 'ignore')
  children.push(r.child)
  return r
}

describe('Storacha down during a load of appends, service killed and restarted', () => {
  it('appends keep working; once Storacha is back every checkpoint CAR is in the space and the space audits', { timeout: 240_000 }, async () => {
    storacha = await startLocalStoracha()
    dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-storacha-fault-'))
    const space = await generateKey()
    const agent = await generateKey()
    await storacha.provision(space.did())
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    // Every acknowledged append (an `ok` receipt: sequenced and durable, published or not): index → entry.
    const acked = new Map<number, string>()
    let made = 0
    // Requests on the wire: `sent` counts each before it goes out, `answered` each receipt back;
    // `cutInFlight` counts those sent before the kill (`sentAtKill`) that never got a receipt.
    let sent = 0
    let answered = 0
    let sentAtKill = Infinity
    let cutInFlight = 0
    // The first load pauses at 150 acknowledged appends (so the log stays small) and resumes just
    // before the kill, so that the kill lands on requests in flight.
    let resumeLoad!: () => void
    const resumed = new Promise<void>((r) => (resumeLoad = r))

    // Workers append until `stop`; an append cut off by the kill is simply not acknowledged.
    const load = (url: string, did: string, until: () => boolean) => {
      const conn = connect(`${url}/rpc`, did as API.DID)
      const agentToService = delegateAgentToService({ agent, service: did as API.DID, proofs: [spaceToAgent] })
      const worker = async () => {
        while (!until()) {
          if (acked.size >= 150) await resumed
          const entry = `fault entry ${made++}`
          const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), agentToService: await agentToService })
          const seq = sent++
          try {
            const out = (await conn.execute(inv))[0]!.out as { ok?: { index: number; published: boolean } }
            answered++
            if (out.ok) acked.set(out.ok.index, entry)
          } catch {
            if (seq < sentAtKill) cutInFlight++
            return // the service went away
          }
        }
      }
      return Promise.all(Array.from({ length: 8 }, worker))
    }

    let s = await serve(dataDir, storacha)
    const first = load(s.url, s.did, () => false) // until the kill cuts it off
    // Storacha goes down mid-load.
    while (acked.size < 50) await new Promise((r) => setTimeout(r, 10))
    await storacha.stop()
    while (acked.size < 100) await new Promise((r) => setTimeout(r, 10))
    const failing = await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'failing')
    expect(failing.upload!.error!.name).toBe('StorachaUnavailable')
    expect(failing.upload!.lagEntries).toBeGreaterThan(0)
    // Killed mid-load, with uploads pending and appends on the wire: wait until at least one request
    // is out and unanswered, then kill in the same tick.
    resumeLoad()
    while (sent - answered < 1) await new Promise((r) => setImmediate(r))
    sentAtKill = sent
    s.child.kill('SIGKILL')
    await first
    expect(cutInFlight, 'requests on the wire at the kill that never got a receipt').toBeGreaterThanOrEqual(1)
    const beforeRestart = acked.size
    expect(beforeRestart).toBeGreaterThanOrEqual(100)

    s = await serve(dataDir, storacha)
    await load(s.url, s.did, () => acked.size >= beforeRestart + 50)
    const down = await head(s.url, space.did())
    expect(down.upload!.state).not.toBe('uploaded')

    // Storacha is back: everything lands.
    await storacha.start()
    const done = await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize)
    expect(done.upload!.lagEntries).toBe(0)

    const { cars } = await expectEveryCarInSpace(dataDir, space.did(), storacha)
    expect(cars.at(-1)!.treeSize).toBe(done.treeSize)

    // The space alone: the newest root audits, every acknowledged entry at its index.
    const gw = spaceReader(storacha, done.upload!.latestRoot)
    const info = (await (await fetch(`${s.url}/info`)).json()) as { witnessPolicy: string }
    const report = await auditLog({ fetchFile: gw, origin: done.origin, logVkey: done.vkey, policy: parsePolicy(info.witnessPolicy) })
    expect(report.size).toBe(done.treeSize)
    // The audit checked every entry bundle against the cosigned root; read them from the space and
    // find each acknowledged entry's own bytes at the index its receipt gave.
    expect(report.entriesChecked).toBe(done.treeSize)
    const bundles = new Map<number, Uint8Array[]>()
    const entryAt = async (index: number): Promise<string | undefined> => {
      const n = Math.floor(index / TILE_WIDTH)
      if (!bundles.has(n)) {
        const bytes = await gw(entryBundlePath(n, Math.min(TILE_WIDTH, report.size - n * TILE_WIDTH)))
        bundles.set(n, bytes ? parseEntryBundle(bytes) : [])
      }
      const e = bundles.get(n)![index % TILE_WIDTH]
      return e && new TextDecoder().decode(e)
    }
    expect(acked.size).toBeGreaterThanOrEqual(beforeRestart + 50)
    for (const [index, entry] of acked) expect(await entryAt(index), `entry ${index}`).toBe(entry)
    s.child.kill('SIGKILL')
  })
})

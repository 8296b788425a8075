/**
 * Storacha down for a long time (issue 15 item 5), against the real service (`ucanlog serve`, the
 * built CLI) and the loopback Storacha-compatible service: while the upload service refuses
 * connections for many checkpoints, appends keep publishing from local storage; the backlog is
 * reported (`/logs/<space>/head` `upload`: failing, pendingCheckpoints, lagEntries; `/metrics`:
 * ucanlog_upload_pending_checkpoints, ucanlog_upload_lag_entries, ucanlog_upload_failing_logs,
 * ucanlog_upload_attempts_total{result}); once Storacha is back every checkpoint's CAR lands in the
 * space (none lost, byte for byte), the reports return to zero, and the space alone audits.
 *
 * Catch-up is coalesced: the checkpoints packed during the outage are stored k at a time
 * (`UCANLOG_UPLOAD_BATCH_CHECKPOINTS`, 8 here): one CAR blob and one index blob per k checkpoints,
 * and every checkpoint's root still registered as an upload of the space (see docs/reliability.md).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { parsePolicy } from '../../src/tlog/index.js'
import { delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { REPO, spawnServe } from './helpers.js'
import { appendAll, expectEveryCarInSpace, head, localCars, spaceReader, waitForHead } from './storacha-helpers.js'

const children: ChildProcess[] = []
let storacha: LocalStoracha | undefined
let dataDir: string | undefined
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await storacha?.close()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

/** The value of an unlabelled metric, or of the labelled series `name{labels}`, from /metrics; 0 when absent. */
async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

type Upload = { state: string; uploadedTreeSize: number; latestTreeSize: number; lagEntries: number; pendingCheckpoints: number; latestRoot?: string; error?: { name: string } }

describe('Storacha down for many checkpoints, then back', () => {
  it('the backlog is reported at /head and /metrics, no CAR is lost, the space catches up and audits', { timeout: 240_000 }, async () => {
    storacha = await startLocalStoracha()
    dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-storacha-outage-'))
    const [space, agent] = [await generateKey(), await generateKey()]
    await storacha.provision(space.did())
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const args = ['--data', dataDir, '--port', '0', '--log-level', 'fatal', '--witness-policy', join(REPO, 'witness_policy.txt'), '--batch-max-age', '100']
    args.push('--storacha-url', storacha.url, '--storacha-did', storacha.did, '--storacha-receipts', storacha.receiptsEndpoint, '--upload-retry-max', '500')
    const k = 8
    const s = await spawnServe(args, 'ignore', { env: { UCANLOG_UPLOAD_BATCH_CHECKPOINTS: String(k) } })
    children.push(s.child)
    const upload = async () => (await head(s.url, space.did())).upload as unknown as Upload

    // Before the outage: a first batch lands in the space.
    let n = 0
    const batch = async () => {
      const rs = await appendAll(s.url, s.did, space, agent, spaceToAgent, Array.from({ length: 4 }, () => `outage entry ${n++}`))
      for (const r of rs) expect(r.ok).toBeDefined()
    }
    await batch()
    await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize)
    const carsBefore = (await localCars(dataDir, space.did())).length
    const uploadsBefore = (await storacha.uploads(space.did())).length
    const blobsBefore = (await storacha.blobs(space.did())).length
    expect(uploadsBefore).toBe(carsBefore)
    expect(await metric(s.url, 'ucanlog_upload_pending_checkpoints')).toBe(0)

    // Storacha refuses connections while the log publishes many checkpoints (two or more per batch).
    await storacha.stop()
    for (let i = 0; i < 10; i++) await batch()
    const down = await head(s.url, space.did())
    const carsDown = (await localCars(dataDir, space.did())).length
    const backlog = carsDown - carsBefore
    expect(backlog).toBeGreaterThanOrEqual(20)
    const failing = (await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'failing')).upload as unknown as Upload
    expect(failing.error!.name).toBe('StorachaUnavailable')
    const during = await upload()
    expect(during.pendingCheckpoints).toBe(backlog)
    expect(during.latestTreeSize).toBe(down.treeSize)
    expect(during.lagEntries).toBe(down.treeSize - during.uploadedTreeSize)
    expect(during.lagEntries).toBeGreaterThanOrEqual(40)
    expect(await metric(s.url, 'ucanlog_upload_pending_checkpoints')).toBe(backlog)
    expect(await metric(s.url, 'ucanlog_upload_lag_entries')).toBe(during.lagEntries)
    expect(await metric(s.url, 'ucanlog_upload_failing_logs')).toBe(1)
    expect(await metric(s.url, 'ucanlog_upload_attempts_total{result="StorachaUnavailable"}')).toBeGreaterThan(0)

    // Storacha is back: the backlog drains, every CAR lands byte for byte, the reports return to zero.
    await storacha.start()
    const done = await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize)
    expect(done.upload!.lagEntries).toBe(0)
    expect(await metric(s.url, 'ucanlog_upload_pending_checkpoints')).toBe(0)
    expect(await metric(s.url, 'ucanlog_upload_lag_entries')).toBe(0)
    expect(await metric(s.url, 'ucanlog_upload_failing_logs')).toBe(0)
    const { cars, uploads } = await expectEveryCarInSpace(dataDir, space.did(), storacha)
    // Every checkpoint of the outage is an upload of the space (its root registered) …
    expect(uploads.length - uploadsBefore).toBe(backlog)
    // … but stored k at a time: ≤ ceil(N/k) CAR shards, each with one index blob.
    const groups = Math.ceil(backlog / k)
    const outageRoots = new Set(cars.slice(carsBefore).map((c) => c.root))
    const newShards = new Set(uploads.filter((u) => outageRoots.has(u.root)).flatMap((u) => u.shards))
    expect(outageRoots.size).toBe(backlog)
    expect(newShards.size).toBeLessThanOrEqual(groups)
    expect((await storacha.blobs(space.did())).length - blobsBefore).toBeLessThanOrEqual(2 * groups)
    // One successful attempt per group: at most the checkpoints before the outage plus the groups.
    expect(await metric(s.url, 'ucanlog_upload_attempts_total{result="ok"}')).toBeLessThanOrEqual(carsBefore + groups)

    // The space alone audits at the newest root.
    const gw = spaceReader(storacha, done.upload!.latestRoot)
    const info = (await (await fetch(`${s.url}/info`)).json()) as { witnessPolicy: string }
    const report = await auditLog({ fetchFile: gw, origin: done.origin, logVkey: done.vkey, policy: parsePolicy(info.witnessPolicy) })
    expect(report.size).toBe(done.treeSize)
    expect(report.size).toBe(n)
    s.child.kill('SIGKILL')
  })
})

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
import type * as API from '@ucanto/interface'
import { appendInvocation, connect, delegateAgentToService, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
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
    // A batch's appends are answered while its CAR is packed: wait for the last CAR.
    const down = await waitForHead(s.url, space.did(), (h) => h.upload?.latestTreeSize === h.treeSize)
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

describe('the upload backlog is bounded per log', () => {
  it("at --upload-backlog-max that log's appends are refused UploadBacklogFull (unused: resent later, they land), other logs append, nothing acknowledged is lost", { timeout: 240_000 }, async () => {
    const st = await startLocalStoracha()
    const data = await mkdtemp(join(tmpdir(), 'ucanlog-storacha-backlog-'))
    try {
      const [a, b, agent] = [await generateKey(), await generateKey(), await generateKey()]
      await st.provision(a.did())
      await st.provision(b.did())
      const args = ['--data', data, '--port', '0', '--log-level', 'fatal', '--witness-policy', join(REPO, 'witness_policy.txt'), '--batch-max-age', '50']
      args.push('--storacha-url', st.url, '--storacha-did', st.did, '--storacha-receipts', st.receiptsEndpoint, '--upload-retry-max', '500', '--upload-backlog-max', '3')
      const s = await spawnServe(args, 'ignore')
      children.push(s.child)
      const conn = connect(`${s.url}/rpc`, s.did as API.DID)
      const toService = new Map<string, API.Delegation>()
      let n = 0
      const invocation = async (space: typeof a) => {
        if (!toService.has(space.did())) toService.set(space.did(), await delegateAgentToService({ agent, service: s.did as API.DID, proofs: [await delegateSpaceToAgent({ space, agent })] }))
        return appendInvocation({ agent, service: s.did as API.DID, space: space.did(), entry: new TextEncoder().encode(`backlog entry ${n++}`), agentToService: toService.get(space.did())! })
      }
      type Out = { ok?: { index: number }; error?: { name: string; message: string } }
      const send = async (inv: Awaited<ReturnType<typeof invocation>>) => (await conn.execute(inv))[0]!.out as Out
      const acked = { a: 0, b: 0 }

      // Both logs upload once, then Storacha goes down.
      for (const [space, key] of [[a, 'a'], [b, 'b']] as const) {
        expect((await send(await invocation(space))).ok).toBeDefined()
        acked[key]++
        await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'uploaded')
      }
      await st.stop()

      // One append at a time to a (a checkpoint each) until the bound refuses one.
      let refused: { inv: Awaited<ReturnType<typeof invocation>>; error: { name: string; message: string } } | undefined
      for (let i = 0; i < 30 && !refused; i++) {
        const inv = await invocation(a)
        const out = await send(inv)
        if (out.ok) acked.a++
        else refused = { inv, error: out.error! }
      }
      expect(refused, 'an append refused at the bound').toBeDefined()
      expect(refused!.error.name).toBe('UploadBacklogFull')
      expect(refused!.error.message).toMatch(/retry after \d+ s$/)
      const full = (await head(s.url, a.did())).upload as unknown as Upload
      expect(full.pendingCheckpoints).toBeGreaterThanOrEqual(3)
      expect(await metric(s.url, 'ucanlog_upload_pending_checkpoints')).toBeGreaterThanOrEqual(3)
      expect(await metric(s.url, 'ucanlog_upload_backlog_refusals_total')).toBe(1)
      // Only that log is refused: b (one pending checkpoint) appends.
      expect((await send(await invocation(b))).ok).toBeDefined()
      acked.b++

      // Storacha back: a's backlog drains, and the refused invocation itself (it was never run) now lands.
      await st.start()
      await waitForHead(s.url, a.did(), (h) => h.upload?.state === 'uploaded')
      const again = await send(refused!.inv)
      expect(again.ok?.index).toBe(acked.a)
      acked.a++
      for (const [space, key] of [[a, 'a'], [b, 'b']] as const) {
        const done = await waitForHead(s.url, space.did(), (h) => h.upload?.state === 'uploaded' && h.upload.uploadedTreeSize === h.treeSize)
        await expectEveryCarInSpace(data, space.did(), st)
        const info = (await (await fetch(`${s.url}/info`)).json()) as { witnessPolicy: string }
        const report = await auditLog({ fetchFile: spaceReader(st, done.upload!.latestRoot), origin: done.origin, logVkey: done.vkey, policy: parsePolicy(info.witnessPolicy) })
        expect(report.size).toBe(acked[key])
      }
      s.child.kill('SIGKILL')
    } finally {
      await st.close()
      await rm(data, { recursive: true, force: true })
    }
  })
})

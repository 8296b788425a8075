/**
 * Storacha uploads with several `ucanlog serve` instances on one PostgreSQL database (issue 14
 * item 3: the upload queue is a work queue any instance drains): two real processes sharing the
 * service key, each with `--storacha-url` at one local Storacha (upload-api's real service on
 * loopback), appends to several spaces through both. The first instance reaches Storacha through a
 * proxy that holds its requests (the fault injected), so its upload is in flight — its claim live
 * and renewed — when it is killed with kill -9. The other instance takes the claimed rows over once
 * the claim expires, uploads them again (same CAR, same CIDs), and drains everything: every
 * checkpoint CAR the database holds is an upload of its space with every block stored byte for
 * byte, and `/head` shows no lag.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import { afterAll, describe, expect, it } from 'vitest'
import { type AckedAppends, ackedAppends } from '../e2e/acked-appends.js'
import { head, waitForHead } from '../e2e/storacha-helpers.js'
import { startLocalStoracha, type LocalStoracha } from '../helpers/local-storacha.js'
import { usePostgres } from '../helpers/postgres.js'
import { servePg, shareKeys } from './serve-helpers.js'

const postgres = usePostgres()
const children: ChildProcess[] = []
let storacha: LocalStoracha | undefined
let proxy: Server | undefined
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  proxy?.closeAllConnections()
  await new Promise((ok) => (proxy ? proxy.close(ok) : ok(undefined)))
  await storacha?.close()
})

/** A proxy to `target` that never answers (holds every request): an upload stuck in flight. Counts what it holds. */
async function holdingProxy(): Promise<{ url: string; held: () => number }> {
  let held = 0
  proxy = createServer((req: IncomingMessage) => {
    held++
    req.resume()
  })
  await new Promise<void>((ok) => proxy!.listen(0, '127.0.0.1', ok))
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, held: () => held }
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))

describe('two serve instances on one database, with Storacha uploads', () => {
  it('appends through both; one killed with kill -9 mid-upload; its claimed uploads taken over; every checkpoint CAR in its space; no lag', { timeout: 240_000 }, async () => {
    storacha = await startLocalStoracha()
    const url = await postgres.server().database()
    const db = postgres.pool(url, 2)
    const dirs = await Promise.all([0, 1].map(() => mkdtemp(join(tmpdir(), 'ucanlog-pg-uploads-'))))
    const printed: string[][] = [[], []]
    try {
      const held = await holdingProxy()
      const common = ['--database-idle-release', '500', '--batch-max-age', '100', '--upload-retry-max', '500', '--storacha-did', storacha.did, '--storacha-receipts', storacha.receiptsEndpoint]
      const doomed = await servePg(dirs[0]!, url, printed[0]!, children, [...common, '--storacha-url', held.url])
      await shareKeys(dirs[0]!, dirs[1]!)
      const survivor = await servePg(dirs[1]!, url, printed[1]!, children, [...common, '--storacha-url', storacha.url])
      const did = doomed.did

      // Four spaces, provisioned; 20 appends to each through one instance, then 20 through the other.
      const spaces: AckedAppends[] = []
      for (let i = 0; i < 4; i++) {
        const a = await ackedAppends(`uploads ${i}`)
        await storacha.provision(a.space)
        spaces.push(a)
      }
      // A load ends a worker whose connection failed (a loaded machine resets some): go on until
      // `n` are acknowledged. Nothing is refused while both instances live.
      const refusals: unknown[] = []
      const fill = async (a: AckedAppends, url: string, n: number, refused = (e: unknown) => void refusals.push(e)) => {
        while (a.acked.size < n) await a.load(url, did, a.sent + (n - a.acked.size), { stop: false }, 4, { refused })
      }
      const order = [doomed, survivor]
      for (const round of [0, 1]) await Promise.all(spaces.map((a, i) => fill(a, order[(i + round) % 2]!.url, 20 * (round + 1))))
      expect(refusals).toEqual([])

      // The doomed instance claims a log's uploads; its request to Storacha hangs (held by the proxy).
      const holder = `%/${doomed.child.pid}/%`
      const claimedByDoomed = async () =>
        (await db.query<{ space: string; tree_size: string }>('SELECT space, tree_size::text FROM log_upload_jobs WHERE claim_holder LIKE $1 AND done_at IS NULL ORDER BY space, tree_size', [holder])).rows
      while ((await claimedByDoomed()).length === 0 || held.held() === 0) await sleep(50)
      // Its claim lives on while it hangs (renewed), so the other instance leaves those rows alone.
      await sleep(1500)
      const claimed = await claimedByDoomed()
      expect(claimed.length).toBeGreaterThan(0)

      // kill -9 mid-upload.
      doomed.child.kill('SIGKILL')
      await new Promise((ok) => doomed.child.once('exit', ok))

      // More appends to every space through the survivor (it forwards to the dead instance's logs
      // until their leases expire: those appends are refused or fail, and are simply retried).
      for (const a of spaces) await fill(a, survivor.url, 50, () => {})

      // The survivor drains every log, the dead instance's claimed rows included: no lag anywhere.
      for (const a of spaces) {
        const h = await waitForHead(survivor.url, a.space, (x) => x.upload?.state === 'uploaded' && x.upload.uploadedTreeSize === x.treeSize)
        expect(h.treeSize).toBeGreaterThanOrEqual(a.acked.size) // an append whose answer was lost may be in the log too
        expect(h.upload).toMatchObject({ state: 'uploaded', lagEntries: 0, latestTreeSize: h.treeSize })
      }
      for (const row of claimed) {
        const s = await head(survivor.url, row.space)
        expect(s.upload!.uploadedTreeSize).toBeGreaterThanOrEqual(Number(row.tree_size))
      }
      expect((await db.query('SELECT count(*)::int AS n FROM log_upload_jobs WHERE done_at IS NULL')).rows[0].n).toBe(0)
      expect((await db.query('SELECT count(*)::int AS n FROM log_upload_jobs WHERE claim_holder IS NOT NULL')).rows[0].n).toBe(0)

      // Every checkpoint CAR the database holds is an upload of its space, every block stored byte for byte.
      for (const a of spaces) {
        const cars = (await db.query<{ tree_size: string; root: string; car: Buffer }>('SELECT tree_size::text, root, car FROM log_cars WHERE log_id = $1 ORDER BY tree_size', [a.space])).rows
        expect(cars.length).toBeGreaterThanOrEqual(2)
        const roots = new Set((await storacha.uploads(a.space)).map((u) => u.root))
        const stored = await storacha.blocks(a.space)
        for (const car of cars) {
          expect(roots.has(car.root), `upload of ${a.space}'s CAR of tree size ${car.tree_size}`).toBe(true)
          for await (const b of await CarBlockIterator.fromBytes(new Uint8Array(car.car))) {
            expect(new Uint8Array(stored.get(b.cid.toString()) ?? []), b.cid.toString()).toEqual(new Uint8Array(b.bytes))
          }
        }
      }
      // The metrics agree: nothing pending, no lag.
      const metrics = await (await fetch(`${survivor.url}/metrics`)).text()
      expect(metrics).toMatch(/^ucanlog_upload_lag_entries 0$/m)
      expect(metrics).toMatch(/^ucanlog_upload_pending_checkpoints 0$/m)
    } finally {
      for (const c of children) c.kill('SIGKILL')
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    }
  })
})

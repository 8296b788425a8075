/**
 * Several `ucanlog serve` instances as one service on one PostgreSQL database (issue 14 item 2,
 * must-show): three real processes sharing the service key, a client spreading appends over all
 * three (each instance forwards an append to the one holding its log), one instance killed with
 * kill -9 mid-load, the log's holder paused with SIGSTOP past its lease (another takes the log),
 * then resumed: every acknowledged entry is in the log exactly once at its index, every checkpoint
 * a client saw is consistent with the final one, the audit passes on every live instance, and the
 * paused instance's late writes are refused by fencing (its LeaseLost counter and log line).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { TILE_WIDTH, encodeBase64, entryBundlePath, newTiles, parseCheckpoint, parseEntryBundle, parseNote, tilePath } from '../../src/tlog/index.js'
import { ackedAppends, checkAcked, untilAcked } from '../e2e/acked-appends.js'
import { servedLog } from '../e2e/read-helpers.js'
import { goTool } from '../interop/go.js'
import { usePostgres } from '../helpers/postgres.js'
import { servePg, shareKeys } from './serve-helpers.js'

const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** The value of a counter (without labels) on an instance's /metrics page. */
async function counter(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line ? Number(line.split(' ')[1]) : 0
}

/** The sum of a labelled counter's values on an instance's /metrics page. */
async function counterSum(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0)
}

describe('three serve instances on one database', () => {
  it('kill -9 one and SIGSTOP the holder past its lease mid-load: every acknowledged entry once, checkpoints consistent, audit passes, the paused holder fenced', async () => {
    const url = await postgres.server().database()
    const dirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'ucanlog-pg-multi-'))))
    const printed: string[][] = [[], [], []]
    try {
      const args = ['--database-idle-release', '500']
      const paused = await servePg(dirs[0]!, url, printed[0]!, children, args)
      await shareKeys(dirs[0]!, dirs[1]!)
      await shareKeys(dirs[0]!, dirs[2]!)
      const killed = await servePg(dirs[1]!, url, printed[1]!, children, args)
      const survivor = await servePg(dirs[2]!, url, printed[2]!, children, args)
      const did = paused.did
      const appends = await ackedAppends('multi entry')

      // The first instance takes the log; then the load spreads over all three (the others forward to it).
      await appends.load(paused.url, did, 10, { stop: false }, 2)
      const load = { stop: false }
      const refusals: unknown[] = []
      const running = [paused, killed, survivor].map((s) => appends.load(s.url, did, undefined, load, 4, { refused: (e) => refusals.push(e) }))
      await untilAcked(appends, 60)
      expect(await counterSum(killed.url, 'ucanlog_forwarded_requests_total')).toBeGreaterThan(0)

      // kill -9 one instance mid-load (its clients' appends in flight are never acknowledged).
      killed.child.kill('SIGKILL')
      await untilAcked(appends, 90)
      // Until now every instance accepted every append (none refused, e.g. LeaseHeld).
      expect(refusals).toEqual([])

      // Pause the log's holder mid-load, past its lease (1 s): the survivor takes the log.
      paused.child.kill('SIGSTOP')
      const before = appends.acked.size
      // The survivor's clients: forwarded to the paused holder, they get 503 (unacknowledged: their
      // workers stop) until its lease has expired and the survivor takes the log; then they go on.
      while (appends.acked.size < before + 40) await appends.load(survivor.url, did, appends.sent + 40, { stop: false }, 4, { refused: (e) => refusals.push(e) })
      // Resume it: its writes in flight, with a stale fencing token, are refused.
      paused.child.kill('SIGCONT')
      load.stop = true
      await Promise.all(running)
      // The paused instance's appends in flight were refused: fenced (LeaseLost), its transaction ended by the
      // server while it slept (DatabaseUnavailable: rolled back; or StorageFailed when that write was the
      // log's own, which stops the log until it is reopened), or the log busy elsewhere (LeaseHeld). None
      // was acknowledged: the exactly-once and consistency checks below hold whichever it was.
      for (const e of refusals) expect((e as { name?: string }).name).toMatch(/^(LeaseLost|LeaseHeld|DatabaseUnavailable|StorageFailed)$/)

      // More appends through the resumed instance: it works again (forwarding, or taking the log back).
      const after = appends.acked.size
      await appends.load(paused.url, did, appends.sent + 20, { stop: false }, 4)
      expect(appends.acked.size).toBeGreaterThanOrEqual(after + 20)

      // The paused instance found it had lost the log (fencing), and said so.
      expect(await counter(paused.url, 'ucanlog_lease_lost_total')).toBeGreaterThan(0)
      expect(printed[0]!.join('')).toContain('write lease lost to another instance')

      // Every acknowledged entry at its index, every checkpoint seen consistent, the audit passes — on both live instances.
      const report = await checkAcked(survivor.url, appends)
      const again = await checkAcked(paused.url, appends)
      expect(again.size).toBeGreaterThanOrEqual(report.size)
      // Exactly once: no acknowledged entry appears anywhere else in the log.
      const { fetchFile } = await servedLog(survivor.url, appends.space)
      const count = new Map<string, number>()
      for (let n = 0; n * 256 < report.size; n++) {
        for (const e of parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(256, report.size - n * 256))))!)) {
          const text = new TextDecoder().decode(e)
          count.set(text, (count.get(text) ?? 0) + 1)
        }
      }
      for (const { entry } of appends.acked.values()) expect(count.get(entry), entry).toBe(1)
      expect([...count.values()].every((k) => k === 1)).toBe(true)

      // Go's x/mod agrees: the final checkpoint's signature, and the tree recomputed from the served tiles and bundles.
      const head = (await (await fetch(`${survivor.url}/logs/${appends.space}/head`)).json()) as { vkey: string }
      const note = new TextDecoder().decode((await fetchFile('checkpoint'))!)
      const signed = await goTool(['verify-note', head.vkey], note)
      expect(signed.code, signed.stderr).toBe(0)
      const cp = parseCheckpoint(parseNote(note).text)
      const tiles = await mkdtemp(join(tmpdir(), 'ucanlog-pg-multi-go-'))
      dirs.push(tiles)
      const paths = newTiles(0, cp.size).map(tilePath)
      for (let n = 0; n * TILE_WIDTH < cp.size; n++) paths.push(entryBundlePath(n, Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH)))
      for (let n = 0; (n + 1) * TILE_WIDTH <= cp.size; n++) paths.push(tilePath({ level: 0, index: n, width: TILE_WIDTH }))
      for (const p of new Set(paths)) {
        await mkdir(dirname(join(tiles, p)), { recursive: true })
        await writeFile(join(tiles, p), (await fetchFile(p))!)
      }
      const tree = await goTool(['verify-tiles', tiles, String(cp.size), encodeBase64(cp.rootHash)])
      expect(tree.code, tree.stderr).toBe(0)

      for (const s of [paused, survivor]) {
        s.child.kill('SIGTERM')
        await new Promise((ok) => s.child.once('exit', ok))
      }
    } finally {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    }
  })
})

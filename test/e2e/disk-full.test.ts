/**
 * Issue 15 item 1: disk full (ENOSPC) on a real filesystem. The data directory is a size-limited
 * tmpfs (`mount -t tmpfs -o size=2m`), the real service appends until it fills: appends are refused
 * with a named error (not a bare 500), `/healthz` reports it, nothing half-written is served or left
 * behind (no temporary file, every served tile and bundle whole, the checkpoint consistent), and
 * once the tmpfs is remounted larger appends resume without a restart and the whole log audits clean
 * with every acknowledged entry present.
 *
 * Needs root (mount). This machine's test setup runs as root; a run without mount permission fails
 * with a message naming what is needed, it is never skipped silently.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { CarPacker } from '../../src/storage/car-packer.js'
import { entryBundlePath, parseEntryBundle, tilePath } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { startTestService } from './helpers.js'
import { servedLog } from './read-helpers.js'

let mountDir: string | undefined
afterAll(async () => {
  if (!mountDir) return
  try {
    execFileSync('umount', [mountDir])
  } catch {
    execFileSync('umount', ['-l', mountDir])
  }
  await rm(mountDir, { recursive: true, force: true })
})

/** Every file under `dir` (relative paths). */
async function walk(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String)
}

describe('disk full (ENOSPC) on a size-limited tmpfs', () => {
  it('appends refused StorageFull, /healthz reports it, nothing half-written, appends resume once space is freed and the log audits clean', async () => {
    mountDir = await mkdtemp(join(tmpdir(), 'ucanlog-enospc-'))
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountDir], { stdio: 'pipe' })
    } catch (err) {
      const dir = mountDir
      await rm(dir, { recursive: true, force: true })
      mountDir = undefined
      throw new Error(`this test needs to mount a tmpfs (run as root, or with CAP_SYS_ADMIN): mount -t tmpfs -o size=2m tmpfs ${dir} failed: ${(err as Error).message}`)
    }
    const svc = await startTestService({ dataDir: mountDir })
    let stopped = false
    try {
      const space = await generateKey()
      const agent = await generateKey()
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
      const acked = new Map<number, string>()
      const append = async (entry: string): Promise<{ ok: boolean; name?: string; message?: string }> => {
        const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent })
        const out = (await conn.execute(inv))[0]!.out as { ok?: { index: number }; error?: { name: string; message: string } }
        if (out.ok) {
          acked.set(out.ok.index, entry)
          return { ok: true }
        }
        return { ok: false, name: out.error!.name, message: out.error!.message }
      }

      // Fill the disk: ~60 KB entries (near the 65,535-byte maximum, so the right-edge bundle the
      // log rewrites each batch soon outgrows the room left: the log's own writes fail ENOSPC, and
      // the replay guard's SQLite SQLITE_FULL) until an append is refused (2 MiB holds far fewer
      // than 2,000).
      const pad = 'x'.repeat(60000)
      let refused: { ok: boolean; name?: string; message?: string } | undefined
      let i = 0
      for (; i < 2000 && !refused; i++) {
        const r = await append(`entry ${i} ${pad}`)
        if (!r.ok) refused = r
      }
      expect(refused, 'an append refused once the disk is full').toBeDefined()
      expect(refused!.name).toBe('StorageFull')
      expect(refused!.message).not.toMatch(/\n\s+at /)
      // More appends while full: every one acknowledged or refused StorageFull, never InternalError.
      const whileFull = new Set<string>()
      for (let k = 0; k < 10; k++, i++) {
        const r = await append(`entry ${i} ${pad}`)
        whileFull.add(r.ok ? 'ok' : r.name!)
      }
      expect([...whileFull].filter((n) => n !== 'ok' && n !== 'StorageFull'), 'answers while the disk is full').toEqual([])
      expect(whileFull.has('StorageFull')).toBe(true)

      const health = await fetch(`${svc.url}/healthz`)
      expect(health.status).toBe(503)
      const healthBody = (await health.json()) as { storage?: { status: string; code: string } }
      expect(healthBody.storage?.status).toBe('StorageFull')
      expect(healthBody.storage?.code).toMatch(/^(ENOSPC|SQLITE_FULL)$/)

      // Nothing half-written: no temporary file left behind, the commit point and the published
      // checkpoint consistent, nothing past the published size served.
      const files = await walk(mountDir)
      expect(files.filter((f) => f.split('/').some((seg) => seg.startsWith('.tmp-'))), 'temporary files left').toEqual([])
      const base = `${svc.url}/logs/${space.did()}/`
      const served = await servedLog(svc.url, space.did())
      const { fetchFile } = served
      const whileFullReport = await auditLog(served)
      const state = JSON.parse(await readFile(join(mountDir, 'logs', space.did(), '.state', 'tree'), 'utf8')) as { size: number }
      expect(state.size).toBeGreaterThanOrEqual(whileFullReport.size)
      expect(whileFullReport.size).toBeGreaterThanOrEqual(Math.max(...acked.keys()) + 1)
      const next = whileFullReport.size
      if (next % 256 !== 0) {
        expect((await fetch(base + tilePath({ level: 0, index: Math.floor(next / 256), width: (next % 256) + 1 }))).status).toBe(404)
        expect((await fetch(base + entryBundlePath(Math.floor(next / 256), (next % 256) + 1))).status).toBe(404)
      }

      // Space freed, no restart: appends resume, /healthz is ok again.
      execFileSync('mount', ['-o', 'remount,size=16m', mountDir])
      const before = acked.size
      for (let k = 0; k < 20; k++, i++) expect((await append(`entry ${i} after`)).ok, `append ${k} after the remount`).toBe(true)
      expect(acked.size).toBe(before + 20)
      expect((await fetch(`${svc.url}/healthz`)).status).toBe(200)

      // The whole log audits clean and holds every acknowledged entry at its index.
      const report = await auditLog({ ...served, previous: { size: whileFullReport.size, rootHash: whileFullReport.rootHash } })
      expect(report.size).toBeGreaterThanOrEqual(Math.max(...acked.keys()) + 1)
      const bundles = new Map<number, Uint8Array[]>()
      for (const [index, entry] of acked) {
        const n = Math.floor(index / 256)
        if (!bundles.has(n)) bundles.set(n, parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(256, report.size - n * 256))))!))
        expect(new TextDecoder().decode(bundles.get(n)![index % 256]), `entry at ${index}`).toBe(entry)
      }

      // Archiving resumed too (the CAR packer, closed by the failed pack, reopened at the next one):
      // once the service has stopped, the newest CAR is of the final checkpoint.
      await svc.stop()
      stopped = true
      const packer = await CarPacker.open(join(mountDir, 'cars', space.did()))
      try {
        expect(packer.lastTreeSize).toBe(report.size)
      } finally {
        await packer.close()
      }
    } finally {
      if (!stopped) await svc.stop()
    }
  }, 120_000)
})

/**
 * Issue 15 item 2 against the real service: a failed fsync of one space's log storage (injected
 * through the storage seam, ServiceHooks.storageIO, test/helpers/faulty-io.ts) is answered over
 * HTTP with the named receipt error `StorageFailed` (never InternalError, never a stack); that log
 * is stopped while every other space's log keeps appending; while the fault lasts the reopen fails
 * and is refused by name; once it clears the next append reopens the log from its last committed
 * state, and the whole log audits clean with every acknowledged entry at its index — also in what
 * a power loss would have left.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { Log } from '../../src/log/log.js'
import { FileStore } from '../../src/storage/file-store.js'
import { ed25519Signer, entryBundlePath, parseEntryBundle } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { FaultyIO } from '../helpers/faulty-io.js'
import { startTestService } from './helpers.js'
import { servedLog } from './read-helpers.js'

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

describe('a failed fsync of one log over HTTP (issue 15 item 2)', () => {
  it('refused StorageFailed for that space only; reopened at the next append once the fault clears; audits clean', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-fsync-'))
    dirs.push(dataDir)
    const io = new FaultyIO(dataDir)
    const svc = await startTestService({ dataDir }, { storageIO: io })
    try {
      const agent = await generateKey()
      const spaces = await Promise.all([generateKey(), generateKey()])
      const grants = await Promise.all(spaces.map((space) => delegateSpaceToAgent({ space, agent })))
      const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
      const acked = spaces.map(() => new Map<number, string>())
      const append = async (s: number, entry: string): Promise<{ ok: true; index: number } | { ok: false; name: string; message: string }> => {
        const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: spaces[s]!.did(), entry: new TextEncoder().encode(entry), spaceToAgent: grants[s]! })
        const out = (await conn.execute(inv))[0]!.out as { ok?: { index: number }; error?: { name: string; message: string } }
        if (out.ok) {
          acked[s]!.set(out.ok.index, entry)
          return { ok: true, index: out.ok.index }
        }
        return { ok: false, name: out.error!.name, message: out.error!.message }
      }
      for (let i = 0; i < 3; i++) for (const s of [0, 1]) expect((await append(s, `${s}: entry ${i}`)).ok).toBe(true)
      const a = spaces[0]!.did()

      // The directory fsync after the rename of space 0's commit point fails: visible, not durable.
      io.failWhen = (step) => step.op === 'fsyncDir' && step.path === `logs/${a}/.state`
      const refused = await append(0, '0: entry 3')
      expect(refused).toMatchObject({ ok: false, name: 'StorageFailed' })
      expect((refused as { message: string }).message).not.toMatch(/\n\s+at |\/tmp\//)
      // The other space is not affected.
      expect((await append(1, '1: entry 3')).ok).toBe(true)

      // While the disk still fails, reopening fails too: refused by name again.
      io.failed = undefined
      io.failWhen = (step) => step.op === 'write' && step.path.startsWith(`logs/${a}/`)
      expect(await append(0, '0: entry 4')).toMatchObject({ ok: false, name: 'StorageFailed' })
      expect(io.failed).toBeDefined()
      expect((await append(1, '1: entry 4')).ok).toBe(true)

      // The fault gone: the next append reopens the log, and it goes on.
      io.failWhen = undefined
      for (let i = 5; i < 10; i++) expect((await append(0, `0: entry ${i}`)).ok, `append ${i} after the fault`).toBe(true)

      // The whole log audits clean and holds every acknowledged entry at its index.
      for (const s of [0, 1]) {
        const served = await servedLog(svc.url, spaces[s]!.did())
        const report = await auditLog(served)
        const entries = parseEntryBundle((await served.fetchFile(entryBundlePath(0, report.size)))!)
        for (const [index, entry] of acked[s]!) expect(new TextDecoder().decode(entries[index]!), `space ${s} entry ${index}`).toBe(entry)
      }

      // A power loss now (the model's image of what is durable) keeps every acknowledged entry.
      const image = await mkdtemp(join(tmpdir(), 'ucanlog-fsync-image-'))
      dirs.push(image)
      await io.crashImage(`logs/${a}`, image)
      const origin = `ucanlog/logs/${a}`
      const witnesses = { cosign: async (note: string) => ({ note, cosigned: new Set<string>(), satisfied: true }) }
      const crashed = await Log.open({ id: a, origin, signer: ed25519Signer(origin, new Uint8Array(32)), files: await FileStore.create(image), witnesses })
      expect(crashed.treeSize).toBeGreaterThan(Math.max(...acked[0]!.keys()))
      await crashed.close()
    } finally {
      await svc.stop()
    }
  }, 120_000)
})

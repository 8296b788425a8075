/**
 * A second real service that holds another service's keys: the same service DID, log key (so the
 * same origins) and bundled-witness key, but its own data — its log of a space is a fork of the
 * first's as soon as their entries differ. For testing what a client does with a forked, rolled
 * back or split view of a log.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestService } from '../e2e/helpers.js'

/** Starts a service on a fresh data directory holding copies of `svc`'s `service.key` and `witness.key`; `stop` also removes that directory. */
export async function startSameKeysService(svc: { dataDir: string }): Promise<Awaited<ReturnType<typeof startTestService>>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-same-keys-'))
  await copyFile(join(svc.dataDir, 'service.key'), join(dataDir, 'service.key'))
  await copyFile(join(svc.dataDir, 'witness.key'), join(dataDir, 'witness.key'))
  const fork = await startTestService({ dataDir })
  return {
    ...fork,
    async stop() {
      await fork.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/**
 * Appends under load that remember what the service acknowledged, and the check that a served log
 * holds every acknowledged entry at its index with every checkpoint a client saw consistent with the
 * final one — shared by the crash-and-restart tests (the file store's and PostgreSQL's).
 */
import type { ChildProcess } from 'node:child_process'
import type * as API from '@ucanto/interface'
import { expect } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { checkTree, decodeBase64, entryBundlePath, parseEntryBundle, proveTree, tileHashReader, tilePath } from '../../src/tlog/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { servedLog } from './read-helpers.js'

/** One space's appender: what was sent, what was acknowledged (by index), and the load itself. */
export interface AckedAppends {
  readonly space: string
  /** Acknowledged entries by their index, with the receipt's result. */
  readonly acked: Map<number, { entry: string; r: AppendResult }>
  /** Appends sent so far (acknowledged or not). */
  readonly sent: number
  /**
   * Appends `<prefix> <n>` entries with `workers` concurrent clients until `count` have been sent
   * (undefined: until `signal.stop`); a connection failure ends a worker (the server died: that
   * append was never acknowledged), a refusal throws — or, with `o.refused`, is handed to it and ends
   * that worker (an expected refusal, e.g. LeaseLost from a fenced-out instance).
   */
  load(url: string, did: string, count: number | undefined, signal: { stop: boolean }, workers?: number, o?: { refused?(error: unknown): void }): Promise<void>
}

/** A fresh space and agent, and an appender for them (entries `<prefix> <n>`). */
export async function ackedAppends(prefix: string): Promise<AckedAppends> {
  const space = await generateKey()
  const agent = await generateKey()
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const acked = new Map<number, { entry: string; r: AppendResult }>()
  let sent = 0
  return {
    space: space.did(),
    acked,
    get sent() {
      return sent
    },
    async load(url, did, count, signal, workers = 16, o = {}) {
      const conn = connect(`${url}/rpc`, did as API.DID)
      const worker = async () => {
        while (!signal.stop && (count === undefined || sent < count)) {
          const entry = `${prefix} ${sent++}`
          const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: new TextEncoder().encode(entry), spaceToAgent })
          let out
          try {
            out = (await conn.execute(inv))[0]!.out as { ok?: AppendResult }
          } catch {
            return // the server died under us: this append was never acknowledged
          }
          if (!out.ok && o.refused) return o.refused((out as { error?: unknown }).error)
          if (!out.ok) throw new Error(`append refused: ${JSON.stringify(out)}`)
          acked.set(out.ok.index, { entry, r: out.ok })
        }
      }
      await Promise.all(Array.from({ length: workers }, worker))
    },
  }
}

/** Resolves once `n` appends have been acknowledged. */
export function untilAcked(a: AckedAppends, n: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (a.acked.size >= n) {
        clearInterval(t)
        resolve()
      }
    }, 5)
  })
}

/**
 * Audits the log `url` serves for the appender's space (auditLog: every tile, bundle and checkpoint
 * signature), then checks every acknowledged entry is at its acknowledged index and every
 * checkpoint a receipt showed is consistent with the audited tree. Resolves the audited size and root.
 */
export async function checkAcked(url: string, a: AckedAppends): Promise<{ size: number; rootHash: Uint8Array }> {
  const served = await servedLog(url, a.space)
  const { fetchFile } = served
  const report = await auditLog(served)
  expect(report.size).toBeGreaterThanOrEqual(Math.max(...a.acked.keys()) + 1)
  const bundles = new Map<number, Uint8Array[]>()
  for (const [index, { entry }] of a.acked) {
    const n = Math.floor(index / 256)
    if (!bundles.has(n)) bundles.set(n, parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(256, report.size - n * 256))))!))
    expect(new TextDecoder().decode(bundles.get(n)![index % 256]), `entry at ${index}`).toBe(entry)
  }
  const reader = tileHashReader(report.size, report.rootHash, {
    readTiles: (tiles) => Promise.all(tiles.map(async (t) => (await fetchFile(tilePath(t)))!)),
  })
  const seen = new Map<number, string>()
  for (const { r } of a.acked.values()) seen.set(r.treeSize, r.rootHash)
  for (const [size, root] of seen) {
    expect(size).toBeLessThanOrEqual(report.size)
    checkTree(await proveTree(report.size, size, reader), report.size, report.rootHash, size, decodeBase64(root))
  }
  return { size: report.size, rootHash: report.rootHash }
}

/**
 * Loads `server` until `n` appends are acknowledged, then kills it with SIGKILL while appends are in
 * flight, and resolves once every worker has stopped: the number acknowledged before the kill.
 */
export async function killMidLoad(a: AckedAppends, server: { url: string; did: string; child: ChildProcess }, n: number, workers?: number): Promise<number> {
  const signal = { stop: false }
  const running = a.load(server.url, server.did, undefined, signal, workers)
  await untilAcked(a, n)
  server.child.kill('SIGKILL')
  signal.stop = true
  await running
  return a.acked.size
}

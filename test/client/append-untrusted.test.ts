/**
 * `client.append` when the service's answer does not check out: the forging proxy
 * (test/helpers/forging-proxy.ts: it holds the service key, as a compromised service would) in
 * front of the real service and its bundled witness rewrites one receipt's inclusion proof. The
 * batch stops — no entry is sent after the invocations in flight end — the call throws the named
 * verification error (exit code 3), never returning the forged result, and the pins do not move.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type UcanlogClient, VerificationError, createClient, createKey, delegateSpaceToAgent, formatDelegation } from '../../src/client/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { startTestService } from '../e2e/helpers.js'
import { startForgingProxy } from '../helpers/forging-proxy.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let svc: Svc

beforeAll(async () => {
  svc = await startTestService()
})
afterAll(async () => {
  await svc?.stop()
})

/** A proxy that replaces the first proof hash of the `forge`-th append result (1-based); `appends()` counts the append results it passed. */
async function proxyForging(forge: number) {
  let appends = 0
  const proxy = await startForgingProxy(svc, (r: AppendResult) => {
    if (!('inclusionProof' in r)) return r // tlog/create's result
    appends++
    return appends === forge ? { ...r, inclusionProof: [Buffer.alloc(32, 7).toString('base64'), ...r.inclusionProof.slice(1)] } : r
  })
  return { ...proxy, appends: () => appends }
}

async function clientVia(url: string): Promise<UcanlogClient> {
  const space = await createKey()
  const agent = await createKey()
  return createClient({ url, agent, proof: await formatDelegation(await delegateSpaceToAgent({ space, agent })) })
}

describe('append refuses a result that does not check out', () => {
  it('the forged proof of the 2nd entry throws InclusionProofInvalid (exit 3) and nothing more is sent (concurrency 1)', async () => {
    const proxy = await proxyForging(2)
    try {
      const client = await clientVia(proxy.url)
      const entries = Array.from({ length: 6 }, (_, i) => new Uint8Array([i + 1]))
      const err = await client.append(entries, { concurrency: 1 }).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(VerificationError)
      expect([(err as VerificationError).name, (err as VerificationError).exitCode]).toEqual(['InclusionProofInvalid', 3])
      expect(proxy.appends()).toBe(2)
      expect(client.trust).toBeUndefined() // nothing pinned from a run that did not verify
    } finally {
      await proxy.close()
    }
  })

  it('with 3 in flight, the batch stops short of the end and throws; the pins stay those of the last verified run', async () => {
    const proxy = await proxyForging(4)
    try {
      const client = await clientVia(proxy.url)
      expect((await client.append([new Uint8Array([0]), new Uint8Array([1]), new Uint8Array([2])], { concurrency: 1 })).every((o) => o.ok?.published)).toBe(true)
      const pinned = client.trust
      expect(pinned?.last?.size).toBe(3)
      const entries = Array.from({ length: 30 }, (_, i) => new Uint8Array([10 + i]))
      const err = await client.append(entries, { concurrency: 3 }).then(() => undefined, (e: unknown) => e)
      expect((err as Error).name).toBe('InclusionProofInvalid')
      // The 30 entries were not all sent (how many went depends on the answers' timing: ≥ 1 forged).
      expect(proxy.appends()).toBeLessThan(3 + 30)
      expect(proxy.appends()).toBeGreaterThanOrEqual(4)
      expect(client.trust).toBe(pinned)
    } finally {
      await proxy.close()
    }
  })
})

/**
 * `ucanlog/client`'s createClient against a real service and its bundled witness on loopback: bytes
 * in, the same bytes read back; per-entry outcomes (a refusal does not stop the batch); create,
 * revoke, then the revoked chain refused by name; the named errors for an unreachable service, a
 * refusal and a proof of another agent; and an audit from the exported HTTP readers. Then what
 * append does when the service's answer does not check out: the forging proxy
 * (test/helpers/forging-proxy.ts: it holds the service key, as a compromised service would) rewrites
 * one receipt's inclusion proof; the batch stops — no entry is sent after the invocations in flight
 * end — the call throws the named verification error (exit code 3), and the pins do not move.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  InvalidDelegationError,
  InvalidKeyError,
  type UcanlogClient,
  VerificationError,
  loadTrust,
  ServiceRefusedError,
  ServiceUnreachableError,
  auditLog,
  createClient,
  createKey,
  delegateSpaceToAgent,
  fetchLogHead,
  fetchServiceDID,
  fetchWitnessPolicy,
  formatDelegation,
  leafHash,
  logFiles,
  formatKey,
  parseKey,
  parsePolicy,
} from '../../src/client/index.js'
import { serviceForFile, startTestService } from '../e2e/helpers.js'
import { startForgingProxy } from '../helpers/forging-proxy.js'
import { startSameKeysService } from '../helpers/same-keys-service.js'
import type { AppendResult } from '../../src/ucan/wire.js'

const svc = serviceForFile()

/** A space, an agent, and the Space → Agent delegation as its file text (with the trailing newline). */
async function principals() {
  const space = await createKey()
  const agent = await createKey()
  const proofText = (await formatDelegation(await delegateSpaceToAgent({ space, agent }))) + '\n'
  return { space, agent, proofText }
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('createClient', () => {
  it('appends bytes (binary, text) with one published, proof-checked result each, and reads back the same bytes', async () => {
    const { agent, proofText, space } = await principals()
    const client = await createClient({ url: svc().url, agent, proof: proofText })
    expect([client.serviceDID, client.space]).toEqual([svc().did, space.did()])
    const entries = [new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3]), new TextEncoder().encode('héllo, log'), new Uint8Array([0x0a, 0x0d, 0x0a])]
    const outcomes = await client.append(entries)
    expect(outcomes.map((o) => [o.input, o.error, o.ok?.published])).toEqual([
      [0, undefined, true],
      [1, undefined, true],
      [2, undefined, true],
    ])
    expect(new Set(outcomes.map((o) => o.ok!.index))).toEqual(new Set([0, 1, 2]))
    const read = await client.read(0, 10)
    expect(read.total).toBe(3)
    const byIndex = new Map(outcomes.map((o) => [o.ok!.index, o.entry]))
    expect(read.entries).toEqual([0, 1, 2].map((i) => byIndex.get(i)))
    expect((await client.read(2, 5)).entries).toEqual([byIndex.get(2)])
  })

  it('an empty or oversized entry is refused before sending, by name, and the rest of the batch is appended', async () => {
    const { agent, proofText, space } = await principals()
    const client = await createClient({ url: svc().url, agent, proof: proofText })
    const outcomes = await client.append([new Uint8Array(0), new Uint8Array(65_536), new Uint8Array([1]), new Uint8Array(65_535).fill(7)])
    expect(outcomes.map((o) => o.error?.name ?? 'ok')).toEqual(['InvalidData', 'EntryTooLarge', 'ok', 'ok'])
    const head = await fetchLogHead(svc().url, space.did())
    expect(head?.treeSize).toBe(2)
  })

  it('create answers the log key the head shows; revoke of the proof makes the next append Revoked, an outcome not a throw', async () => {
    const { space, agent, proofText } = await principals()
    const client = await createClient({ url: svc().url, agent, proof: proofText })
    const created = await client.create()
    expect(created.treeSize).toBe(0)
    expect((await client.append(new Uint8Array([42])))[0]!.ok?.index).toBe(0)
    const head = await fetchLogHead(svc().url, space.did())
    expect([head?.origin, head?.vkey]).toEqual([created.origin, created.vkey])

    const revoked = await client.revoke(proofText, { issuer: space })
    expect(revoked.scope).toBe(space.did())
    const [after] = await client.append(new Uint8Array([43]))
    expect(after!.error?.name).toBe('Revoked')
    expect((await fetchLogHead(svc().url, space.did()))?.treeSize).toBe(1)
  })

  it('audits the log from the exported HTTP readers (head, policy, files)', async () => {
    const { agent, proofText, space } = await principals()
    const client = await createClient({ url: svc().url, agent, proof: proofText })
    const entries = Array.from({ length: 5 }, (_, i) => new Uint8Array([i, 0xff - i]))
    expect((await client.append(entries)).every((o) => o.ok?.published)).toBe(true)
    const head = (await fetchLogHead(svc().url, space.did()))!
    const report = await auditLog({ fetchFile: logFiles(svc().url, space.did()), origin: head.origin, logVkey: head.vkey, policy: parsePolicy(await fetchWitnessPolicy(svc().url)) })
    expect(report.size).toBe(5)
    expect(report.inclusionProofsChecked).toBe(5)
    expect(leafHash(entries[0]!)).toHaveLength(32)
    expect(await fetchLogHead(svc().url, (await createKey()).did())).toBeUndefined()
  })

  it('named errors: unreachable (exit 4), a refusal (exit 2, the service\'s name), a proof of another agent', async () => {
    const { agent, proofText } = await principals()
    const url = `http://127.0.0.1:${await closedPort()}`
    const unreachable = await createClient({ url, agent, proof: proofText }).catch((e: unknown) => e)
    expect(unreachable).toBeInstanceOf(ServiceUnreachableError)
    expect([(unreachable as ServiceUnreachableError).name, (unreachable as ServiceUnreachableError).exitCode]).toEqual(['ServiceUnreachable', 4])
    expect((unreachable as Error).message).toContain(url)
    // The DID given: nothing is fetched until append, which fails the same way before sending anything.
    const offline = await createClient({ url, agent, proof: proofText, serviceDID: await fetchServiceDID(svc().url) })
    await expect(offline.append([new Uint8Array([1]), new Uint8Array([2])])).rejects.toBeInstanceOf(ServiceUnreachableError)
    await expect(offline.read()).rejects.toBeInstanceOf(ServiceUnreachableError)

    // Reading a log that does not exist: the service's refusal, by its name.
    const reader = await createClient({ url: svc().url, agent, space: (await createKey()).did() })
    const refused = await reader.read().catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(ServiceRefusedError)
    expect([(refused as ServiceRefusedError).name, (refused as ServiceRefusedError).exitCode]).toEqual(['UnknownLog', 2])
    // A client without a proof reads but does not append.
    await expect(reader.append(new Uint8Array([1]))).rejects.toBeInstanceOf(InvalidDelegationError)

    const other = await createKey()
    await expect(createClient({ url: svc().url, agent: other, proof: proofText })).rejects.toThrow(/not to this agent/)
  })

  it('an HTTP refusal (413: the request is over the service\'s body limit) is that entry\'s outcome, with its status; stopOnError sends no more', async () => {
    const small = await startTestService({ maxBodyBytes: 16_384 })
    try {
      const { agent, proofText, space } = await principals()
      const client = await createClient({ url: small.url, agent, proof: proofText })
      const big = new Uint8Array(60_000).fill(1)
      const outcomes = await client.append([new Uint8Array([1]), big, new Uint8Array([2])], { concurrency: 1 })
      expect(outcomes.map((o) => [o.error?.name, o.error?.status, o.ok?.published])).toEqual([
        [undefined, undefined, true],
        ['HTTPError', 413, undefined],
        [undefined, undefined, true],
      ])
      const stopped = await client.append([big, new Uint8Array([3])], { concurrency: 1, stopOnError: true })
      expect(stopped.map((o) => o.error?.name)).toEqual(['HTTPError', 'NotSent'])
      expect((await fetchLogHead(small.url, space.did()))?.treeSize).toBe(2)
    } finally {
      await small.stop()
    }
  })

  it('keys: formatKey / parseKey round trip through a key file\'s text; garbage is InvalidKey and never echoed', async () => {
    const key = await createKey()
    expect(parseKey(`${formatKey(key)}\n`).did()).toBe(key.did())
    for (const text of ['', 'Mnot-a-key-SECRETSECRET', formatKey(key).slice(0, -4)]) {
      const err = (() => {
        try {
          parseKey(text)
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(InvalidKeyError)
      expect([(err as InvalidKeyError).name, (err as InvalidKeyError).exitCode]).toEqual(['InvalidKey', 1])
      expect((err as Error).message).not.toContain('SECRET')
    }
  })

  it('pins on first use (noted), verifies later runs against the pins, and in a stateDir refuses a fork of the log served with the same keys', async () => {
    const { space, agent, proofText } = await principals()
    const notes: string[] = []
    const first = await createClient({ url: svc().url, agent, proof: proofText, onNote: (n) => notes.push(n) })
    expect(first.trust).toBeUndefined()
    expect((await first.append([new Uint8Array([1]), new Uint8Array([2])])).every((o) => o.ok?.published)).toBe(true)
    expect(notes.join('\n')).toMatch(/trusting the service DID[\s\S]*trusting the log key[\s\S]*witness policy/)
    expect([first.trust?.serviceDid, first.trust?.last?.size]).toEqual([svc().did, 2])
    notes.length = 0
    // The next client starts from the app's saved pins: nothing is trusted anew.
    const second = await createClient({ url: svc().url, agent, proof: proofText, trust: first.trust, onNote: (n) => notes.push(n) })
    expect((await second.append(new Uint8Array([3])))[0]!.ok?.index).toBe(2)
    expect([notes, second.trust?.last?.size]).toEqual([[], 3])

    // A trust-store directory, then the same keys serving another log for the space: a fork.
    const state = await mkdtemp(join(tmpdir(), 'ucanlog-client-state-'))
    const fork = await startSameKeysService(svc())
    try {
      const pinning = await createClient({ url: svc().url, agent, proof: proofText, stateDir: state })
      expect((await pinning.append(new Uint8Array([4])))[0]!.ok?.index).toBe(3)
      expect((await loadTrust(state, space.did()))?.last?.size).toBe(4)
      const forked = await createClient({ url: fork.url, agent, proof: proofText, stateDir: state })
      const err = await forked.append([new Uint8Array([9]), new Uint8Array([8]), new Uint8Array([7]), new Uint8Array([6]), new Uint8Array([5])]).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(VerificationError)
      // Which check names it depends on the fork's batching: a checkpoint of the pinned size with
      // another root (SplitView), or a larger one not extending the pin (LogForked).
      expect(['LogForked', 'SplitView']).toContain((err as Error).name)
      expect((await loadTrust(state, space.did()))?.last?.size).toBe(4) // the pin did not move
    } finally {
      await fork.stop()
      await rm(state, { recursive: true, force: true })
    }
  })
})

/** A proxy that replaces the first proof hash of the `forge`-th append result (1-based); `appends()` counts the append results it passed. */
async function proxyForging(forge: number) {
  let appends = 0
  const proxy = await startForgingProxy(svc(), (r: AppendResult) => {
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

/**
 * The main job on loopback: a ucanto client appends through the real server, the bundled witness
 * cosigns over HTTP, and the auditor verifies from the public HTTP routes alone. Then every
 * authorization check of docs/wire.md fails once, on its own, and nothing is written.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import { Verifier } from '@ucanto/principal'
import type * as API from '@ucanto/interface'
import { CID } from 'multiformats/cid'
import { describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { checkAppendResult } from '../../src/client/receipt.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { readUnixfsFile as readUnixfs } from '../../src/storage/unixfs.js'
import { cosignatureVerifier, ed25519Verifier, encodeBase64, openNote, parsePolicy } from '../../src/tlog/index.js'
import {
  TlogAppend,
  appendInvocation,
  connect,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  generateKey,
  readInvocation,
} from '../../src/ucan/index.js'
import { encodeRequest, outOf, sendRaw } from '../ucan/helpers.js'
import { httpTarget, impostor, serviceForFile } from './helpers.js'

const svc = serviceForFile()
const now = () => Math.floor(Date.now() / 1000)
const text = (s: string) => new TextEncoder().encode(s)

async function head(space: string) {
  const res = await fetch(`${svc().url}/logs/${space}/head`)
  return res.ok ? ((await res.json()) as { treeSize: number; vkey: string; origin: string }) : undefined
}

describe('append → cosign → audit, over HTTP', () => {
  it('appends entries, each acknowledged with a cosigned checkpoint and a valid inclusion proof; the auditor verifies', async () => {
    const space = await generateKey()
    const agent = await generateKey()
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const conn = connect(`${svc().url}/rpc`, svc().did as API.DID)
    const entries = Array.from({ length: 40 }, (_, i) => text(`e2e entry ${i}`))
    const receipts = await Promise.all(
      entries.map(async (entry) => {
        const inv = await appendInvocation({ agent, service: svc().did as API.DID, space: space.did(), entry, spaceToAgent })
        return (await conn.execute(inv))[0]!
      }),
    )
    const service = Verifier.parse(svc().did as API.DID)
    const logVkey = (await head(space.did()))!.vkey
    const witness = cosignatureVerifier(svc().witnessVkey!)
    const seen = new Set<number>()
    for (const [k, r] of receipts.entries()) {
      expect((await r.verifySignature(service)).ok).toBeDefined()
      const out = r.out as { ok?: AppendResult; error?: unknown }
      expect(out.error).toBeUndefined()
      const res = out.ok!
      expect(res.published).toBe(true)
      expect(res.origin).toBe(`ucanlog/logs/${space.did()}`)
      checkAppendResult(res, entries[k]!)
      // Signed by the log, cosigned by the bundled witness.
      expect(openNote(res.checkpoint, [ed25519Verifier(logVkey)]).verified).toHaveLength(1)
      expect(openNote(res.checkpoint, [witness]).verified).toHaveLength(1)
      seen.add(res.index)
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i))

    // /info shows the effective policy with the bundled witness's vkey.
    const info = (await (await fetch(`${svc().url}/info`)).json()) as { did: string; witnessPolicy: string; witnesses: { vkey: string; url: string }[] }
    expect(info.did).toBe(svc().did)
    expect(info.witnessPolicy).toContain(svc().witnessVkey)
    expect(info.witnesses[0]!.url).toBe(`${svc().url}/witness`)

    // An auditor with nothing but HTTP verifies everything.
    const report = await auditLog({
      fetchFile: async (p) => {
        const res = await fetch(`${svc().url}/logs/${space.did()}/${p}`)
        return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
      },
      origin: `ucanlog/logs/${space.did()}`,
      logVkey,
      policy: parsePolicy(info.witnessPolicy),
    })
    expect(report.size).toBe(40)
    expect(report.cosignatures).toHaveLength(1)
    expect(report.inclusionProofsChecked).toBe(40)

    // tlog/read returns the entries, to anyone who signs an invocation.
    const reader = await generateKey()
    const [rr] = await conn.execute(readInvocation({ issuer: reader, service: svc().did as API.DID, space: space.did(), offset: 5, limit: 3 }))
    // Concurrent requests are sequenced in arrival order, not send order: read back what each
    // receipt acknowledged at indexes 5, 6 and 7.
    const atIndex = new Map(receipts.map((r, k) => [(r.out as { ok: AppendResult }).ok.index, entries[k]!]))
    expect(rr!.out.ok).toEqual({ entries: [5, 6, 7].map((i) => encodeBase64(atIndex.get(i)!)), total: 40 })

    // The newest CAR's root is a UnixFS directory with the tlog-tiles layout of the whole log.
    // A batch's appends are answered while its CAR is packed: wait for the CAR of all 40.
    const carsDir = join(svc().dataDir, 'cars', space.did())
    const carNames = async () => (await readdir(carsDir)).filter((f) => f.endsWith('.car')).sort()
    await expect.poll(async () => Number((await carNames()).at(-1)?.slice(0, 16)), { timeout: 10_000 }).toBe(40)
    const cars = await carNames()
    expect(cars.length).toBeGreaterThanOrEqual(1)
    const blocks = new Map<string, Uint8Array>()
    let root: CID | undefined
    for (const f of cars) {
      const it = await CarBlockIterator.fromBytes(await readFile(join(carsDir, f)))
      root = (await it.getRoots())[0] as unknown as CID
      for await (const b of it) blocks.set(b.cid.toString(), b.bytes)
    }
    const get = async (cid: CID) => blocks.get(cid.toString())
    const cpFromCar = Buffer.from((await readUnixfs(get, root!, 'checkpoint'))!).toString()
    expect(cpFromCar).toBe(await (await fetch(`${svc().url}/logs/${space.did()}/checkpoint`)).text())
    const bundle = await readUnixfs(get, root!, 'tile/entries/000.p/40')
    expect(Buffer.from(bundle!).equals(Buffer.from(await (await fetch(`${svc().url}/logs/${space.did()}/tile/entries/000.p/40`)).arrayBuffer()))).toBe(true)

    // The bundled witness's status page lists the log.
    expect(await (await fetch(`${svc().url}/witness`)).text()).toContain(`ucanlog/logs/${space.did()}`)
  })

  it('serves only published files, with C2SP content types and caching', async () => {
    const space = await generateKey()
    const agent = await generateKey()
    const conn = connect(`${svc().url}/rpc`, svc().did as API.DID)
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    await conn.execute(await appendInvocation({ agent, service: svc().did as API.DID, space: space.did(), entry: text('x'), spaceToAgent }))
    const base = `${svc().url}/logs/${space.did()}`
    const cp = await fetch(`${base}/checkpoint`)
    expect(cp.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    const tile = await fetch(`${base}/tile/0/000.p/1`)
    expect(tile.status).toBe(200)
    expect(tile.headers.get('content-type')).toBe('application/octet-stream')
    // A partial tile: cached a minute (superseded as the log grows); full ones are immutable (test/e2e/read-api.test.ts, issue 13).
    expect(tile.headers.get('cache-control')).toBe('public, max-age=60')
    expect((await fetch(`${base}/tile/0/000.p/2`)).status).toBe(404) // beyond the published size
    expect((await fetch(`${base}/tile/0/000`)).status).toBe(404)
    for (const bad of ['tile/0/00', 'tile/0/000.p/0', 'tile/00/000', 'tile/0/x000/000', 'tile/0/%2e%2e/000', 'tile/entries/000.p/01']) {
      expect((await fetch(`${base}/${bad}`)).status, bad).toBeGreaterThanOrEqual(400)
    }
  })

  it('unknown logs are 404 and create nothing', async () => {
    const stranger = (await generateKey()).did()
    for (const p of ['checkpoint', 'head', 'tile/0/000', 'tile/entries/000.p/1']) {
      expect((await fetch(`${svc().url}/logs/${stranger}/${p}`)).status).toBe(404)
    }
    expect((await fetch(`${svc().url}/logs/..%2F..%2Fetc/checkpoint`)).status).toBe(404)
    expect(existsSync(join(svc().dataDir, 'logs', stranger))).toBe(false)
  })
})

describe('every authorization check, failing alone, refuses the append and writes nothing', () => {
  interface Case {
    name: string
    want: string
    build(p: { space: API.Signer<API.DIDKey>; agent: API.Signer<API.DIDKey>; mallory: API.Signer<API.DIDKey>; service: API.DID }): Promise<API.Invocation>
  }
  const cases: Case[] = [
    {
      name: 'wrong invocation audience',
      want: 'InvalidAudience',
      async build({ space, agent, mallory, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
        return (await appendInvocation({ agent, service: mallory.did(), space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'wrong delegation audience',
      want: 'InvalidAudience',
      async build({ space, agent, mallory, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        const agentToMallory = await delegateAgentToService({ agent, service: mallory.did(), proofs: [spaceToAgent] })
        return (await appendInvocation({ agent, service, space: space.did(), entry: text('a'), agentToService: agentToMallory })).delegate()
      },
    },
    {
      name: 'stolen delegation (mallory invokes with the agent’s Agent→Service delegation)',
      want: 'DelegationIssuerMismatch',
      async build({ space, agent, mallory, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
        return (await appendInvocation({ agent: mallory, service, space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'expired invocation',
      want: 'Expired',
      async build({ space, agent, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        return (await appendInvocation({ agent, service, space: space.did(), entry: text('a'), spaceToAgent, lifetime: -60 })).delegate()
      },
    },
    {
      name: 'expired Space→Agent proof',
      want: 'Expired',
      async build({ space, agent, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent, expiration: now() - 60 })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent], expiration: now() + 600 })
        return (await appendInvocation({ agent, service, space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'missing upload/add',
      want: 'Unauthorized',
      async build({ space, agent, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent, capabilities: ['space/blob/add', 'space/index/add'] })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
        return (await appendInvocation({ agent, service, space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'other space (delegation for space B, invocation with space A)',
      want: 'Unauthorized',
      async build({ space, agent, mallory, service }) {
        const otherToAgent = await delegateSpaceToAgent({ space: mallory, agent })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [otherToAgent] })
        return (await appendInvocation({ agent, service, space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'forged invocation signature',
      want: 'InvalidSignature',
      async build({ space, agent, mallory, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
        return (await appendInvocation({ agent: impostor(agent, mallory), service, space: space.did(), entry: text('a'), agentToService })).delegate()
      },
    },
    {
      name: 'bad base64 entry',
      want: 'InvalidData',
      async build({ space, agent, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        const agentToService = await delegateAgentToService({ agent, service, proofs: [spaceToAgent] })
        return TlogAppend.invoke({
          issuer: agent,
          audience: { did: () => service },
          with: space.did(),
          nb: { data: 'aGVsbG8', delegation: await formatDelegation(agentToService) },
          expiration: now() + 60,
        }).delegate()
      },
    },
    {
      name: 'bad base64 delegation',
      want: 'InvalidDelegation',
      async build({ space, agent, service }) {
        return TlogAppend.invoke({ issuer: agent, audience: { did: () => service }, with: space.did(), nb: { data: 'aGVsbG8=', delegation: 'm%%%not-base64' }, expiration: now() + 60 }).delegate()
      },
    },
    {
      name: 'entry of 65536 bytes',
      want: 'EntryTooLarge',
      async build({ space, agent, service }) {
        const spaceToAgent = await delegateSpaceToAgent({ space, agent })
        return (await appendInvocation({ agent, service, space: space.did(), entry: new Uint8Array(65536).fill(1), spaceToAgent })).delegate()
      },
    },
  ]

  for (const c of cases) {
    it(`${c.name} → ${c.want}`, async () => {
      const [space, agent, mallory] = [await generateKey(), await generateKey(), await generateKey()]
      const inv = await c.build({ space, agent, mallory, service: svc().did as API.DID })
      const [receipt] = await sendRaw(httpTarget(svc().url), await encodeRequest([inv]))
      const out = outOf(receipt!)
      expect(out.ok).toBeUndefined()
      expect(out.error?.name).toBe(c.want)
      // Nothing was written: no log, no directory, no witness state for this space.
      expect(await head(space.did())).toBeUndefined()
      expect(existsSync(join(svc().dataDir, 'logs', space.did()))).toBe(false)
      expect(await svc().logs.get(space.did())).toBeUndefined()
    })
  }

  it('transport errors are answered without a receipt and without crashing', async () => {
    const post = (headers: Record<string, string>, body: Uint8Array | string) => fetch(`${svc().url}/rpc`, { method: 'POST', headers, body })
    expect((await post({ 'content-type': 'text/plain' }, 'hello')).status).toBe(415)
    expect((await post({ 'content-type': 'application/vnd.ipld.car' }, new Uint8Array([1, 2, 3]))).status).toBe(400)
    const big = await post({ 'content-type': 'application/vnd.ipld.car' }, new Uint8Array((1 << 20) + 1))
    expect(big.status).toBe(413)
    // Refused on its Content-Length, its body unread: the server closes that connection, and says so
    // (listener.ts closeIfBodyUnread), so the client does not reuse it for the next request.
    expect(big.headers.get('connection')).toBe('close')
    expect(await big.text()).not.toMatch(/at .*\.js/) // no stack trace
    expect((await post({ 'content-type': 'text/plain' }, 'after the 413')).status).toBe(415)
    expect((await fetch(`${svc().url}/healthz`)).status).toBe(200)
  })
})

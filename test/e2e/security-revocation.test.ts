/**
 * Revocation, key rotation, durable replay protection and admission limits on the real service
 * over HTTP (Hono on node, bundled witness, local backend, SQLite UCAN state), including a restart
 * on the same data directory.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appendCommand } from '../../src/cli/append.js'
import { program } from '../../src/cli/main.js'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import type * as API from '@ucanto/interface'
import { delegate } from '@ucanto/core'
import { Absentee } from '@ucanto/principal'
import { cosignatureVerifier, ed25519Verifier, entryBundlePath, leafHash, openNote, parseCheckpoint, parseEntryBundle } from '../../src/tlog/index.js'
import {
  UCANAttest,
  appendInvocation,
  connect,
  createInvocation,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  formatKey,
  generateKey,
  parseRevocationRecord,
  revokeInvocation,
  type Key,
} from '../../src/ucan/index.js'
import { encodeRequest, outOf, sendRaw, type Out } from '../ucan/helpers.js'
import { httpTarget, manualClock, startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
const text = (s: string) => new TextEncoder().encode(s)

async function call(svc: Svc, inv: API.Invocation): Promise<Out> {
  const [receipt] = await sendRaw(httpTarget(svc.url), await encodeRequest([inv]))
  return outOf(receipt!)
}

interface RevocationEntries {
  treeSize: number
  entries: { index: number; ucan: string; scope: string; revoker: string; invocation: string; time: number }[]
}

describe('key rotation: the owner delegates to a new agent and revokes the old delegation (survives restart)', () => {
  let svc: Svc
  let space: Key, oldAgent: Key, newAgent: Key
  let oldS2A: API.Delegation, oldA2S: API.Delegation, newA2S: API.Delegation
  let firstAppend: API.Invocation
  let extraRevoked: API.Delegation
  let firstOut: Out
  let createdVkey: string

  beforeAll(async () => {
    svc = await startTestService()
    ;[space, oldAgent, newAgent] = [await generateKey(), await generateKey(), await generateKey()]
    const service = svc.did as API.DID
    oldS2A = await delegateSpaceToAgent({ space, agent: oldAgent })
    oldA2S = await delegateAgentToService({ agent: oldAgent, service, proofs: [oldS2A] })
    const newS2A = await delegateSpaceToAgent({ space, agent: newAgent })
    newA2S = await delegateAgentToService({ agent: newAgent, service, proofs: [newS2A] })
  })
  afterAll(async () => {
    await svc?.stop()
  })

  // One story, told in steps that build on each other (the log, the revocation, the restart): they
  // run in order inside one test below, so no test depends on another having run first.
  const steps: [string, () => Promise<void>][] = []
  const step = (name: string, fn: () => Promise<void>) => void steps.push([name, fn])

  const append = async (agent: Key, agentToService: API.Delegation, entry: string) =>
    (await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: text(entry), agentToService })).delegate()

  step('tlog/create makes the log explicitly (idempotent) and returns origin, vkey, tree size', async () => {
    const inv = async () => (await createInvocation({ agent: oldAgent, service: svc.did as API.DID, space: space.did(), agentToService: oldA2S })).delegate()
    const out = await call(svc, await inv())
    expect(out.ok).toEqual({ logId: space.did(), origin: `ucanlog/logs/${space.did()}`, vkey: expect.stringMatching(/^ucanlog\/logs\/did:key:.+\+[0-9a-f]{8}\+/), treeSize: 0 })
    expect((await call(svc, await inv())).ok).toEqual(out.ok)
    createdVkey = String(out.ok?.vkey)
  })

  step('the old agent appends; then the space owner revokes Space→OldAgent with ucan/revoke', async () => {
    expect((await call(svc, await append(oldAgent, oldA2S, 'before rotation'))).ok).toMatchObject({ index: 0, published: true })
    const head = (await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { vkey: string }
    expect(head.vkey).toBe(createdVkey)
    // As the README shows: a ucanto connection, `revokeInvocation(...).execute(connection)`.
    const [receipt] = await connect(`${svc.url}/rpc`, svc.did as API.DID).execute(revokeInvocation({ issuer: space, service: svc.did as API.DID, ucan: oldS2A }))
    const revoked = outOf(receipt as never)
    expect(revoked.ok).toMatchObject({ ucan: oldS2A.cid.toString(), scope: space.did(), index: 0 })
  })

  step('from then on the old agent is refused (Revoked) and writes nothing; the new agent appends to the same log', async () => {
    expect((await call(svc, await append(oldAgent, oldA2S, 'old after rotation'))).error?.name).toBe('Revoked')
    firstAppend = await append(newAgent, newA2S, 'after rotation')
    firstOut = await call(svc, firstAppend)
    expect(firstOut.ok).toMatchObject({ index: 1, treeSize: 2, origin: `ucanlog/logs/${space.did()}`, logId: space.did() })
  })

  step('the revocation log is served as tlog-tiles: signed checkpoint, entry bundle, JSON entries since N', async () => {
    const head = (await (await fetch(`${svc.url}/revocations/head`)).json()) as { origin: string; vkey: string; treeSize: number }
    expect(head).toMatchObject({ origin: 'ucanlog/revocations', treeSize: 1 })
    const note = await (await fetch(`${svc.url}/revocations/checkpoint`)).text()
    // Signed by the service's key for this origin and cosigned by the bundled witness.
    const opened = openNote(note, [ed25519Verifier(head.vkey), cosignatureVerifier(svc.witnessVkey!)])
    const cp = parseCheckpoint(opened.text)
    expect(cp.origin).toBe('ucanlog/revocations')
    expect(cp.size).toBe(1)
    expect(opened.verified.map((s) => s.name)).toEqual(['ucanlog/revocations', 'ucanlog.local/witness'])
    const bundle = parseEntryBundle(new Uint8Array(await (await fetch(`${svc.url}/revocations/${entryBundlePath(0, 1)}`)).arrayBuffer()))
    const record = parseRevocationRecord(bundle[0]!)
    expect(record).toMatchObject({ ucan: oldS2A.cid.toString(), scope: space.did(), revoker: space.did() })
    // The checkpoint commits to exactly that entry (tree of one leaf: root = leaf hash).
    expect(Buffer.from(cp.rootHash)).toEqual(Buffer.from(leafHash(bundle[0]!)))
    const entries = (await (await fetch(`${svc.url}/revocations/entries?since=0`)).json()) as RevocationEntries
    expect(entries).toEqual({ treeSize: 1, entries: [{ index: 0, ...record }] })
    expect(((await (await fetch(`${svc.url}/revocations/entries?since=1`)).json()) as RevocationEntries).entries).toEqual([])
    expect((await fetch(`${svc.url}/revocations/entries?since=-1`)).status).toBe(400)
    expect((await fetch(`${svc.url}/revocations/entries?limit=1001`)).status).toBe(400)
    expect((await fetch(`${svc.url}/revocations/tile/entries/000.p/2`)).status).toBe(404) // not published
    expect((await fetch(`${svc.url}/revocations/tile/../../x`)).status).toBe(404)
  })

  step('an outsider’s revocation of the new agent’s delegation is refused (UnrelatedRevocation): nothing logged, no effect', async () => {
    const mallory = await generateKey()
    const out = await call(svc, await revokeInvocation({ issuer: mallory, service: svc.did as API.DID, ucan: newA2S }).delegate())
    expect(out.error?.name).toBe('UnrelatedRevocation')
    expect(((await (await fetch(`${svc.url}/revocations/head`)).json()) as { treeSize: number }).treeSize).toBe(1)
    expect((await call(svc, await append(newAgent, newA2S, 'still fine'))).ok).toMatchObject({ index: 2 })
  })

  step('the space revokes a delegation two links below it, naming the path in nb.proof: logged at index 1', async () => {
    const [third, fourth] = [await generateKey(), await generateKey()]
    const s2t = await delegateSpaceToAgent({ space, agent: third })
    const t2f = await delegateAgentToService({ agent: third, service: fourth.did() as API.DID, proofs: [s2t] })
    extraRevoked = await delegateAgentToService({ agent: fourth, service: svc.did as API.DID, proofs: [t2f] })
    // revokeInvocation finds the path (Fourth→Service ← Third→Fourth ← Space→Third) and sets nb.proof.
    const inv = await revokeInvocation({ issuer: space, service: svc.did as API.DID, ucan: extraRevoked }).delegate()
    expect((inv.capabilities[0] as { nb: { proof?: unknown[] } }).nb.proof?.map(String)).toEqual([t2f.cid.toString(), s2t.cid.toString()])
    expect((await call(svc, inv)).ok).toMatchObject({ scope: space.did(), index: 1 })
  })

  step('after a restart on the same data: the revocation holds, the log of revocations is intact, a replay appends nothing', async () => {
    const dataDir = svc.dataDir
    await svc.close()
    const restarted = await startTestService({ dataDir })
    svc = { ...restarted, stop: async () => {
      await restarted.stop()
      await rm(dataDir, { recursive: true, force: true })
    } }
    expect((await call(svc, await append(oldAgent, oldA2S, 'old after restart'))).error?.name).toBe('Revoked')
    // An invocation answered before the restart, sent again, returns its first result.
    expect(await call(svc, firstAppend)).toEqual(firstOut)
    const entries = (await (await fetch(`${svc.url}/revocations/entries?since=0`)).json()) as RevocationEntries
    expect(entries.treeSize).toBe(2)
    expect(entries.entries.map((e) => e.ucan)).toEqual([oldS2A.cid.toString(), extraRevoked.cid.toString()])
    const out = await call(svc, await append(newAgent, newA2S, 'after restart'))
    expect(out.ok).toMatchObject({ index: 3, treeSize: 4 })
  })

  it('create → the old agent appends → revoked → refused while the new agent appends → revocation log → outsider refused → deep revocation → restart', async () => {
    for (const [name, fn] of steps) {
      try {
        await fn()
      } catch (err) {
        if (err instanceof Error) err.message = `step "${name}": ${err.message}`
        throw err
      }
    }
  })
})

describe('revocation records per scope over HTTP (--revocations-per-scope)', () => {
  it('a principal at its cap gets TooManyRevocations; another principal still revokes', async () => {
    const svc = await startTestService({ revocationsPerScope: 1 })
    try {
      const service = svc.did as API.DID
      const [space, agent, other] = [await generateKey(), await generateKey(), await generateKey()]
      const s2a = await delegateSpaceToAgent({ space, agent })
      const exp = Math.floor(Date.now() / 1000) + 3600
      const own = [await delegateAgentToService({ agent, service, proofs: [s2a], expiration: exp }), await delegateAgentToService({ agent, service, proofs: [s2a], expiration: exp + 1 })]
      expect((await call(svc, await revokeInvocation({ issuer: agent, service, ucan: own[0]! }).delegate())).ok).toMatchObject({ index: 0 })
      const refused = await call(svc, await revokeInvocation({ issuer: agent, service, ucan: own[1]! }).delegate())
      expect(refused.error?.name).toBe('TooManyRevocations')
      expect(((await (await fetch(`${svc.url}/revocations/head`)).json()) as { treeSize: number }).treeSize).toBe(1)
      const s2o = await delegateSpaceToAgent({ space, agent: other })
      const o2s = await delegateAgentToService({ agent: other, service, proofs: [s2o] })
      expect((await call(svc, await revokeInvocation({ issuer: other, service, ucan: o2s }).delegate())).ok).toMatchObject({ index: 1 })
    } finally {
      await svc.stop()
    }
  })
})

describe('admission limits over HTTP', () => {
  let svc: Svc
  beforeAll(async () => {
    svc = await startTestService({ agentRate: 1, agentBurst: 2, maxInvocationsPerRequest: 3 })
  })
  afterAll(async () => {
    await svc?.stop()
  })

  it('per-agent rate: past the burst → 429 with Retry-After, nothing appended; other agents unaffected', async () => {
    // Its own service, whose rate limits run on a clock that stands still: no refill however slow the machine.
    const clock = manualClock()
    const svc = await startTestService({ agentRate: 1, agentBurst: 2 }, { limitsClock: clock.now })
    onTestFinished(() => svc.stop())
    const [space, agent, other] = [await generateKey(), await generateKey(), await generateKey()]
    const service = svc.did as API.DID
    const s2a = await delegateSpaceToAgent({ space, agent })
    const inv = async (a: Key, proofs: API.Delegation) =>
      (await appendInvocation({ agent: a, service, space: space.did(), entry: text('x'), spaceToAgent: proofs })).delegate()
    const statuses: number[] = []
    let last: Response | undefined
    for (let i = 0; i < 3; i++) {
      const req = await encodeRequest([await inv(agent, s2a)])
      last = await fetch(`${svc.url}/rpc`, { method: 'POST', headers: req.headers, body: req.body })
      statuses.push(last.status)
      if (last.status === 200) await last.arrayBuffer()
    }
    // Two tokens of burst, refilled at 1/s on a clock that has not moved: the third request is refused.
    expect(statuses).toEqual([200, 200, 429])
    expect(last!.headers.get('retry-after')).toBe('1')
    expect(await last!.text()).toBe('rate limited; retry later\n')
    const head = (await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { treeSize: number }
    expect(head.treeSize).toBe(2)
    const s2o = await delegateSpaceToAgent({ space, agent: other })
    expect((await call(svc, await inv(other, s2o))).ok).toBeDefined()
    // A second later the agent has earned one append again.
    clock.advance(1000)
    expect((await call(svc, await inv(agent, s2a))).ok).toMatchObject({ index: 3 })
  })

  it('`ucanlog append` waits out 429s (nothing ran) and appends every entry once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-cli-429-'))
    try {
      const [space, agent] = [await generateKey(), await generateKey()]
      await writeFile(join(dir, 'agent.key'), formatKey(agent))
      await writeFile(join(dir, 'proof.ucan'), await formatDelegation(await delegateSpaceToAgent({ space, agent })))
      const written: string[] = []
      const write = process.stdout.write
      process.stdout.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stdout.write
      try {
        await appendCommand().parseAsync(
          ['--agent-key', join(dir, 'agent.key'), '--proof', join(dir, 'proof.ucan'), '--url', svc.url, '--state', join(dir, 'state'), '--concurrency', '4', '--json', 'a', 'b', 'c', 'd'],
          { from: 'user' },
        )
      } finally {
        process.stdout.write = write
      }
      // --json: one object per entry, then one `{ summary }` object (issue 12).
      const objects = written.join('').trim().split('\n').map((l) => JSON.parse(l) as { index?: number; summary?: { appended: number } })
      expect(objects.at(-1)?.summary).toMatchObject({ appended: 4 })
      const indexes = objects.slice(0, -1).map((o) => o.index)
      expect(indexes.sort()).toEqual([0, 1, 2, 3])
      const head = (await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { treeSize: number }
      expect(head.treeSize).toBe(4)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('more invocations in one request than --max-invocations → 413, nothing runs', async () => {
    const [space, ...agents] = [await generateKey(), await generateKey(), await generateKey(), await generateKey(), await generateKey()]
    const invs = []
    for (const agent of agents) {
      const s2a = await delegateSpaceToAgent({ space, agent })
      invs.push(await (await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: text('x'), spaceToAgent: s2a })).delegate())
    }
    const req = await encodeRequest(invs)
    const res = await fetch(`${svc.url}/rpc`, { method: 'POST', headers: req.headers, body: req.body })
    expect(res.status).toBe(413)
    expect(await res.text()).toBe('too many invocations in one request (at most 3)\n')
    expect((await fetch(`${svc.url}/logs/${space.did()}/head`)).status).toBe(404)
  })
})

describe('did:mailto trust is configuration: --attester-did and --attester-key', () => {
  it('refuses half a configuration or a key that is not an Ed25519 did:key, at start', async () => {
    await expect(startTestService({ attesterDid: 'did:web:up.storacha.network' })).rejects.toThrow(/--attester-did|--attester-key/)
    await expect(startTestService({ attesterDid: 'did:web:a.test', attesterKey: 'did:web:b.test' })).rejects.toThrow(/--attester-key/)
  })

  it('with the attester configured, an email-login chain (Space → did:mailto account → Agent, attested) appends over HTTP; /info shows the trust', async () => {
    const attesterKey = await generateKey()
    const svc = await startTestService({ attesterDid: 'did:web:attester.test', attesterKey: attesterKey.did() })
    try {
      const info = (await (await fetch(`${svc.url}/info`)).json()) as { attester: unknown; revocations: { origin: string } }
      expect(info.attester).toEqual({ did: 'did:web:attester.test', key: attesterKey.did() })
      expect(info.revocations.origin).toBe('ucanlog/revocations')
      const [space, agent] = [await generateKey(), await generateKey()]
      const account = Absentee.from({ id: 'did:mailto:example.com:alice' })
      const all = [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities
      const spaceToAccount = await delegate({ issuer: space, audience: account, capabilities: all, expiration: Math.floor(Date.now() / 1000) + 3600 })
      const accountToAgent = await delegate({ issuer: account, audience: agent, capabilities: all, proofs: [spaceToAccount], expiration: Math.floor(Date.now() / 1000) + 3600 })
      const attestation = await UCANAttest.delegate({
        issuer: attesterKey.withDID('did:web:attester.test'),
        audience: agent,
        with: 'did:web:attester.test',
        nb: { proof: accountToAgent.cid },
        expiration: Math.floor(Date.now() / 1000) + 3600,
      })
      const agentToService = await delegateAgentToService({ agent, service: svc.did as API.DID, proofs: [accountToAgent, attestation], space: space.did() })
      const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: text('from an email login'), agentToService })
      expect((await call(svc, await inv.delegate())).ok).toMatchObject({ index: 0, published: true })
      // The same chain on a service that does not trust the attester is refused.
      const untrusting = await startTestService()
      try {
        const inv2 = await appendInvocation({ agent, service: untrusting.did as API.DID, space: space.did(), entry: text('x'), agentToService: await delegateAgentToService({ agent, service: untrusting.did as API.DID, proofs: [accountToAgent, attestation], space: space.did() }) })
        expect((await call(untrusting, await inv2.delegate())).error?.name).toBe('Unauthorized')
        expect((await fetch(`${untrusting.url}/logs/${space.did()}/head`)).status).toBe(404)
      } finally {
        await untrusting.stop()
      }
    } finally {
      await svc.stop()
    }
  })
})

describe('key rotation with the CLI, as the README tells a user', () => {
  it('ucanlog delegate (new agent) → ucanlog revoke (old delegation) → old agent refused, new agent appends to the same log', async () => {
    const svc = await startTestService()
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-rotate-'))
    const run = async (...args: string[]) => {
      const written: string[] = []
      const write = process.stdout.write
      process.stdout.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stdout.write
      try {
        await (await program()).exitOverride().parseAsync(args, { from: 'user' })
      } finally {
        process.stdout.write = write
      }
      return written.join('')
    }
    try {
      const [space, oldAgent, newAgent] = [await generateKey(), await generateKey(), await generateKey()]
      for (const [name, key] of [['space', space], ['old', oldAgent], ['new', newAgent]] as const) await writeFile(join(dir, `${name}.key`), formatKey(key))
      const f = (name: string) => join(dir, name)
      await run('delegate', '--space-key', f('space.key'), '--agent', oldAgent.did(), '--out', f('old.ucan'))
      expect(await run('append', '--agent-key', f('old.key'), '--proof', f('old.ucan'), '--url', svc.url, '--state', f('state'), 'by the old agent')).toMatch(/^appended 1 entry/)
      // Rotation: delegate to the new agent, revoke the old delegation with the space key.
      await run('delegate', '--space-key', f('space.key'), '--agent', newAgent.did(), '--out', f('new.ucan'))
      expect(await run('revoke', '--key', f('space.key'), '--delegation', f('old.ucan'), '--url', svc.url)).toMatch(new RegExp(`^revoked bafy\\S+ on the authority of ${space.did()}\nrevocation log entry 0 `))
      await expect(run('append', '--agent-key', f('old.key'), '--proof', f('old.ucan'), '--url', svc.url, '--state', f('state'), 'old again')).rejects.toThrow(/append refused: Revoked/)
      expect(await run('append', '--agent-key', f('new.key'), '--proof', f('new.ucan'), '--url', svc.url, '--state', f('state'), 'by the new agent')).toMatch(/index 1\n/)
      const head = (await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { treeSize: number; origin: string }
      expect(head).toMatchObject({ treeSize: 2, origin: `ucanlog/logs/${space.did()}` })
    } finally {
      await svc.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/**
 * `ucan/revoke` (storacha's capability) handled by our service, `tlog/create`, and `did:mailto`
 * chains through a trusted `ucan/attest` issuer — all through the real ucanto server
 * (`server.request` with CAR agent messages), revocations in the SQLite store.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import { Delegation, delegate, invoke } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import type { API } from '@ucanto/core'
import { Absentee } from '@ucanto/principal'
import {
  UCANAttest,
  UCANRevoke,
  UcanStore,
  appendInvocation,
  authorizeAppend,
  createGrantCache,
  createInvocation,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
  revokeInvocation,
  type Admission,
  type UcanServiceOptions,
  type UcanStoreOptions,
} from '../../src/ucan/index.js'
import { impostor } from '../e2e/helpers.js'
import { createClientLimit } from '../../src/server/rate-limit.js'
import { type Principals, honestChain, RecordingLog, now, pinnedKey, send, encodeRequest, sendRaw, outOf } from './helpers.js'

let P: Principals
let spaceToAgent: API.Delegation
let agentToService: API.Delegation

beforeAll(async () => {
  ;({ P, spaceToAgent, agentToService } = await honestChain())
})

function setup(options: Partial<UcanServiceOptions> = {}, storeOptions: UcanStoreOptions = {}) {
  const log = new RecordingLog()
  const store = UcanStore.open(':memory:', storeOptions)
  const server = createUcanService({
    signer: P.service,
    log,
    revocations: store.revocations,
    revocationRecorder: store.revocations,
    replay: store.replay,
    ...options,
  })
  return { log, store, server }
}

const append = async (agent = P.agent, d = agentToService) =>
  (await appendInvocation({ agent, service: P.service, space: P.space.did(), entry: new TextEncoder().encode('e'), agentToService: d })).delegate()

const revoke = (issuer: API.Signer, ucan: API.Delegation, extra: { scope?: API.DID; proofs?: API.Delegation[] } = {}) =>
  revokeInvocation({ issuer, service: P.service, ucan, ...extra }).delegate()

describe('ucan/revoke', () => {
  test('is storacha’s capability: same can, with, nb schema', () => {
    expect(UCANRevoke.can).toBe('ucan/revoke')
    expect(UCANAttest.can).toBe('ucan/attest')
  })

  test("the service's own authority does not stand in for a grant: a stranger's ucan/revoke with the service DID → Unauthorized, nothing recorded", async () => {
    const { server, store } = setup()
    const out = await send(server, await revoke(P.mallory, agentToService, { scope: P.service.did() }))
    expect(out.error?.name).toBe('Unauthorized')
    expect(await store.revocations.findRevoked(new Map([[agentToService.cid.toString(), new Set([P.service.did(), P.agent.did()])]]))).toBeUndefined()
  })

  test('the agent revokes its Agent→Service delegation: ok { time, ucan, scope }, then appends → Revoked', async () => {
    const { log, server, store } = setup()
    expect((await send(server, await append())).ok).toBeDefined()
    const out = await send(server, await revoke(P.agent, agentToService))
    expect(out.ok).toMatchObject({ ucan: agentToService.cid.toString(), scope: P.agent.did() })
    expect(typeof out.ok?.time).toBe('number')
    expect(store.revocations.count()).toBe(1)
    expect((await send(server, await append())).error?.name).toBe('Revoked')
    expect(log.appends).toHaveLength(1)
  })

  test('revoked at each link of Space→Alice→Agent→Service, by each principal at or above it → Revoked', async () => {
    const s2alice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 3600 })
    const alice2agent = await delegateAgentToService({ agent: P.alice, service: P.agent, proofs: [s2alice], expiration: now() + 3600 })
    const a2s = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [alice2agent], expiration: now() + 3600 })
    const cases: [string, API.Signer, API.Delegation][] = [
      ['space revokes Space→Alice', P.space, s2alice],
      ['alice revokes Space→Alice (its audience)', P.alice, s2alice],
      ['alice revokes Alice→Agent', P.alice, alice2agent],
      ['space revokes Alice→Agent (upstream)', P.space, alice2agent],
      ['agent revokes Alice→Agent (its audience)', P.agent, alice2agent],
      ['agent revokes Agent→Service', P.agent, a2s],
      ['space revokes Agent→Service (upstream)', P.space, a2s],
    ]
    for (const [label, who, ucan] of cases) {
      const { log, server } = setup()
      expect((await send(server, await append(P.agent, a2s))).ok, label).toBeDefined()
      expect((await send(server, await revoke(who, ucan))).ok, label).toBeDefined()
      expect((await send(server, await append(P.agent, a2s))).error?.name, label).toBe('Revoked')
      expect(log.appends, label).toHaveLength(1)
    }
  })

  test('an outsider’s revocation is refused (UnrelatedRevocation): nothing recorded, nothing changes', async () => {
    const { log, server, store } = setup()
    const out = await send(server, await revoke(P.mallory, spaceToAgent))
    expect(out.error).toEqual({ name: 'UnrelatedRevocation', message: expect.stringContaining(P.mallory.did()) })
    expect(store.revocations.count()).toBe(0)
    expect((await send(server, await append())).ok).toBeDefined()
    expect(log.appends).toHaveLength(1)
  })

  test('an upstream principal names the proof path in nb.proof; without it, or with a path that does not link, → UnrelatedRevocation', async () => {
    const s2alice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 3600 })
    const alice2agent = await delegateAgentToService({ agent: P.alice, service: P.agent, proofs: [s2alice], expiration: now() + 3600 })
    const a2s = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [alice2agent], expiration: now() + 3600 })
    const { log, server, store } = setup()
    const raw = (proof: API.Delegation[] | undefined) =>
      UCANRevoke.invoke({
        issuer: P.space,
        audience: P.service,
        with: P.space.did(),
        nb: { ucan: a2s.cid, ...(proof && { proof: proof.map((d) => d.cid) }) },
        proofs: [a2s, ...(proof ?? [])],
        expiration: now() + 60,
      }).delegate()
    // The space is two links above Agent→Service: unproven without the path.
    expect((await send(server, await raw(undefined))).error?.name).toBe('UnrelatedRevocation')
    // A path whose first step is not a proof of the revoked UCAN.
    expect((await send(server, await raw([s2alice]))).error?.name).toBe('UnrelatedRevocation')
    // A linked path that never reaches the space: Mallory's own chain is not this one.
    const own = await delegateSpaceToAgent({ space: P.mallory, agent: P.agent, expiration: now() + 3600 })
    expect((await send(server, await raw([own]))).error?.name).toBe('UnrelatedRevocation')
    expect(store.revocations.count()).toBe(0)
    expect((await send(server, await append(P.agent, a2s))).ok).toBeDefined()
    // The real path: Agent→Service ← Alice→Agent ← Space→Alice.
    expect((await send(server, await raw([alice2agent, s2alice]))).ok).toMatchObject({ scope: P.space.did() })
    expect((await send(server, await append(P.agent, a2s))).error?.name).toBe('Revoked')
    expect(log.appends).toHaveLength(1)
  })

  test('records per scope are capped: past it → TooManyRevocations for that scope only; a recorded one is still answered', async () => {
    const { server, store } = setup({}, { maxRevocationsPerScope: 2 })
    const mine = await Promise.all(
      [1, 2, 3].map((k) => delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 3600 + k })),
    )
    const first = await send(server, await revoke(P.agent, mine[0]!))
    expect(first.ok).toBeDefined()
    expect((await send(server, await revoke(P.agent, mine[1]!))).ok).toBeDefined()
    const third = await send(server, await revoke(P.agent, mine[2]!))
    expect(third.error).toEqual({ name: 'TooManyRevocations', message: expect.stringContaining(P.agent.did()) })
    expect(store.revocations.count()).toBe(2)
    // The first record again, marked as already revoked (issue 12: a revoke with no effect says so).
    expect((await send(server, await revoke(P.agent, mine[0]!))).ok).toEqual({ ...first.ok, alreadyRevoked: true })
    // Another scope (the space, upstream of the same delegation) is not affected.
    expect((await send(server, await revoke(P.space, mine[2]!))).ok).toMatchObject({ scope: P.space.did() })
    expect(store.revocations.count()).toBe(3)
  })

  test('revocations recorded per client address are rate limited (RateLimited, nothing recorded); another address still revokes', async () => {
    const { server, store } = setup({ admitRevocation: createClientLimit({ rate: 0.001, burst: 2 }), refusalDelayMs: 0 })
    const mine = await Promise.all(
      [1, 2, 3, 4].map((k) => delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 3600 + k })),
    )
    const from = async (client: string, d: API.Delegation) => {
      const [receipt] = await sendRaw({ request: (req) => server.request({ ...req, client } as never) }, await encodeRequest([await revoke(P.agent, d)]))
      return outOf(receipt!)
    }
    expect((await from('192.0.2.1', mine[0]!)).ok).toBeDefined()
    expect((await from('192.0.2.1', mine[1]!)).ok).toBeDefined()
    // The only invocation of the request was refused by a rate limit: nothing ran, HTTP 429.
    const third = await server.request({ ...(await encodeRequest([await revoke(P.agent, mine[2]!)])), client: '192.0.2.1' } as never)
    expect(third.status).toBe(429)
    expect(third.headers['retry-after']).toMatch(/^\d+$/)
    expect(store.revocations.count()).toBe(2)
    expect((await from('198.51.100.7', mine[3]!)).ok).toBeDefined()
    expect(store.revocations.count()).toBe(3)
  })

  test('a revocation of one chain does not touch another chain to the same space', async () => {
    const { server, log } = setup()
    const other = await pinnedKey(9)
    const s2o = await delegateSpaceToAgent({ space: P.space, agent: other, expiration: now() + 3600 })
    const o2s = await delegateAgentToService({ agent: other, service: P.service, proofs: [s2o], expiration: now() + 3600 })
    expect((await send(server, await revoke(P.space, spaceToAgent))).ok).toBeDefined()
    expect((await send(server, await append())).error?.name).toBe('Revoked')
    expect((await send(server, await append(other, o2s))).ok).toBeDefined()
    expect(log.appends).toHaveLength(1)
  })

  test('idempotent: revoking again returns the first record and stores one row', async () => {
    const { server, store } = setup()
    const first = await send(server, await revoke(P.agent, agentToService))
    const second = await send(server, await revoke(P.agent, agentToService))
    expect(first.ok).not.toHaveProperty('alreadyRevoked')
    // The first record again, marked as already revoked (issue 12: a revoke with no effect says so).
    expect(second.ok).toEqual({ ...first.ok, alreadyRevoked: true })
    expect(store.revocations.count()).toBe(1)
  })

  test('the revoked UCAN’s blocks must be attached → UCANNotFound', async () => {
    const { server, store } = setup()
    const inv = await UCANRevoke.invoke({
      issuer: P.agent,
      audience: P.service,
      with: P.agent.did(),
      nb: { ucan: agentToService.cid },
      expiration: now() + 60,
    }).delegate()
    expect((await send(server, inv)).error?.name).toBe('UCANNotFound')
    expect(store.revocations.count()).toBe(0)
  })

  // guards: `{ proofs: false }` in the attachment check of src/ucan/handlers/revoke.ts: a revocation
  // names nb.ucan by its CID, so only nb.ucan's own block must be under its CID; a bad copy of one
  // of its proofs cannot stop the revocation.
  test('a revoke invocation whose attached proof block is not under its CID → InvalidSignature, nothing recorded', async () => {
    // Guards checkInvocation's content-addressing check of the invocation's own proofs (the revoked
    // UCAN and its chain travel as proofs): a block whose bytes are not its CID is refused before
    // the revocation is considered, and the honest invocation then still revokes.
    const { server, store } = setup()
    const inv = await revoke(P.agent, agentToService)
    const other = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 999 })
    expect(inv.blocks.has(spaceToAgent.cid.toString())).toBe(true)
    inv.blocks.set(spaceToAgent.cid.toString(), { cid: spaceToAgent.cid, bytes: other.root.bytes } as never)
    const out = await send(server, inv)
    expect(out.error?.name).toBe('InvalidSignature')
    expect(store.revocations.count()).toBe(0)
    expect((await send(server, await revoke(P.agent, agentToService))).ok).toMatchObject({ ucan: agentToService.cid.toString() })
    expect((await send(server, await append())).error?.name).toBe('Revoked')
  })

  test('mallory cannot revoke on the agent’s behalf (with ≠ issuer, no proof) → Unauthorized', async () => {
    const { server, store } = setup()
    const out = await send(server, await revoke(P.mallory, agentToService, { scope: P.agent.did() }))
    expect(out.error?.name).toBe('Unauthorized')
    // The refusal names the ability that was not granted (authorizationFailure's `can` in src/ucan/handlers/revoke.ts).
    expect(out.error?.message).toContain('ucan/revoke')
    expect(store.revocations.count()).toBe(0)
    expect((await send(server, await append())).ok).toBeDefined()
  })

  test('a delegate of the space may revoke with a ucan/revoke delegation from it', async () => {
    const { server } = setup()
    const grant = await delegate({
      issuer: P.space,
      audience: P.alice,
      capabilities: [{ can: 'ucan/revoke', with: P.space.did() }],
      expiration: now() + 3600,
    })
    const out = await send(server, await revoke(P.alice, spaceToAgent, { scope: P.space.did(), proofs: [grant] }))
    expect(out.ok).toMatchObject({ scope: P.space.did() })
    expect((await send(server, await append())).error?.name).toBe('Revoked')
  })

  test('a revoked ucan/revoke grant relabeled under another CID in the invocation\'s proofs → InvalidSignature, nothing recorded', async () => {
    // Guards checkInvocation's content-addressing check of the invocation's own proofs: they are
    // what authorizes a ucan/revoke (ucanto's access), and ucanto reports a proof under the CID it
    // is stored at. A revoked grant's bytes under a fresh CID would pass the revocation lookup.
    const { server, store } = setup()
    const grant = await delegate({ issuer: P.space, audience: P.alice, capabilities: [{ can: 'ucan/revoke', with: P.space.did() }], expiration: now() + 3600 })
    expect((await send(server, await revoke(P.space, grant, { scope: P.space.did() }))).ok).toBeDefined()
    expect((await send(server, await revoke(P.alice, spaceToAgent, { scope: P.space.did(), proofs: [grant] }))).error?.name).toBe('Revoked')
    const fakeCid = Link.create(0x71, await sha256.digest(new TextEncoder().encode('not the grant')))
    const relabeled = Delegation.create({ root: { cid: fakeCid, bytes: grant.root.bytes } as never, blocks: new Map() })
    const out = await send(server, await revoke(P.alice, spaceToAgent, { scope: P.space.did(), proofs: [relabeled] }))
    expect([out.error?.name, out.error?.message]).toEqual(['InvalidSignature', 'a proof of the invocation does not match its CID'])
    expect(store.revocations.count()).toBe(1) // only the space's revocation of the grant
    expect((await send(server, await append())).ok).toBeDefined()
  })

  test('the revoke invocation is checked like any: audience, expiry bound, signature', async () => {
    const { server, store } = setup()
    const wrongAudience = await UCANRevoke.invoke({
      issuer: P.agent,
      audience: P.mallory,
      with: P.agent.did(),
      nb: { ucan: agentToService.cid },
      proofs: [agentToService],
      expiration: now() + 60,
    }).delegate()
    expect((await send(server, wrongAudience)).error?.name).toBe('InvalidAudience')
    const noExpiry = await UCANRevoke.invoke({
      issuer: P.agent,
      audience: P.service,
      with: P.agent.did(),
      nb: { ucan: agentToService.cid },
      proofs: [agentToService],
      expiration: Infinity,
    }).delegate()
    expect((await send(server, noExpiry)).error?.name).toBe('InvalidExpiry')
    expect(store.revocations.count()).toBe(0)
  })

  // guards: RevokeCaveats in src/ucan/handlers/revoke.ts (storacha's schema: nb.ucan and nb.proof
  // are CIDv1 links), read before authorization so that a malformed nb is named.
  test('nb.ucan or an nb.proof that is a CIDv0 link → InvalidCapability, nothing recorded', async () => {
    const { server, store } = setup()
    const v0 = CID.createV0(agentToService.cid.multihash as never)
    for (const nb of [{ ucan: v0 }, { ucan: agentToService.cid, proof: [v0] }]) {
      const inv = await invoke({
        issuer: P.agent,
        audience: P.service,
        capability: { can: 'ucan/revoke', with: P.agent.did(), nb },
        proofs: [agentToService],
        expiration: now() + 60,
      }).delegate()
      const out = await send(server, inv)
      expect(out.error?.name, JSON.stringify(nb)).toBe('InvalidCapability')
    }
    expect(store.revocations.count()).toBe(0)
  })

  // guards: the optional request context in src/ucan/handlers/revoke.ts (`context?.request?.client`,
  // `context?.rateLimited?.()`): run by ucanto's own `server.run`, outside any request, a handler
  // gets no client address and no rate-limit callback (HandlerContext), and must still answer.
  test('run outside a request (ucanto server.run): the revocation limit is asked with no address; its refusal is RateLimited', async () => {
    const asked: (string | undefined)[] = []
    let wait: number | undefined
    const { server, store } = setup({
      admitRevocation: (client) => {
        asked.push(client)
        return wait
      },
    })
    const first = await server.run((await revoke(P.agent, agentToService)) as never)
    // receipt.out directly: not CAR-encoded, an error here is still the class instance.
    expect(((first as unknown as API.Receipt).out as { ok?: unknown }).ok).toMatchObject({ ucan: agentToService.cid.toString() })
    expect(asked).toEqual([undefined])
    expect(store.revocations.count()).toBe(1)
    wait = 5
    const other = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 7200 })
    const refused = ((await server.run((await revoke(P.agent, other)) as never)) as unknown as API.Receipt).out as { error?: Error }
    expect(refused.error?.name).toBe('RateLimited')
    expect(store.revocations.count()).toBe(1)
  })

  test('a revocation store that fails answers InternalError and appends fail closed', async () => {
    const { server, store } = setup()
    store.close()
    const out = await send(server, await revoke(P.agent, agentToService))
    expect(out.error?.name).toBe('InternalError')
    expect(String(out.error?.message)).not.toMatch(/sqlite|database|\//i)
    expect((await send(server, await append())).error?.name).toBe('InternalError')
  })

  test('a revocation whose write fails (SQLITE_IOERR, SQLITE_FULL, a stopped revocation log) is refused by name, StorageFailed or StorageFull, never InternalError (issue 15 item 2)', async () => {
    for (const [code, name] of [['SQLITE_IOERR_FSYNC', 'StorageFailed'], ['SQLITE_FULL', 'StorageFull'], ['EIO', 'StorageFailed']] as const) {
      const { server, store } = setup({
        revocationRecorder: {
          record: async () => {
            throw Object.assign(new Error(`${code}: /var/lib/ucanlog/ucan.db`), { code })
          },
        } as never,
      })
      const out = await send(server, await revoke(P.agent, agentToService))
      expect(out.error?.name, code).toBe(name)
      expect(String(out.error?.message)).not.toMatch(/\/var|\n\s+at /)
      store.close()
    }
  })
})

describe('tlog/create', () => {
  test('creates the log, idempotently, with the append authorization', async () => {
    const { server, log } = setup()
    const inv = async () => (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    const out = await send(server, await inv())
    expect(out.ok).toEqual({ logId: P.space.did(), origin: `ucanlog/logs/${P.space.did()}`, vkey: expect.any(String), treeSize: 0 })
    expect((await send(server, await inv())).ok).toEqual(out.ok)
    expect(log.created).toEqual([P.space.did(), P.space.did()])
  })

  test('refused exactly like append: stolen delegation, other space, revoked', async () => {
    const { server, log } = setup()
    log.refuse()
    const stolen = await createInvocation({ agent: P.mallory, service: P.service, space: P.space.did(), agentToService })
    expect((await send(server, await stolen.delegate())).error?.name).toBe('DelegationIssuerMismatch')
    const other = await createInvocation({ agent: P.agent, service: P.service, space: P.spaceB.did(), agentToService })
    expect((await send(server, await other.delegate())).error?.name).toBe('Unauthorized')
    await send(server, await revoke(P.space, spaceToAgent))
    const revoked = await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })
    expect((await send(server, await revoked.delegate())).error?.name).toBe('Revoked')
    expect(log.created).toEqual([])
  })
})

describe('did:mailto chains (Storacha email login) through a trusted ucan/attest issuer', () => {
  /** Space → did:mailto account → Agent (absentee, attested by `attester`) → Service. */
  async function mailtoChain(attester: API.Signer) {
    const account = Absentee.from({ id: 'did:mailto:example.com:alice' })
    const spaceToAccount = await delegate({
      issuer: P.space,
      audience: account,
      capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities,
      expiration: now() + 3600,
    })
    const accountToAgent = await delegate({
      issuer: account,
      audience: P.agent,
      capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities,
      proofs: [spaceToAccount],
      expiration: now() + 3600,
    })
    const attestation = await UCANAttest.delegate({
      issuer: attester,
      audience: P.agent,
      with: attester.did(),
      nb: { proof: accountToAgent.cid },
      expiration: now() + 3600,
    })
    return delegateAgentToService({
      agent: P.agent,
      service: P.service,
      proofs: [accountToAgent, attestation],
      space: P.space.did(),
      expiration: now() + 3600,
    })
  }

  test('accepted when the attester is configured (its DID and pinned did:key)', async () => {
    const key = await pinnedKey(20)
    const attester = key.withDID('did:web:attester.test')
    const d = await mailtoChain(attester)
    const { server, log } = setup({ attester: { did: 'did:web:attester.test', key: key.did() } })
    const out = await send(server, await append(P.agent, d))
    expect(out.error, JSON.stringify(out.error)).toBeUndefined()
    expect(log.appends).toHaveLength(1)
  })

  test('without trust configured → Unauthorized, nothing appended', async () => {
    const key = await pinnedKey(20)
    const d = await mailtoChain(key.withDID('did:web:attester.test'))
    const { server, log } = setup()
    log.refuse()
    expect((await send(server, await append(P.agent, d))).error?.name).toBe('Unauthorized')
  })

  test('an attestation signed by another key than the pinned one → refused', async () => {
    const key = await pinnedKey(20)
    const forger = await pinnedKey(21)
    const d = await mailtoChain(forger.withDID('did:web:attester.test'))
    const { server, log } = setup({ attester: { did: 'did:web:attester.test', key: key.did() } })
    log.refuse()
    const out = await send(server, await append(P.agent, d))
    expect(['Unauthorized', 'InvalidSignature']).toContain(out.error?.name)
  })

  test('a chain granted through the trusted attester is not reused from a shared grant cache without that trust (the attester DID and key are in the key) → Unauthorized', async () => {
    // Guards the grant-cache key in authorize.ts: one cache, the same chain, first authorized
    // with the attester trusted, then with no attester: the second must walk the chain again.
    const key = await pinnedKey(20)
    const d = await mailtoChain(key.withDID('did:web:attester.test'))
    const grants = createGrantCache()
    const trusted = await authorizeAppend(await append(P.agent, d), {
      service: P.service,
      grants,
      attester: { did: 'did:web:attester.test', key: key.did() },
    })
    expect(trusted.error, JSON.stringify(trusted.error)).toBeUndefined()
    const untrusted = await authorizeAppend(await append(P.agent, d), { service: P.service, grants })
    expect(untrusted.ok).toBeUndefined()
    expect(untrusted.error?.name).toBe('Unauthorized')
    // The same attester DID pinned to another key does not vouch for this chain either.
    const otherKey = await authorizeAppend(await append(P.agent, d), {
      service: P.service,
      grants,
      attester: { did: 'did:web:attester.test', key: (await pinnedKey(21)).did() },
    })
    expect(otherKey.ok).toBeUndefined()
    expect(['Unauthorized', 'InvalidSignature']).toContain(otherKey.error?.name)
  })

  test('an attestation from a different attester DID → Unauthorized', async () => {
    const key = await pinnedKey(20)
    const d = await mailtoChain(key.withDID('did:web:evil.test'))
    const { server, log } = setup({ attester: { did: 'did:web:attester.test', key: key.did() } })
    log.refuse()
    expect((await send(server, await append(P.agent, d))).error?.name).toBe('Unauthorized')
  })
})

describe('admission: invocations per request and rate limits', () => {
  test('more invocations than the cap → 413, nothing runs', async () => {
    const { server, log } = setup({ maxInvocationsPerRequest: 2 })
    log.refuse()
    const res = await server.request(await encodeRequest([await append(), await append(), await append()]))
    expect(res.status).toBe(413)
    expect(new TextDecoder().decode(res.body)).toMatch(/too many invocations/)
  })

  test('admission: the address is asked first; only signature-verified invocations are charged to an issuer; a refusal → 429 + Retry-After, nothing runs', async () => {
    const calls: string[] = []
    let refuse: 'request' | 'charge' | undefined
    const admission: Admission = {
      request: (n) => (calls.push(`request ${n}`), refuse === 'request' ? 2.2 : undefined),
      turn: async () => () => {},
      check: (c) => (calls.push(`check ${c.issuer}`), undefined),
      charge: (c) => (calls.push(`charge ${c.issuer} ${c.space ?? '-'}`), refuse === 'charge' ? 1.5 : undefined),
      debit: (c) => void calls.push(`debit ${c.issuer}`),
    }
    const { server, log } = setup({ admission })
    const receipts = await sendRaw(server, await encodeRequest([await append()]))
    expect(outOf(receipts[0]!).ok).toBeDefined()
    expect(calls).toEqual(['request 1', `check ${P.agent.did()}`, `charge ${P.agent.did()} ${P.space.did()}`])

    // A forged signature costs only the address: no issuer is charged (it could be anyone's DID).
    calls.length = 0
    const forged = await append(impostor(P.agent, P.mallory) as typeof P.agent)
    expect((await send(server, forged)).error?.name).toBe('InvalidSignature')
    expect(calls).toEqual(['request 1'])

    // Refused at the address, or at the charge after authorization: 429, nothing ran.
    for (const at of ['request', 'charge'] as const) {
      refuse = at
      const res = await server.request(await encodeRequest([await append()]))
      expect(res.status).toBe(429)
      expect(res.headers['retry-after']).toBe(at === 'request' ? '3' : '2')
    }
    expect(log.appends).toHaveLength(1)

    // With two invocations and only one refused, the other runs and the refused one says RateLimited.
    refuse = undefined
    let first = true
    admission.charge = () => (first ? ((first = false), undefined) : 1)
    const both = await sendRaw(server, await encodeRequest([await append(), await append()]))
    expect(both.map((r) => outOf(r).error?.name ?? 'ok').sort()).toEqual(['RateLimited', 'ok'])
    expect(log.appends).toHaveLength(2)
  })
})

/**
 * tlog/append through the real ucanto server (`server.request` with CAR-encoded agent messages).
 * For every check of docs/wire.md there is a request where exactly that check fails; it
 * must be refused with the check's name and must never reach the log.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import { CAR, CBOR, Delegation, delegate, invoke } from '@ucanto/core'
import { CID } from 'multiformats/cid'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import type { API } from '@ucanto/core'
import {
  TlogAppend,
  createMemoryRevocations,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
  formatDelegation,
  type RevocationChecker,
  type UcanServiceOptions,
} from '../../src/ucan/index.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { type Out, type Principals, RecordingLog, encodeRequest, now, principals, send, sendRaw, outOf, impostor } from './helpers.js'

let P: Principals
/** Space→Agent with the three Storacha capabilities, valid for a day. */
let spaceToAgent: API.Delegation
/** Agent→Service on top of it: the delegation honest requests carry. */
let agentToService: API.Delegation
let agentToServiceString: string

beforeAll(async () => {
  P = await principals()
  spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 86400 })
  agentToService = await delegateAgentToService({
    agent: P.agent,
    service: P.service.did(),
    proofs: [spaceToAgent],
    expiration: now() + 86400,
  })
  agentToServiceString = await formatDelegation(agentToService)
})

function setup(options: Partial<UcanServiceOptions> = {}) {
  const log = new RecordingLog()
  const server = createUcanService({ signer: P.service, log, ...options })
  return { log, server }
}

interface InvocationSpec {
  issuer?: API.Signer
  audience?: API.Principal
  space?: API.DIDKey
  data?: string
  delegation?: string | API.Delegation
  expiration?: number
  notBefore?: number
}

/** A signed tlog/append invocation; every field defaults to the honest request. */
async function appendInvocation(spec: InvocationSpec = {}): Promise<API.Invocation> {
  const delegation =
    spec.delegation === undefined
      ? agentToServiceString
      : typeof spec.delegation === 'string'
        ? spec.delegation
        : await formatDelegation(spec.delegation)
  return TlogAppend.invoke({
    issuer: spec.issuer ?? P.agent,
    audience: spec.audience ?? P.service,
    with: spec.space ?? P.space.did(),
    nb: { data: spec.data ?? encodeBase64(new TextEncoder().encode('hello log')), delegation },
    expiration: spec.expiration ?? now() + 300,
    ...(spec.notBefore !== undefined && { notBefore: spec.notBefore }),
    nonce: Math.random().toString(36),
  }).delegate()
}

/** Sends `invocation` to a server whose log must not be called; returns the error. */
async function expectRefused(invocation: API.Invocation, name: string, options: Partial<UcanServiceOptions> = {}) {
  const { log, server } = setup(options)
  log.refuse()
  const out = await send(server, invocation)
  expect(out.ok, JSON.stringify(out.ok)).toBeUndefined()
  expect(out.error?.name, String(out.error?.message)).toBe(name)
  expect(log.calls, 'log.append was called').toBe(0)
  return out.error as { name: string; message: string }
}

async function expectAppended(invocation: API.Invocation, options: Partial<UcanServiceOptions> = {}) {
  const { log, server } = setup(options)
  const out = await send(server, invocation)
  expect(out.error, JSON.stringify(out.error)).toBeUndefined()
  expect(log.appends).toHaveLength(1)
  return { out, log }
}

const caps = (space: API.DIDKey, ...cans: string[]) =>
  cans.map((can) => ({ can, with: space })) as unknown as API.Capabilities

describe('tlog/append accepted', () => {
  test('Space→Agent→Service: ok result with the wire fields, entry and delegation passed to the log', async () => {
    const entry = new TextEncoder().encode('first entry')
    const inv = await appendInvocation({ data: encodeBase64(entry) })
    const { out, log } = await expectAppended(inv)
    expect(Object.keys(out.ok ?? {}).sort()).toEqual(
      ['checkpoint', 'inclusionProof', 'index', 'logId', 'origin', 'published', 'rootHash', 'treeSize'].sort(),
    )
    expect(out.ok?.logId).toBe(P.space.did())
    const [call] = log.appends
    expect(call?.space).toBe(P.space.did())
    expect(call?.entry).toEqual(entry)
    expect(call?.invocation).toBe(inv.cid.toString())
    expect(call?.delegation.cid.toString()).toBe(agentToService.cid.toString())
  })

  test('Space→Alice→Agent→Service sub-delegation', async () => {
    const spaceToAlice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 3600 })
    const aliceToAgent = await delegateAgentToService({
      agent: P.alice,
      service: P.agent,
      proofs: [spaceToAlice],
      expiration: now() + 3600,
    })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [aliceToAgent], expiration: now() + 3600 })
    await expectAppended(await appendInvocation({ delegation: d }))
  })

  for (const wildcard of ['space/*', '*']) {
    test(`a ${wildcard} grant from the space counts`, async () => {
      const s2a = await delegate({ issuer: P.space, audience: P.agent, capabilities: caps(P.space.did(), wildcard, 'upload/add'), expiration: now() + 3600 })
      const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
      await expectAppended(await appendInvocation({ delegation: d }))
    })

    test(`a ${wildcard} re-delegation to the service counts`, async () => {
      const s2a = await delegate({ issuer: P.space, audience: P.agent, capabilities: caps(P.space.did(), '*'), expiration: now() + 3600 })
      const d = await delegate({
        issuer: P.agent,
        audience: P.service,
        capabilities: caps(P.space.did(), wildcard, ...(wildcard === 'space/*' ? ['upload/add'] : [])),
        proofs: [s2a],
        expiration: now() + 3600,
      })
      await expectAppended(await appendInvocation({ delegation: d }))
    })
  }

  test('a { can: *, with: ucan:* } grant from the space (as Storacha accounts hold) counts', async () => {
    const s2a = await delegate({
      issuer: P.space,
      audience: P.agent,
      capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities,
      expiration: now() + 3600,
    })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
    await expectAppended(await appendInvocation({ delegation: d }))
  })

  test('a ucan:* grant from someone other than the space does not count → Unauthorized', async () => {
    const m2a = await delegate({
      issuer: P.mallory,
      audience: P.agent,
      capabilities: [{ can: '*', with: 'ucan:*' }] as unknown as API.Capabilities,
      expiration: now() + 3600,
    })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [m2a], space: P.space.did(), expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'Unauthorized')
  })

  test('entry of exactly 65535 bytes', async () => {
    await expectAppended(await appendInvocation({ data: encodeBase64(new Uint8Array(65535).fill(7)) }))
  })

  test('time bounds are inclusive and the lifetime bound is exact (injected clock)', async () => {
    const t = now()
    const clock = { now: () => t, maxInvocationLifetime: 600 }
    await expectAppended(await appendInvocation({ expiration: t }), clock)
    await expectAppended(await appendInvocation({ expiration: t + 600, notBefore: t }), clock)
    await expectRefused(await appendInvocation({ expiration: t + 601 }), 'InvalidExpiry', clock)
    await expectRefused(await appendInvocation({ expiration: t - 1 }), 'Expired', clock)
    await expectRefused(await appendInvocation({ expiration: t + 60, notBefore: t + 1 }), 'NotValidBefore', clock)
  })

  test('a revocation by a principal outside the chain has no effect', async () => {
    const revocations = createMemoryRevocations()
    revocations.add(agentToService.cid.toString(), P.mallory.did())
    revocations.add(spaceToAgent.cid.toString(), P.mallory.did())
    await expectAppended(await appendInvocation(), { revocations })
  })
})

describe('tlog/append refused: (1) the invocation', () => {
  test('wrong invocation audience → InvalidAudience', async () => {
    await expectRefused(await appendInvocation({ audience: P.mallory }), 'InvalidAudience')
  })

  test('expired invocation → Expired', async () => {
    await expectRefused(await appendInvocation({ expiration: now() - 10 }), 'Expired')
  })

  test('no exp → InvalidExpiry', async () => {
    await expectRefused(await appendInvocation({ expiration: Infinity }), 'InvalidExpiry')
  })

  test('exp further ahead than the bound → InvalidExpiry', async () => {
    await expectRefused(await appendInvocation({ expiration: now() + 7200 }), 'InvalidExpiry')
  })

  test('not yet valid → NotValidBefore', async () => {
    await expectRefused(await appendInvocation({ notBefore: now() + 120 }), 'NotValidBefore')
  })

  test('forged invocation signature (well-formed, wrong key) → InvalidSignature', async () => {
    await expectRefused(await appendInvocation({ issuer: impostor(P.agent, P.mallory) }), 'InvalidSignature')
  })

  test('signature bytes tampered in the request CAR → InvalidSignature', async () => {
    const inv = await appendInvocation()
    const req = await encodeRequest([inv])
    const sig = Buffer.from(inv.signature.raw)
    const at = Buffer.from(req.body).indexOf(sig)
    expect(at).toBeGreaterThan(0)
    const body = new Uint8Array(req.body)
    body[at + 10] = (body[at + 10] as number) ^ 0x01
    const { log, server } = setup()
    log.refuse()
    const [receipt] = await sendRaw(server, { headers: req.headers, body })
    expect(outOf(receipt as API.Receipt).error?.name).toBe('InvalidSignature')
    expect(log.calls).toBe(0)
  })

  test('more than one capability → InvalidCapability (no nb echoed) and never appends', async () => {
    const inv = await invoke({
      issuer: P.agent,
      audience: P.service,
      capability: { can: 'tlog/append', with: P.space.did(), nb: { data: 'AQ==', delegation: agentToServiceString } },
      expiration: now() + 60,
    }).delegate()
    // A second capability can only be added by building the UCAN directly.
    const two = await delegate({
      issuer: P.agent,
      audience: P.service,
      capabilities: [inv.capabilities[0], inv.capabilities[0]] as unknown as API.Capabilities,
      expiration: now() + 60,
    })
    const { log, server } = setup()
    log.refuse()
    const [receipt] = await sendRaw(server, await encodeRequest([two as unknown as API.Invocation]))
    expect(outOf(receipt as API.Receipt).error?.name).toBe('InvalidCapability')
    expect(log.calls).toBe(0)
  })
})

describe('tlog/append refused: the capability and entry', () => {
  test('with is not a did:key → InvalidCapability', async () => {
    const inv = await invoke({
      issuer: P.agent,
      audience: P.service,
      capability: { can: 'tlog/append', with: 'did:web:example.com', nb: { data: 'AQ==', delegation: agentToServiceString } },
      expiration: now() + 60,
    }).delegate()
    await expectRefused(inv, 'InvalidCapability')
  })

  test('malformed nb → InvalidCapability', async () => {
    const inv = await invoke({
      issuer: P.agent,
      audience: P.service,
      capability: { can: 'tlog/append', with: P.space.did(), nb: { data: 42, delegation: agentToServiceString } },
      expiration: now() + 60,
    }).delegate()
    const error = await expectRefused(inv, 'InvalidCapability')
    expect(error.message).not.toContain(agentToServiceString.slice(0, 40))
  })

  test('unknown ability → InvalidCapability (no ucanto HandlerNotFound stack)', async () => {
    for (const can of ['tlog/remove', 'store/add', 'constructor/x', '__proto__/x', 'tlog/toString', 'a/b/c/d']) {
      const inv = await invoke({ issuer: P.agent, audience: P.service, capability: { can: can as API.Ability, with: P.space.did() }, expiration: now() + 60 }).delegate()
      await expectRefused(inv, 'InvalidCapability')
    }
  })

  for (const [label, data] of [
    ['not base64', 'not base64!'],
    ['unpadded', 'AQ'],
    ['URL-safe alphabet', '-_-_'],
    ['non-zero trailing bits', 'AR=='],
    ['whitespace', 'AQ== '],
  ] as const) {
    test(`bad base64 data (${label}) → InvalidData`, async () => {
      await expectRefused(await appendInvocation({ data }), 'InvalidData')
    })
  }

  test('empty entry → InvalidData', async () => {
    await expectRefused(await appendInvocation({ data: '' }), 'InvalidData')
  })

  test('entry of 65536 bytes → EntryTooLarge', async () => {
    await expectRefused(await appendInvocation({ data: encodeBase64(new Uint8Array(65536)) }), 'EntryTooLarge')
  })
})

describe('tlog/append refused: the delegation', () => {
  for (const [label, s] of [
    ['garbage', '!!!not a delegation'],
    ['truncated CID', 'mAAAA'],
    ['base64 of not-a-CAR', 'aGVsbG8gd29ybGQ='],
    ['empty', ''],
    ['raw-codec CID', 'mAVUSIC1TmHKIHLi8yXC3jjb5j2nvbYu3ODcTk5jvvjNy3uLu'],
  ] as const) {
    test(`bad delegation (${label}) → InvalidDelegation`, async () => {
      await expectRefused(await appendInvocation({ delegation: s }), 'InvalidDelegation')
    })
  }

  test('a CAR-codec identity CID over a non-archive → InvalidDelegation', async () => {
    const s = agentToServiceString.slice(0, 60)
    await expectRefused(await appendInvocation({ delegation: s }), 'InvalidDelegation')
  })

  test('(2) stolen delegation: mallory invokes with the agent\'s Agent→Service delegation → DelegationIssuerMismatch', async () => {
    await expectRefused(await appendInvocation({ issuer: P.mallory }), 'DelegationIssuerMismatch')
  })

  test('(3) delegation addressed to someone else → InvalidAudience', async () => {
    const d = await delegateAgentToService({ agent: P.agent, service: P.mallory, proofs: [spaceToAgent], expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'InvalidAudience')
  })

  test('(4) expired Space→Agent proof → Expired', async () => {
    const s2a = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() - 60 })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'Expired')
  })

  test('(4) expired Agent→Service delegation → Expired', async () => {
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() - 60 })
    await expectRefused(await appendInvocation({ delegation: d }), 'Expired')
  })

  test('(4) Space→Agent not valid yet → NotValidBefore', async () => {
    const s2a = await delegate({ issuer: P.space, audience: P.agent, capabilities: caps(P.space.did(), '*'), notBefore: now() + 600, expiration: now() + 3600 })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'NotValidBefore')
  })

  test('(4) Agent→Service not valid yet → NotValidBefore', async () => {
    const d = await delegate({
      issuer: P.agent,
      audience: P.service,
      capabilities: caps(P.space.did(), 'space/blob/add', 'space/index/add', 'upload/add'),
      proofs: [spaceToAgent],
      notBefore: now() + 600,
      expiration: now() + 3600,
    })
    await expectRefused(await appendInvocation({ delegation: d }), 'NotValidBefore')
  })

  const required = ['space/blob/add', 'space/index/add', 'upload/add']
  for (const missing of required) {
    test(`(4) Space→Agent without ${missing} → Unauthorized naming it`, async () => {
      const s2a = await delegateSpaceToAgent({ space: P.space, agent: P.agent, capabilities: required.filter((c) => c !== missing) as API.Ability[], expiration: now() + 3600 })
      const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
      const error = await expectRefused(await appendInvocation({ delegation: d }), 'Unauthorized')
      expect(error.message).toContain(missing)
    })

    test(`(4) Agent→Service without ${missing} → Unauthorized naming it`, async () => {
      const d = await delegateAgentToService({
        agent: P.agent,
        service: P.service,
        proofs: [spaceToAgent],
        capabilities: required.filter((c) => c !== missing) as API.Ability[],
        expiration: now() + 3600,
      })
      const error = await expectRefused(await appendInvocation({ delegation: d }), 'Unauthorized')
      expect(error.message).toContain(missing)
    })
  }

  test('(4) other space: a chain for space B, with = space A → Unauthorized', async () => {
    const s2a = await delegateSpaceToAgent({ space: P.spaceB, agent: P.agent, expiration: now() + 3600 })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d, space: P.space.did() }), 'Unauthorized')
  })

  test('(4) no proofs: the agent cannot self-issue on the space → Unauthorized', async () => {
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [], space: P.space.did(), expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'Unauthorized')
  })

  test('(4) a blob-constrained grant does not count → Unauthorized', async () => {
    const s2a = await delegate({
      issuer: P.space,
      audience: P.agent,
      capabilities: [
        { can: 'space/blob/add', with: P.space.did(), nb: { blob: { digest: new Uint8Array([0x12, 0x20, ...new Uint8Array(32).fill(9)]), size: 5 } } },
        { can: 'space/index/add', with: P.space.did() },
        { can: 'upload/add', with: P.space.did() },
      ] as unknown as API.Capabilities,
      expiration: now() + 3600,
    })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
    const error = await expectRefused(await appendInvocation({ delegation: d }), 'Unauthorized')
    expect(error.message).toContain('space/blob/add')
  })

  test('(4) forged Agent→Service signature (well-formed) → InvalidSignature', async () => {
    const d = await delegateAgentToService({ agent: impostor(P.agent, P.mallory), service: P.service, proofs: [spaceToAgent], expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'InvalidSignature')
  })

  test('(4) forged Space→Agent signature (well-formed) → InvalidSignature', async () => {
    const s2a = await delegateSpaceToAgent({ space: impostor(P.space, P.mallory) as API.Signer<API.DIDKey>, agent: P.agent, expiration: now() + 3600 })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [s2a], space: P.space.did(), expiration: now() + 3600 })
    await expectRefused(await appendInvocation({ delegation: d }), 'InvalidSignature')
  })

  test('(4) a forged proof by the same signer as a valid one in the chain is not vouched for by the valid one → refused', async () => {
    // Guards the signature memo of one authorization (authorize.ts memoizeVerification): it is keyed
    // by (DID, payload, signature), so the space's valid signature on one proof says nothing about
    // another proof claiming the space as issuer.
    const valid = await delegateSpaceToAgent({ space: P.space, agent: P.agent, capabilities: ['space/blob/add', 'space/index/add'], expiration: now() + 3600 })
    const forged = await delegateSpaceToAgent({ space: impostor(P.space, P.mallory) as API.Signer<API.DIDKey>, agent: P.agent, capabilities: ['upload/add'], expiration: now() + 3600 })
    const d = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [valid, forged], space: P.space.did(), expiration: now() + 3600 })
    const error = await expectRefused(await appendInvocation({ delegation: d }), 'InvalidSignature')
    expect(error.message).toContain(forged.cid.toString().slice(0, 20))
  })

  test('signature bytes tampered inside the delegation archive → InvalidDelegation (block ≠ CID)', async () => {
    const archive = Buffer.from((await agentToService.archive()).ok as Uint8Array)
    const at = archive.indexOf(Buffer.from(spaceToAgent.signature.raw))
    expect(at).toBeGreaterThan(0)
    archive[at + 5] = (archive[at + 5] as number) ^ 0x80
    await expectRefused(await appendInvocation({ delegation: archive.toString('base64') }), 'InvalidDelegation')
  })

  test('(5) revoked Agent→Service (by the agent) → Revoked', async () => {
    const revocations = createMemoryRevocations()
    revocations.add(agentToService.cid.toString(), P.agent.did())
    await expectRefused(await appendInvocation(), 'Revoked', { revocations })
  })

  test('(5) revoked Space→Agent (by the space) → Revoked', async () => {
    const revocations = createMemoryRevocations()
    revocations.add(spaceToAgent.cid.toString(), P.space.did())
    await expectRefused(await appendInvocation(), 'Revoked', { revocations })
  })

  test('(5) Agent→Service revoked by the space upstream → Revoked', async () => {
    const revocations = createMemoryRevocations()
    revocations.add(agentToService.cid.toString(), P.space.did())
    await expectRefused(await appendInvocation(), 'Revoked', { revocations })
  })

  test('(5) the invocation itself revoked by its issuer → Revoked', async () => {
    const revocations = createMemoryRevocations()
    const inv = await appendInvocation()
    revocations.add(inv.cid.toString(), P.agent.did())
    await expectRefused(inv, 'Revoked', { revocations })
  })

  describe('(5) revocation by a principal earlier in the chain than the revoked UCAN (Space→Alice→Agent→Service, invoked by Agent)', () => {
    // Guards the upstream part of the revocation scope: revocation.ts scopeOf (a UCAN's scope takes
    // the principals of every proof above it) and authorize.ts (the invocation's scope takes the
    // delegation's). A revocation counts if issued by the revoked UCAN's issuer or audience or by
    // any principal above it; one from below it or outside the chain does not.
    let spaceToAlice: API.Delegation
    let aliceToAgent: API.Delegation
    let chain: API.Delegation
    beforeAll(async () => {
      spaceToAlice = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 3600 })
      aliceToAgent = await delegateAgentToService({ agent: P.alice, service: P.agent, proofs: [spaceToAlice], expiration: now() + 3600 })
      chain = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [aliceToAgent], expiration: now() + 3600 })
    })
    const revokedBy = (ucan: () => { cid: API.Link }, scope: () => API.Principal) => {
      const revocations = createMemoryRevocations()
      revocations.add(ucan().cid.toString(), scope().did())
      return { revocations }
    }

    test('Alice→Agent revoked by the space (one link above it) → Revoked', async () => {
      const error = await expectRefused(await appendInvocation({ delegation: chain }), 'Revoked', revokedBy(() => aliceToAgent, () => P.space))
      expect(error.message).toContain(aliceToAgent.cid.toString().slice(0, 20))
    })

    test('Agent→Service revoked by the space (two links above it) → Revoked', async () => {
      await expectRefused(await appendInvocation({ delegation: chain }), 'Revoked', revokedBy(() => chain, () => P.space))
    })

    test('Agent→Service revoked by Alice (above the invocation\'s issuer) → Revoked', async () => {
      await expectRefused(await appendInvocation({ delegation: chain }), 'Revoked', revokedBy(() => chain, () => P.alice))
    })

    for (const who of ['space', 'alice'] as const) {
      test(`the invocation itself revoked by ${who === 'space' ? 'the space' : 'Alice'} (above its issuer) → Revoked`, async () => {
        const inv = await appendInvocation({ delegation: chain })
        await expectRefused(inv, 'Revoked', revokedBy(() => inv, () => P[who]))
      })
    }

    test('from below or outside: Space→Alice by the agent, Alice→Agent by the service, Agent→Service by mallory → no effect', async () => {
      const revocations = createMemoryRevocations()
      revocations.add(spaceToAlice.cid.toString(), P.agent.did())
      revocations.add(aliceToAgent.cid.toString(), P.service.did())
      revocations.add(chain.cid.toString(), P.mallory.did())
      await expectAppended(await appendInvocation({ delegation: chain }), { revocations })
    })
  })

  test('(5) the invocation revoked by its audience (the service) → Revoked', async () => {
    const revocations = createMemoryRevocations()
    const inv = await appendInvocation()
    revocations.add(inv.cid.toString(), P.service.did())
    await expectRefused(inv, 'Revoked', { revocations })
  })

  test('(5) a revocation after the grant was cached still takes effect', async () => {
    const revocations = createMemoryRevocations()
    const { log, server } = setup({ revocations })
    expect((await send(server, await appendInvocation())).ok).toBeDefined()
    revocations.add(spaceToAgent.cid.toString(), P.space.did())
    expect((await send(server, await appendInvocation())).error?.name).toBe('Revoked')
    expect(log.appends).toHaveLength(1)
  })

  test('(5) revocation store failure fails closed → InternalError', async () => {
    const revocations: RevocationChecker = { findRevoked: () => Promise.reject(new Error('db down at /secret/path')) }
    const error = await expectRefused(await appendInvocation(), 'InternalError', { revocations })
    expect(error.message).not.toContain('secret')
  })
})

/** How {@link readdressed} puts the same signed invocation under another CID. */
type Readdressing = 'sha2-512' | 'raw codec' | 'non-canonical dag-cbor' | 'a byte after the signature'

/**
 * A request carrying the signed invocation `inv` under another CID: its block bytes (or the same
 * UCAN re-encoded non-canonically) addressed by `how`, with the message root pointing at that CID.
 * The signature covers the decoded payload, so it still verifies; only the content-addressing check
 * of (1) tells the two apart.
 */
async function readdressed(inv: API.Invocation, how: Readdressing): Promise<{ cid: CID; request: { headers: Record<string, string>; body: Uint8Array } }> {
  let bytes = inv.root.bytes as Uint8Array
  let cid: CID
  if (how === 'sha2-512') cid = CID.createV1(CBOR.code, await sha512.digest(bytes))
  else if (how === 'raw codec') cid = CID.createV1(0x55, await sha256.digest(bytes))
  else if (how === 'a byte after the signature') {
    // Canonical dag-cbor, and dag-ucan re-encodes it to itself (it writes `s` back as it read
    // it), yet another block: Ed25519 reads only the signature's first `size` bytes, so it verifies.
    const data = CBOR.decode(bytes) as Record<string, unknown>
    data.s = new Uint8Array([...(data.s as Uint8Array), 0x00])
    bytes = CBOR.encode(data)
    cid = CID.createV1(CBOR.code, await sha256.digest(bytes))
  } else {
    // The same map with its keys in plain sort order instead of dag-cbor's length-first order:
    // another byte string, hashed honestly, that decodes to the same UCAN.
    const data = CBOR.decode(bytes) as Record<string, unknown>
    const keys = Object.keys(data).sort()
    expect(keys.length).toBeLessThan(24)
    bytes = new Uint8Array(Buffer.concat([Uint8Array.of(0xa0 + keys.length), ...keys.flatMap((k) => [CBOR.encode(k), CBOR.encode(data[k])])]))
    expect(Buffer.from(bytes).equals(Buffer.from(inv.root.bytes))).toBe(false)
    cid = CID.createV1(CBOR.code, await sha256.digest(bytes))
  }
  expect(cid.equals(inv.cid)).toBe(false)
  const root = CBOR.encode({ 'ucanto/message@7.0.0': { execute: [cid] } })
  const rootBlock = { cid: CID.createV1(CBOR.code, await sha256.digest(root)), bytes: root }
  const body = CAR.encode({ roots: [rootBlock], blocks: new Map([[cid.toString(), { cid, bytes }]]) } as never)
  return { cid, request: { headers: { 'content-type': CAR.contentType, accept: CAR.contentType }, body } }
}

describe('(1) the invocation\'s bytes must be the canonical encoding under its CID', () => {
  // Guards checkContentAddressed(invocation, { proofs: false }) in authorize.ts checkInvocation: the
  // replay guard is keyed by the invocation's CID, so the same signed invocation under another CID
  // would otherwise be a new invocation and append again.
  for (const how of ['sha2-512', 'raw codec', 'non-canonical dag-cbor', 'a byte after the signature'] as const) {
    test(`the same signed invocation re-addressed (${how}) → InvalidSignature, and it never appends twice`, async () => {
      const inv = await appendInvocation()
      const copy = await readdressed(inv, how)
      // The original appends; then its copy under the other CID is refused and writes nothing.
      const { log, server } = setup()
      expect((await send(server, inv)).ok?.index).toBe(0)
      const [receipt] = await sendRaw(server, copy.request)
      expect(receipt?.ran.link().toString()).toBe(copy.cid.toString())
      const out = outOf(receipt as API.Receipt)
      expect(out.ok, `appended twice: ${JSON.stringify(out.ok)}`).toBeUndefined()
      expect(out.error).toEqual({ name: 'InvalidSignature', message: 'invocation block does not match its CID' })
      expect(log.appends.map((a) => a.invocation)).toEqual([inv.cid.toString()])
      // On a service that has not seen the original, the copy is refused as well.
      const fresh = setup()
      fresh.log.refuse()
      const [first] = await sendRaw(fresh.server, copy.request)
      expect(outOf(first as API.Receipt).error?.name).toBe('InvalidSignature')
      expect(fresh.log.calls).toBe(0)
    })
  }
})

describe('the grant cache: one warm service, a chain checked once is reused only for what it was checked for', () => {
  // Guards the grant-cache key in authorize.ts (check (4)): `${service} ${space} ${attester} ${CIDs}`.
  // Every other test starts a fresh service, so its cache is cold; here one service (one cache)
  // first accepts an append, then gets a request the cached grant must not cover.

  test('a chain checked for space A does not append to space B (the space is in the key) → Unauthorized', async () => {
    const { log, server } = setup()
    const a = await send(server, await appendInvocation())
    expect(a.error, JSON.stringify(a.error)).toBeUndefined()
    // The same Agent→Service delegation (granting on space A only), now invoked on space B.
    const b = await send(server, await appendInvocation({ space: P.spaceB.did() }))
    expect(b.ok, JSON.stringify(b.ok)).toBeUndefined()
    expect(b.error?.name, String(b.error?.message)).toBe('Unauthorized')
    expect(log.appends.map((c) => c.space)).toEqual([P.space.did()])
    expect(log.logs.has(P.spaceB.did())).toBe(false)
    // And the cache still serves A.
    expect((await send(server, await appendInvocation())).ok?.index).toBe(1)
  })

  test('another delegation on the same proofs is checked afresh (the delegation\'s CID is in the key) → Unauthorized', async () => {
    const { log, server } = setup()
    expect((await send(server, await appendInvocation())).ok).toBeDefined()
    // Same Space→Agent proof, same space, same chain length; this Agent→Service lacks upload/add.
    const partial = await delegateAgentToService({
      agent: P.agent,
      service: P.service,
      proofs: [spaceToAgent],
      capabilities: ['space/blob/add', 'space/index/add'],
      expiration: now() + 3600,
    })
    const out = await send(server, await appendInvocation({ delegation: partial }))
    expect(out.error?.name, String(out.error?.message)).toBe('Unauthorized')
    expect(out.error?.message).toContain('upload/add')
    expect(log.appends).toHaveLength(1)
  })

  test('the same Agent→Service without its proof blocks is checked afresh (each embedded UCAN\'s CID is in the key) → Unauthorized', async () => {
    // The top CID commits to its proofs' CIDs, not to their blocks being sent: keyed by the top
    // CID alone, a delegation stripped of its Space→Agent block would hit the warm entry, and the
    // log would get a delegation that Storacha cannot follow.
    const stripped = await formatDelegation(Delegation.create({ root: agentToService.root }))
    const cold = setup()
    cold.log.refuse()
    expect((await send(cold.server, await appendInvocation({ delegation: stripped }))).error?.name).toBe('Unauthorized')
    const { log, server } = setup()
    expect((await send(server, await appendInvocation())).ok).toBeDefined()
    const out = await send(server, await appendInvocation({ delegation: stripped }))
    expect(out.error?.name, String(out.error?.message)).toBe('Unauthorized')
    expect(log.appends).toHaveLength(1)
  })
})

describe('each refusal says what failed in its message (the client reads it in the receipt)', () => {
  // Guards the messages of authorize.ts's named failures: the name says which check, the message
  // which value. One case per message; each request fails exactly one check.
  test('invocation, capability, entry and delegation checks', async () => {
    const t = now()
    const clock = { now: () => t, maxInvocationLifetime: 600 }
    const cases: [Promise<API.Invocation>, string, string, Partial<UcanServiceOptions>?][] = [
      [appendInvocation({ audience: P.mallory }), 'InvalidAudience', `invocation audience is ${P.mallory.did()}, not the service`],
      [appendInvocation({ expiration: Infinity }), 'InvalidExpiry', 'invocation has no expiry'],
      [appendInvocation({ expiration: t - 1 }), 'Expired', `invocation expired at ${t - 1}`, clock],
      [appendInvocation({ expiration: t + 60, notBefore: t + 1 }), 'NotValidBefore', `invocation not valid before ${t + 1}`, clock],
      [appendInvocation({ expiration: t + 601 }), 'InvalidExpiry', 'invocation expiry is more than 600 s ahead', clock],
      [appendInvocation({ issuer: impostor(P.agent, P.mallory) }), 'InvalidSignature', 'invocation signature does not verify'],
      [appendInvocation({ space: P.service.did() }), 'ReservedSpace', 'this DID belongs to the service itself and is not a space'],
      [appendInvocation({ data: '' }), 'InvalidData', 'entry is empty'],
      [appendInvocation({ data: 'AQ' }), 'InvalidData', 'data is not canonical padded standard base64'],
      [appendInvocation({ data: encodeBase64(new Uint8Array(65536)) }), 'EntryTooLarge', 'entry larger than 65535 bytes'],
      [appendInvocation({ data: 'A'.repeat(4 * 21846) }), 'EntryTooLarge', 'entry larger than 65535 bytes'],
      [appendInvocation({ issuer: P.mallory }), 'DelegationIssuerMismatch', 'delegation was not issued by the invoker'],
      [
        appendInvocation({ delegation: await delegateAgentToService({ agent: P.agent, service: P.mallory, proofs: [spaceToAgent], expiration: now() + 3600 }) }),
        'InvalidAudience',
        `delegation audience is ${P.mallory.did()}, not the service`,
      ],
    ]
    for (const [inv, name, message, options] of cases) {
      const error = await expectRefused(await inv, name, options)
      expect(error.message).toBe(message)
    }
  })

  test('capability shape', async () => {
    const inv = (capability: Record<string, unknown>) =>
      invoke({ issuer: P.agent, audience: P.service, capability: capability as never, expiration: now() + 60 }).delegate()
    expect((await expectRefused(await inv({ can: 'tlog/append', with: 'did:web:example.com', nb: { data: 'AQ==', delegation: 'x' } }), 'InvalidCapability')).message).toBe(
      'with must be a did:key space, got did:web:example.com',
    )
    expect((await expectRefused(await inv({ can: 'tlog/append', with: P.space.did(), nb: { data: 1, delegation: 'x' } }), 'InvalidCapability')).message).toBe(
      'nb must be { data: string, delegation: string }',
    )
    expect((await expectRefused(await inv({ can: 'tlog/append', with: P.space.did() }), 'InvalidCapability')).message).toBe('nb must be { data: string, delegation: string }')
  })

  test('a delegation with a UCAN not under its CID, and a revoked UCAN', async () => {
    const archive = Buffer.from((await agentToService.archive()).ok as Uint8Array)
    const at = archive.indexOf(Buffer.from(spaceToAgent.signature.raw))
    archive[at + 5] = (archive[at + 5] as number) ^ 0x80
    const tampered = await expectRefused(await appendInvocation({ delegation: archive.toString('base64') }), 'InvalidDelegation')
    expect(tampered.message).toBe('a UCAN in the delegation does not match its CID')
    const revocations = createMemoryRevocations()
    revocations.add(spaceToAgent.cid.toString(), P.space.did())
    const revoked = await expectRefused(await appendInvocation(), 'Revoked', { revocations })
    expect(revoked.message).toBe(`UCAN ${spaceToAgent.cid.toString()} has been revoked`)
    const down: RevocationChecker = { findRevoked: () => Promise.reject(new Error('down')) }
    expect((await expectRefused(await appendInvocation(), 'InternalError', { revocations: down })).message).toBe('revocation store unavailable')
  })
})

describe('tlog/append replay and failures', () => {
  test('the same signed invocation twice appends once and returns the first result', async () => {
    const { log, server } = setup()
    const inv = await appendInvocation()
    const first = await send(server, inv)
    const second = await send(server, inv)
    expect(first.ok).toBeDefined()
    expect(second).toEqual(first)
    expect(log.appends).toHaveLength(1)
    // A new invocation of the same bytes is a new entry.
    const third = await send(server, await appendInvocation())
    expect(third.ok?.index).toBe(1)
    expect(log.appends).toHaveLength(2)
  })

  test('concurrent copies of one invocation append once', async () => {
    const { log, server } = setup()
    const inv = await appendInvocation()
    const outs = await Promise.all(Array.from({ length: 5 }, () => send(server, inv)))
    for (const out of outs) expect(out).toEqual(outs[0])
    expect(log.appends).toHaveLength(1)
  })

  test('a log that throws → InternalError without detail; logged; not retried on replay', async () => {
    const logged: unknown[] = []
    const { log, server } = setup({ logger: { error: (details) => logged.push(details) } })
    log.failNext = new Error('disk full at /var/secret')
    const inv = await appendInvocation()
    const out = await send(server, inv)
    expect(out.error).toEqual({ name: 'InternalError', message: 'internal error' })
    expect(logged).toHaveLength(1)
    expect(await send(server, inv)).toEqual(out)
    expect(log.appends).toHaveLength(0)
  })

  test('several invocations in one request each get a receipt', async () => {
    const { log, server } = setup()
    const good = await appendInvocation()
    const bad = await appendInvocation({ data: '' })
    const receipts = await sendRaw(server, await encodeRequest([good, bad]))
    expect(receipts).toHaveLength(2)
    const byRan = new Map(receipts.map((r) => [r.ran.link().toString(), outOf(r)]))
    expect(byRan.get(good.cid.toString())?.ok).toBeDefined()
    expect(byRan.get(bad.cid.toString())?.error?.name).toBe('InvalidData')
    expect(log.appends).toHaveLength(1)
  })

  test('receipts are signed by the service', async () => {
    const { server } = setup()
    const [receipt] = await sendRaw(server, await encodeRequest([await appendInvocation()]))
    expect(receipt?.issuer?.did()).toBe(P.service.did())
    expect((await (receipt as API.Receipt).verifySignature(P.service.verifier)).ok).toBeDefined()
  })
})

/** The nb.delegation string format: round trips, Storacha compatibility, hostile inputs, bounds. */
import { beforeAll, describe, expect, test } from 'vitest'
import fc from 'fast-check'
import { CAR, CBOR, Delegation, UCAN, delegate, isDelegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { parse as storachaParse } from '@storacha/client/proof'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import {
  MAX_CHAIN_DEPTH,
  MAX_CHAIN_UCANS,
  MAX_CHAIN_WORK,
  MAX_DELEGATION_LENGTH,
  checkContentAddressed,
  createUcanService,
  delegateAgentToService,
  delegateSpaceToAgent,
  embeddedUCANs,
  formatDelegation,
  formatDelegationBase64,
  parseDelegation,
} from '../../src/ucan/index.js'
import { encodeBase64 } from '../../src/tlog/encoding.js'
import { createPrincipalParser } from '../../src/ucan/principal.js'
import { verifyIssuerSignature } from '../../src/ucan/signed-payload.js'
import { type Principals, RecordingLog, now, principals, send } from './helpers.js'
import { TlogAppend } from '../../src/ucan/capabilities.js'

let P: Principals
let spaceToAgent: API.Delegation
let agentToService: API.Delegation
let s: string

beforeAll(async () => {
  P = await principals()
  spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 86400 })
  agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 86400 })
  s = await formatDelegation(agentToService)
})

const cids = (d: API.Delegation) => embeddedUCANs(d).map((u) => u.cid.toString())

async function expectInvalid(input: string) {
  return expectRefused(input, 'InvalidDelegation')
}

async function expectRefused(input: string, name: string) {
  const r = await parseDelegation(input)
  expect(r.ok).toBeUndefined()
  expect(r.error?.name).toBe(name)
  expect(Object.keys(r.error?.toJSON() ?? {}).sort()).toEqual(['message', 'name'])
  return r.error
}

describe('formatDelegation / parseDelegation', () => {
  test('Storacha format: multibase base64 CAR-codec identity CID; round trips', async () => {
    expect(s.startsWith('mAYIEA')).toBe(true) // 'm' + base64(0x01 0x82 0x04 0x00): CIDv1, CAR, identity
    const r = await parseDelegation(s)
    expect(r.ok && cids(r.ok)).toEqual(cids(agentToService))
    expect(await checkContentAddressed(r.ok as API.Delegation)).toBe(true)
    expect(await formatDelegation(r.ok as API.Delegation)).toBe(s)
  })

  test('@storacha/client/proof parses what we format, and we parse what it accepts', async () => {
    const theirs = await storachaParse(s)
    expect(theirs.cid.toString()).toBe(agentToService.cid.toString())
    const ours = await parseDelegation(await formatDelegation(theirs))
    expect(ours.ok?.cid.toString()).toBe(agentToService.cid.toString())
  })

  test('plain standard base64 of the archive is accepted', async () => {
    const r = await parseDelegation(await formatDelegationBase64(agentToService))
    expect(r.ok && cids(r.ok)).toEqual(cids(agentToService))
  })

  test('legacy plain CAR of the UCAN blocks (root last) is accepted', async () => {
    const blocks = new Map([...agentToService.export()].map((b) => [b.cid.toString(), b]))
    const r = await parseDelegation(encodeBase64(CAR.encode({ blocks })))
    expect(r.ok?.cid.toString()).toBe(agentToService.cid.toString())
  })

  test('every truncation is refused, never thrown', async () => {
    for (let n = 0; n < s.length; n++) await expectInvalid(s.slice(0, n))
  })

  test('single-character changes never yield a content-addressed delegation with a UCAN not in the original', async () => {
    // A change may drop a proof (its block no longer matches the link), never alter a UCAN.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=m!'
    const original = cids(agentToService)
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: s.length - 1 }), fc.constantFrom(...alphabet), async (at, c) => {
        const mutated = s.slice(0, at) + c + s.slice(at + 1)
        const r = await parseDelegation(mutated)
        if (r.ok && (await checkContentAddressed(r.ok))) {
          expect(r.ok.cid.toString()).toBe(original[0])
          for (const cid of cids(r.ok)) expect(original).toContain(cid)
        }
        else if (r.error) expect(r.error.name).toBe('InvalidDelegation')
      }),
      { numRuns: 300 },
    )
  })

  test('hostile strings', async () => {
    await expectInvalid('')
    await expectInvalid('m'.repeat(MAX_DELEGATION_LENGTH + 1))
    await expectInvalid('A'.repeat(MAX_DELEGATION_LENGTH + 1))
    await expectInvalid('m')
    await expectInvalid('mAYIEAA')
    await expectInvalid('\u0000')
    await expectInvalid(`${s}=`)
    await expectInvalid(s.replace(/^m/, 'M')) // base64pad multibase is not the format
    // A CAR-codec CID with a sha256 (not identity) multihash.
    await expectInvalid(Link.create(0x0202, await sha256.digest(new Uint8Array(1))).toString(await import('multiformats/bases/base64').then((m) => m.base64)))
    // A valid CAR that is not a UCAN.
    await expectInvalid(encodeBase64(CAR.encode({ blocks: new Map() })))
  })

  test('each refusal of the string form names its own reason (which check fired)', async () => {
    // Guards, in parseDelegation, the empty check, the canonical-CID check, the identity-multihash
    // check and the plain-base64 fallback's catch: without any one of them the string is still
    // refused, but by a later check and for the wrong reason.
    const { base64 } = await import('multiformats/bases/base64')
    expect((await expectInvalid(''))?.message).toBe('empty delegation')
    expect((await expectInvalid(`${s}=`))?.message).toBe('delegation CID is not canonical unpadded base64')
    const sha = Link.create(0x0202, await sha256.digest(new Uint8Array(1))).toString(base64)
    expect((await expectInvalid(sha))?.message).toBe('CAR CID multihash is not identity')
    expect((await expectInvalid('\u0000'))?.message).toBe('delegation is neither a base64 CAR CID nor standard base64')
  })

  test('an identity CID of the archive under another codec than CAR is refused', async () => {
    // Guards the CAR-codec check: the archive bytes are valid, only the codec says "raw" (0x55).
    const { base64 } = await import('multiformats/bases/base64')
    const { identity } = await import('multiformats/hashes/identity')
    const archived = await Delegation.archive(agentToService)
    const raw = Link.create(0x55, identity.digest(archived.ok as Uint8Array)).toString(base64)
    expect((await expectInvalid(raw))?.message).toBe('not a CAR CID (codec 0x55)')
    // The same bytes under the CAR codec are the accepted form.
    expect((await parseDelegation(Link.create(0x0202, identity.digest(archived.ok as Uint8Array)).toString(base64))).ok?.cid.toString()).toBe(agentToService.cid.toString())
  })

  test('a delegation that cannot be archived: both formatters reject with ucanto\'s error', async () => {
    // Guards `if (archived.error) throw archived.error` in formatDelegation and formatDelegationBase64.
    const boom = new Error('cannot iterate blocks')
    const broken = { version: '0.9.1', root: agentToService.root, iterateIPLDBlocks() { throw boom } } as unknown as API.Delegation
    await expect(formatDelegation(broken)).rejects.toBe(boom)
    await expect(formatDelegationBase64(broken)).rejects.toBe(boom)
  })

  test('bounds: proof depth', async () => {
    let d: API.Delegation = await delegateSpaceToAgent({ space: P.space, agent: P.alice, expiration: now() + 600 })
    const keys = [P.alice, P.agent]
    for (let i = 0; i <= MAX_CHAIN_DEPTH; i++) {
      const from = keys[i % 2] as API.Signer
      const to = keys[(i + 1) % 2] as API.Signer
      d = await delegateAgentToService({ agent: from, service: to, proofs: [d], space: P.space.did(), expiration: now() + 600 })
    }
    const error = await expectRefused(await formatDelegation(d), 'ProofGraphTooLarge')
    expect(error?.message).toContain('deeper')
    // Built in memory (never parsed), the same chain is walked no deeper than the bound either.
    expect(embeddedUCANs(d)).toHaveLength(MAX_CHAIN_DEPTH + 1)
    expect(embeddedUCANs(d)[0]?.cid.toString()).toBe(d.cid.toString())
  })

  test('a non-string or over-long input is refused by name, never thrown; exactly MAX_DELEGATION_LENGTH is not refused for length', async () => {
    for (const v of [undefined, null, 42, {}]) await expectInvalid(v as unknown as string)
    const over = await expectInvalid('A'.repeat(MAX_DELEGATION_LENGTH + 1))
    expect(over?.message).toContain('longer than')
    const at = await expectInvalid('A'.repeat(MAX_DELEGATION_LENGTH))
    expect(at?.message).not.toContain('longer than')
  })

  test('bounds: validator work at MAX_CHAIN_WORK is accepted, one capability more is refused', async () => {
    // work = |caps(top)| × (1 + |caps(proof)|): 64 × (1 + 63) = 4096; 64 × (1 + 64) = 4160.
    expect(MAX_CHAIN_WORK).toBe(4096)
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ can: 'space/blob/add', with: P.space.did(), nb: { i } })) as unknown as API.Capabilities
    const chain = async (proofCaps: number) => {
      const s2a = await delegate({ issuer: P.space, audience: P.agent, capabilities: many(proofCaps), expiration: now() + 600 })
      return formatDelegation(await delegate({ issuer: P.agent, audience: P.service, capabilities: many(64), proofs: [s2a], expiration: now() + 600 }))
    }
    expect((await parseDelegation(await chain(63))).ok).toBeDefined()
    const error = await expectRefused(await chain(64), 'ProofGraphTooLarge')
    expect(error?.message).toContain('complex')
  })

  test('bounds: validator work (many capabilities over many capabilities)', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ can: 'space/blob/add', with: P.space.did(), nb: { i } })) as unknown as API.Capabilities
    const s2a = await delegate({ issuer: P.space, audience: P.agent, capabilities: many(64), expiration: now() + 600 })
    const d = await delegate({ issuer: P.agent, audience: P.service, capabilities: many(64), proofs: [s2a], expiration: now() + 600 })
    const error = await expectRefused(await formatDelegation(d), 'ProofGraphTooLarge')
    expect(error?.message).toContain('complex')
  })
})

describe('content addressing', () => {
  test('checkContentAddressed checks at most MAX_CHAIN_UCANS distinct UCANs: 32 pass, 33 fail', async () => {
    const leaves = await Promise.all(
      Array.from({ length: MAX_CHAIN_UCANS }, (_, i) => delegate({ issuer: P.space, audience: P.agent, capabilities: [{ can: 'upload/add', with: P.space.did() }], nonce: String(i), expiration: now() + 600 })),
    )
    const top = (n: number) => delegate({ issuer: P.agent, audience: P.service, capabilities: [{ can: 'upload/add', with: P.space.did() }], proofs: leaves.slice(0, n), expiration: now() + 600 })
    expect(await checkContentAddressed(await top(MAX_CHAIN_UCANS - 1))).toBe(true)
    expect(await checkContentAddressed(await top(MAX_CHAIN_UCANS))).toBe(false)
    // The same proof listed under two parents (a diamond) is one UCAN, checked once.
    const mid = await delegate({ issuer: P.agent, audience: P.alice, capabilities: [{ can: 'upload/add', with: P.space.did() }], proofs: leaves.slice(0, 20), expiration: now() + 600 })
    const diamond = await delegate({ issuer: P.alice, audience: P.service, capabilities: [{ can: 'upload/add', with: P.space.did() }], proofs: [mid, ...leaves.slice(0, 20)], expiration: now() + 600 })
    expect(await checkContentAddressed(diamond)).toBe(true)
  })


  test('a UCAN block that does not decode is not content addressed (false, never a throw)', async () => {
    // Guards the catch of checkContentAddressed: a dag-cbor sha2-256 block whose bytes are not a
    // UCAN (here `{ a: 1 }`) answers false.
    const bytes = new Uint8Array([0xa1, 0x61, 0x61, 0x01]) // dag-cbor { "a": 1 }
    const cid = Link.create(0x71, await sha256.digest(bytes))
    const notAUcan = Delegation.create({ root: { cid, bytes } as never, blocks: new Map() })
    expect(await checkContentAddressed(notAUcan)).toBe(false)
    expect(await checkContentAddressed(notAUcan, { proofs: false })).toBe(false)
  })

  test('a proof whose signature has a byte appended is refused: a second block (and CID) that still verifies would dodge its revocation', async () => {
    // dag-ucan writes `s` back as it read it, so its re-encoding alone accepts the padded block;
    // Ed25519 reads only the signature's first 64 bytes, so it verifies. Guards the signature
    // check of canonical-ucan.ts `isCanonicalUcan` (the fast path and the re-encoding alike).
    const data = CBOR.decode(spaceToAgent.root.bytes) as unknown as Record<string, unknown>
    data.s = new Uint8Array([...(data.s as Uint8Array), 0x00])
    const bytes = CBOR.encode(data)
    const cid = Link.create(0x71, await sha256.digest(bytes))
    const padded = Delegation.create({ root: { cid, bytes } as never, blocks: new Map() })
    expect(Buffer.from(UCAN.encode(padded.data)).equals(Buffer.from(bytes))).toBe(true)
    expect(await checkContentAddressed(padded)).toBe(false)
    const d = await delegate({ issuer: P.agent, audience: P.service, capabilities: agentToService.capabilities, proofs: [padded], expiration: now() + 600 })
    const parsed = await parseDelegation(await formatDelegation(d))
    expect(parsed.ok?.proofs.map((p) => (isDelegation(p) ? p.cid : p).toString())).toEqual([cid.toString()])
    expect(await checkContentAddressed(parsed.ok as API.Delegation)).toBe(false)
    expect(await checkContentAddressed(parsed.ok as API.Delegation, { proofs: false })).toBe(true)
  })

  test('a UCAN whose link (or bytes) caveat is rewritten as a `{"/": …}` map is refused: the same signed payload (dag-json), another block', async () => {
    // UCAN 0.9 signs the dag-json of the payload, where a link and the map {"/": "<cid>"} (bytes
    // and {"/": {"bytes": …}}) are written alike; dag-cbor tells them apart and re-encodes each to
    // itself. So the signature verifies over either block, and a revoked delegation (or a replayed
    // invocation) with a link or bytes in a caveat or fact would get a second CID. Guards the
    // `/`-key check of canonical-ucan.ts (the one-pass proof and the re-encoding's fallback alike).
    const link = spaceToAgent.cid
    const bytesValue = new Uint8Array([1, 2, 3])
    const original = await delegate({ issuer: P.space, audience: P.agent, capabilities: [{ can: 'upload/add', with: P.space.did(), nb: { root: link, b: bytesValue } }] as never, expiration: now() + 600 })
    expect(await checkContentAddressed(original)).toBe(true)
    const principal = createPrincipalParser()
    for (const alias of [{ root: { '/': link.toString() }, b: bytesValue }, { root: link, b: { '/': { bytes: 'AQID' } } }]) {
      const data = CBOR.decode(original.root.bytes) as unknown as { att: { nb: unknown }[] }
      ;(data.att[0] as { nb: unknown }).nb = alias
      const bytes = CBOR.encode(data)
      const aliased = Delegation.create({ root: { cid: Link.create(0x71, await sha256.digest(bytes)), bytes } as never, blocks: new Map() })
      expect(aliased.cid.toString()).not.toBe(original.cid.toString())
      expect(Buffer.from(UCAN.encode(aliased.data)).equals(Buffer.from(bytes))).toBe(true)
      expect(await verifyIssuerSignature(aliased, principal)).toBe(true)
      expect(await checkContentAddressed(aliased)).toBe(false)
    }
  })

  test('a proof stored under another CID is refused, so a revocation cannot be dodged by relabeling', async () => {
    // The agent re-signs an Agent→Service whose proof link X is not the CID of the Space→Agent
    // bytes stored under it. ucanto would verify the bytes and report the chain under X.
    const fakeCid = Link.create(0x71, await sha256.digest(new TextEncoder().encode('not the proof')))
    const relabeled = Delegation.create({ root: { cid: fakeCid, bytes: spaceToAgent.root.bytes } as never, blocks: new Map() })
    const d = await delegate({
      issuer: P.agent,
      audience: P.service,
      capabilities: agentToService.capabilities,
      proofs: [relabeled],
      expiration: now() + 600,
    })
    const parsed = await parseDelegation(await formatDelegation(d))
    expect(parsed.ok).toBeDefined()
    expect(await checkContentAddressed(parsed.ok as API.Delegation)).toBe(false)
    // With { proofs: false } only the top UCAN is checked, and it is canonical. Guards `deep`.
    expect(await checkContentAddressed(parsed.ok as API.Delegation, { proofs: false })).toBe(true)

    const log = new RecordingLog().refuse()
    const server = createUcanService({ signer: P.service, log })
    const inv = await TlogAppend.invoke({
      issuer: P.agent,
      audience: P.service,
      with: P.space.did(),
      nb: { data: 'AQ==', delegation: await formatDelegation(d) },
      expiration: now() + 60,
    }).delegate()
    expect((await send(server, inv)).error?.name).toBe('InvalidDelegation')
    expect(log.calls).toBe(0)
  })
})

describe('the CID string form: only its one canonical spelling parses (node base64 fast path, multiformats for the rest)', () => {
  test('padding, base64url, stray or missing characters, a flipped last character: each refused by name, as before the fast path', async () => {
    expect((await parseDelegation(s)).ok?.cid.toString()).toBe(agentToService.cid.toString())
    const cases: [string, string][] = [
      [`${s}=`, 'delegation CID is not canonical unpadded base64'],
      [`${s}==`, 'delegation CID is not canonical unpadded base64'],
      [s.replace(/\+/g, '-').replace(/\//g, '_'), 'delegation is neither a base64 CAR CID nor standard base64'],
      [`${s.slice(0, 10)} ${s.slice(10)}`, 'delegation is neither a base64 CAR CID nor standard base64'],
      [`${s.slice(0, 10)}!${s.slice(10)}`, 'delegation is neither a base64 CAR CID nor standard base64'],
      [`${s}\n`, 'delegation is neither a base64 CAR CID nor standard base64'],
      ['m', 'delegation is neither a base64 CAR CID nor standard base64'],
    ]
    for (const [input, message] of cases) {
      const out = await parseDelegation(input)
      expect([out.error?.name, out.error?.message], input.slice(-8)).toEqual(['InvalidDelegation', message])
    }
    // Cut or altered bytes: refused (which decoder complains first depends on the bytes).
    for (const input of [s.slice(0, -1), s.slice(0, -2), `${s.slice(0, -1)}${String.fromCharCode(s.charCodeAt(s.length - 1) ^ 1)}`]) {
      expect((await parseDelegation(input)).error?.name).toBe('InvalidDelegation')
    }
  })

  test('a CID whose bytes are not its canonical encoding (over-long version or codec varint), in canonical base64, is refused', async () => {
    // Guards the fast path's byte comparison: the string is canonical base64 of its bytes, the
    // bytes decode to the same CID, but they are not the CID's own bytes.
    const bytes = Buffer.from(s.slice(1), 'base64')
    expect([...bytes.subarray(0, 3)]).toEqual([0x01, 0x82, 0x04]) // CIDv1, CAR (0x0202)
    const longVersion = Buffer.concat([Buffer.from([0x81, 0x00]), bytes.subarray(1)])
    const longCodec = Buffer.concat([bytes.subarray(0, 1), Buffer.from([0x82, 0x84, 0x00]), bytes.subarray(3)])
    for (const b of [longVersion, longCodec]) {
      const out = await parseDelegation(`m${b.toString('base64').replace(/=+$/, '')}`)
      expect([out.error?.name, out.error?.message]).toEqual(['InvalidDelegation', 'delegation CID is not canonical unpadded base64'])
    }
  })
})

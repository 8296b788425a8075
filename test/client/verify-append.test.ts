/**
 * AppendVerifier (src/client/verify-append.ts) on receipts of a real service on loopback with its
 * bundled witness: honest receipts verify and settle into the pinned checkpoint; each lie a
 * service (or anyone between it and the client) can tell is refused with its named error.
 *
 * Lies are made the way a compromised service would make them: the test takes the honest receipt,
 * alters its result, and re-issues the receipt signed with the service's own key (from its data
 * directory), so only the check under test can catch it. Forks and split views come from a second
 * real service holding the same service and witness keys (so the same log key and origin) whose
 * log of the same space has other entries.
 *
 * Written first against today's `checkAppendResult`, the garbage-checkpoint case failed (a
 * checkpoint log-signed by another key, with no cosignature, passed it).
 */
import { join } from 'node:path'
import { Receipt } from '@ucanto/core'
import type * as API from '@ucanto/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkAppendResult } from '../../src/client/receipt.js'
import { type TrustAnchors, resolveTrust } from '../../src/client/trust-store.js'
import { httpLogFiles } from '../../src/client/http.js'
import { AppendVerifier } from '../../src/client/verify-append.js'
import { VerificationError } from '../../src/client/verify-errors.js'
import { loadServiceKey } from '../../src/server/keys.js'
import { ed25519Signer, parseNote, signNote } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateAgentToService, delegateSpaceToAgent, generateKey, type Key } from '../../src/ucan/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { impostor, startTestService } from '../e2e/helpers.js'
import { startSameKeysService } from '../helpers/same-keys-service.js'

type Svc = Awaited<ReturnType<typeof startTestService>>
let A: Svc // the honest service
let B: Svc // same service and witness keys as A, other entries for the same space: a fork of A's log
let serviceKey: API.Signer
let space: Key
let agent: Key
const text = (s: string) => new TextEncoder().encode(s)

beforeAll(async () => {
  A = await startTestService()
  B = await startSameKeysService(A)
  serviceKey = (await loadServiceKey(join(A.dataDir, 'service.key'))).signer
  space = await generateKey()
  agent = await generateKey()
})
afterAll(async () => {
  await A?.stop()
  await B?.stop()
})

/** One appended entry: the bytes, the invocation's link, and the receipt as the service returned it. */
interface Appended {
  entry: Uint8Array
  link: API.Link
  receipt: API.Receipt
  result: AppendResult
}

/** Appends `entries` to `space`'s log at `svc`, one at a time (each receipt at its own tree size). */
async function append(svc: Svc, entries: string[]): Promise<Appended[]> {
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const agentToService = await delegateAgentToService({ agent, service: svc.did as API.DID, proofs: [spaceToAgent], space: space.did() })
  const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
  const out: Appended[] = []
  for (const e of entries) {
    const entry = text(e)
    const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry, agentToService })
    const [receipt] = await conn.execute(inv)
    const result = (receipt!.out as { ok: AppendResult }).ok
    expect(result?.published).toBe(true)
    out.push({ entry, link: (await inv.delegate()).cid, receipt: receipt as unknown as API.Receipt, result })
  }
  return out
}

/** The anchors a first-time client pins from `svc` (trust on first use, as `ucanlog append` does). */
async function trustOf(svc: Svc): Promise<TrustAnchors> {
  return (await resolveTrust({ url: svc.url, space: space.did(), needServiceDid: true, get: (u) => fetch(u) })).anchors
}

const verifier = (svc: Svc, trust: TrustAnchors) => new AppendVerifier({ trust, fetchFile: httpLogFiles(svc.url, space.did()) })

/** The receipt re-issued by `issuer` (default: the service's own key) with `result` as its ok. */
function forge(a: Appended, result: object, issuer: API.Signer = serviceKey): Promise<API.Receipt> {
  const out = 'error' in result ? result : { ok: result }
  return Receipt.issue({ issuer, ran: a.link as never, result: out as never }) as Promise<API.Receipt>
}

async function refused(p: Promise<unknown>): Promise<VerificationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, 'expected a verification error').toBeInstanceOf(VerificationError)
  expect((err as VerificationError).exitCode).toBe(3)
  return err as VerificationError
}

let a3: Appended[] // A's log: 3 entries, checkpoints at sizes 1, 2, 3
let pinnedA: TrustAnchors // a client that verified a3 and settled
beforeAll(async () => {
  a3 = await append(A, ['a0', 'a1', 'a2'])
  const v = verifier(A, await trustOf(A))
  for (const a of a3) expect((await v.verifyReceipt(a.receipt, a.entry, a.link)).status).toBe('verified')
  pinnedA = await v.settle()
})

describe('AppendVerifier: honest receipts', () => {
  it('verifies receipts of the real service and settles into the log\'s current checkpoint', async () => {
    expect(pinnedA.last?.size).toBe(3)
    expect(parseNote(pinnedA.last!.note).text).toBe(parseNote(a3[2]!.result.checkpoint).text)
    // The next run, from that pin: consistent.
    const more = await append(A, ['a3', 'a4'])
    const v = verifier(A, pinnedA)
    for (const a of more) expect(await v.verifyReceipt(a.receipt, a.entry, a.link)).toEqual({ status: 'verified', result: a.result })
    // An old receipt (a replay's original answer) of a smaller size is consistent too.
    expect((await v.verifyReceipt(a3[0]!.receipt, a3[0]!.entry, a3[0]!.link)).status).toBe('verified')
    expect((await v.settle()).last?.size).toBe(5)
  })

  it('a run with no published checkpoint settles to the pin, fetching nothing', async () => {
    let fetched = 0
    const v = new AppendVerifier({ trust: pinnedA, fetchFile: async () => (fetched++, undefined) })
    expect(await v.settle()).toBe(pinnedA)
    expect(fetched).toBe(0)
  })

  it('an unpublished result is reported as such, never as verified', async () => {
    const a = a3[1]!
    const r = { ...a.result, published: false, checkpoint: '', inclusionProof: [] }
    expect(await verifier(A, pinnedA).verifyReceipt(await forge(a, r), a.entry, a.link)).toEqual({ status: 'unpublished', result: r })
  })

  it('a refusal by the service is reported with its name', async () => {
    const a = a3[1]!
    const error = { name: 'RateLimited', message: 'slow down' }
    expect(await verifier(A, pinnedA).verifyReceipt(await forge(a, { error }), a.entry, a.link)).toEqual({ status: 'refused', error })
  })
})

describe('AppendVerifier refuses a forged receipt', () => {
  const a = () => a3[2]!
  const v = () => verifier(A, pinnedA)

  it('a garbage checkpoint (log-signed by another key, no cosignature): LogSignatureInvalid — checkAppendResult alone accepts it', async () => {
    const forger = ed25519Signer(a().result.origin, new Uint8Array(32).fill(9))
    const garbage = { ...a().result, checkpoint: signNote(parseNote(a().result.checkpoint).text, [forger]) }
    expect(() => checkAppendResult(garbage, a().entry)).not.toThrow() // the defect of issue 12
    const err = await refused(v().verifyReceipt(await forge(a(), garbage), a().entry, a().link))
    expect(err.name).toBe('LogSignatureInvalid')
    expect((await refused(v().verifyReceipt(await forge(a(), { ...a().result, checkpoint: 'garbage' }), a().entry, a().link))).name).toBe('LogSignatureInvalid')
  })

  it('a checkpoint signed by another log key, with the witness\'s real cosignature: LogSignatureInvalid', async () => {
    const note = a().result.checkpoint
    const { text: body } = parseNote(note)
    const cosignature = note.slice(note.lastIndexOf('\n\n') + 2).split('\n')[1]! + '\n'
    expect(cosignature).toMatch(/^— /)
    const other = signNote(body, [ed25519Signer(a().result.origin, new Uint8Array(32).fill(8))]) + cosignature
    expect((await refused(v().verifyReceipt(await forge(a(), { ...a().result, checkpoint: other }), a().entry, a().link))).name).toBe('LogSignatureInvalid')
  })

  it('a checkpoint without its cosignature: WitnessPolicyNotMet', async () => {
    const note = a().result.checkpoint
    const logOnly = note.slice(0, note.lastIndexOf('\n\n') + 2) + note.slice(note.lastIndexOf('\n\n') + 2).split('\n')[0]! + '\n'
    const err = await refused(v().verifyReceipt(await forge(a(), { ...a().result, checkpoint: logOnly }), a().entry, a().link))
    expect(err.name).toBe('WitnessPolicyNotMet')
  })

  it('a proof for another index (another entry\'s result): InclusionProofInvalid; a result that is not its checkpoint\'s: InvalidReceipt', async () => {
    const other = await append(A, ['b0', 'b1'])
    // b1's whole result (its index, its proof, its checkpoint) answering b0's invocation.
    const err = await refused(v().verifyReceipt(await forge(other[0]!, other[1]!.result), other[0]!.entry, other[0]!.link))
    expect(err.name).toBe('InclusionProofInvalid')
    const wrongSize = await refused(v().verifyReceipt(await forge(a(), { ...a().result, treeSize: a().result.treeSize + 1 }), a().entry, a().link))
    expect(wrongSize.name).toBe('InvalidReceipt')
  })

  it('a receipt signed by another key: ReceiptSignatureInvalid (another issuer, or the service\'s DID with another key)', async () => {
    const stranger = await generateKey()
    const byStranger = await refused(v().verifyReceipt(await forge(a(), a().result, stranger), a().entry, a().link))
    expect(byStranger.name).toBe('ReceiptSignatureInvalid')
    expect(byStranger.message).toContain(`issued by ${stranger.did()}`)
    const byImpostor = await refused(v().verifyReceipt(await forge(a(), a().result, impostor(serviceKey, stranger)), a().entry, a().link))
    expect(byImpostor.name).toBe('ReceiptSignatureInvalid')
    expect(byImpostor.message).toContain('does not verify')
  })

  it('another invocation\'s receipt: ReceiptMismatch; another log\'s result: ReceiptMismatch; another origin: OriginMismatch', async () => {
    expect((await refused(v().verifyReceipt(a().receipt, a().entry, a3[0]!.link))).name).toBe('ReceiptMismatch')
    expect((await refused(v().verifyReceipt(await forge(a(), { ...a().result, logId: agent.did() }), a().entry, a().link))).name).toBe('ReceiptMismatch')
    expect((await refused(v().verifyReceipt(await forge(a(), { ...a().result, index: 'x' }), a().entry, a().link))).name).toBe('ReceiptMismatch')
    expect((await refused(v().verifyReceipt(await forge(a(), { ...a().result, origin: 'elsewhere/logs/x' }), a().entry, a().link))).name).toBe('OriginMismatch')
  })

  it('the honest receipt passes each of these checks (so each refusal above is that check\'s)', async () => {
    expect((await v().verifyReceipt(await forge(a(), a().result), a().entry, a().link)).status).toBe('verified')
  })
})

describe('AppendVerifier.settle refuses views that cannot both be true', () => {
  let b: Appended[] // B's log of the same space: other entries, same log key, origin and witness key
  beforeAll(async () => {
    b = await append(B, ['x0', 'x1'])
  })

  it('B\'s receipts verify on their own: same service, log key and witness', async () => {
    const v = verifier(B, pinnedA)
    expect((await v.verifyReceipt(b[0]!.receipt, b[0]!.entry, b[0]!.link)).status).toBe('verified')
  })

  it('two checkpoints of one size with different roots (A\'s and B\'s size 1): SplitView', async () => {
    const v = verifier(A, { ...pinnedA, last: undefined })
    await v.verifyReceipt(a3[0]!.receipt, a3[0]!.entry, a3[0]!.link)
    await v.verifyReceipt(b[0]!.receipt, b[0]!.entry, b[0]!.link)
    const err = await refused(v.settle())
    expect(err.name).toBe('SplitView')
    expect(err.message).toMatch(/two checkpoints of size 1 with different roots/)
  })

  it('a log smaller than the pinned checkpoint (B at 2 after A was pinned at ≥ 3): LogRolledBack', async () => {
    const v = verifier(B, pinnedA)
    await v.verifyReceipt(b[1]!.receipt, b[1]!.entry, b[1]!.link)
    const err = await refused(v.settle())
    expect(err.name).toBe('LogRolledBack')
    expect(err.message).toMatch(/it now publishes size 2, but the pinned checkpoint of size 3 was seen/)
  })

  it('a receipt\'s checkpoint of the current size with another root than the log now shows (A\'s size 2 against B at 2): SplitView', async () => {
    const v = verifier(B, { ...pinnedA, last: undefined })
    await v.verifyReceipt(a3[1]!.receipt, a3[1]!.entry, a3[1]!.link)
    const err = await refused(v.settle())
    expect(err.name).toBe('SplitView')
    expect(err.message).toBe('the current checkpoint of size 2 has another root than a receipt\'s checkpoint of size 2')
  })

  it('a larger log that does not extend the pinned one (B grown past A\'s pin): LogForked', async () => {
    const more = await append(B, ['x2', 'x3', 'x4'])
    const v = verifier(B, pinnedA)
    const last = more[2]!
    expect((await v.verifyReceipt(last.receipt, last.entry, last.link)).status).toBe('verified')
    const err = await refused(v.settle())
    expect(err.name).toBe('LogForked')
    expect(err.message).toBe('the log forked: its checkpoint of size 5 is not consistent with the pinned checkpoint of size 3')
    // The same run without the pin settles: the refusal is the consistency check's.
    const fresh = verifier(B, { ...pinnedA, last: undefined })
    await fresh.verifyReceipt(last.receipt, last.entry, last.link)
    expect((await fresh.settle()).last?.size).toBe(5)
  })
})

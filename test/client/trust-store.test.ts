/**
 * The trust store (src/client/trust-store.ts): files written atomically with private modes, the
 * format `ucanlog audit` always wrote still read, the last checkpoint never moved back, a corrupt
 * file named; and resolveTrust against a real service: trust on first use with notes, pins held
 * (LogKeyChanged, ServiceKeyChanged), explicit values winning, a new space created through the
 * caller's `createLog`.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  NoPublishedLogError,
  type TrustAnchors,
  TrustStoreError,
  defaultStateDir,
  loadTrust,
  resolveTrust,
  saveTrust,
  trustFilePath,
} from '../../src/client/trust-store.js'
import { encodeBase64, ed25519Signer } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import type * as API from '@ucanto/interface'
import { startTestService } from '../e2e/helpers.js'

const SPACE = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-trust-'))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

const anchors = (size?: number): TrustAnchors => ({
  space: SPACE,
  url: 'http://127.0.0.1:1',
  serviceDid: 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp',
  origin: `ucanlog/logs/${SPACE}`,
  logVkey: ed25519Signer(`ucanlog/logs/${SPACE}`, new Uint8Array(32).fill(1)).vkey,
  policy: 'quorum none\n',
  ...(size !== undefined && { last: { size, rootHash: new Uint8Array(32).fill(size), note: `note ${size}\n` } }),
})

describe('trust-store files', () => {
  it('round-trips, 0600 in a 0700 directory, nothing left behind, pretty JSON', async () => {
    const state = join(dir, 'a', 'b')
    const file = await saveTrust(state, anchors(5))
    expect(file).toBe(trustFilePath(state, SPACE))
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await stat(state)).mode & 0o777).toBe(0o700)
    expect(await readdir(state)).toEqual([`${SPACE}.json`])
    expect(await loadTrust(state, SPACE)).toEqual(anchors(5))
    expect(await readFile(file, 'utf8')).toMatch(/^{\n {2}"url": .*"checkpoint": "note 5\\n"\n}\n$/s)
    expect(await loadTrust(state, 'did:key:z6MkotherotherotherotherotherotherotherotherotherX')).toBeUndefined()
  })

  it('reads the file `ucanlog audit` wrote before the store existed (no serviceDid)', async () => {
    const state = join(dir, 'old')
    const { serviceDid: _, last, ...rest } = anchors(7)
    await saveTrust(state, { ...rest })
    const file = trustFilePath(state, SPACE)
    await writeFile(file, JSON.stringify({ ...rest, size: 7, rootHash: encodeBase64(last!.rootHash), checkpoint: last!.note }, null, 2) + '\n')
    expect(await loadTrust(state, SPACE)).toEqual({ ...rest, last })
  })

  it('never moves the last checkpoint back: a smaller one (or none) keeps the stored larger one', async () => {
    const state = join(dir, 'monotonic')
    await saveTrust(state, anchors(9))
    await saveTrust(state, { ...anchors(4), policy: 'quorum other\n' })
    expect(await loadTrust(state, SPACE)).toMatchObject({ policy: 'quorum other\n', last: { size: 9 } })
    await saveTrust(state, anchors())
    expect((await loadTrust(state, SPACE))?.last?.size).toBe(9)
    await saveTrust(state, anchors(12))
    expect((await loadTrust(state, SPACE))?.last?.size).toBe(12)
  })

  it('a corrupt file is a TrustStoreError naming the file (exit 1), never silently replaced', async () => {
    const state = join(dir, 'corrupt')
    await saveTrust(state, anchors(1))
    const file = trustFilePath(state, SPACE)
    for (const bad of ['{', '[]', JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), logVkey: 3 }), JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), space: 'did:key:zOther' })]) {
      await writeFile(file, bad)
      const err = await loadTrust(state, SPACE).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TrustStoreError)
      expect(err).toMatchObject({ name: 'TrustStoreError', exitCode: 1, message: expect.stringContaining(file) })
    }
  })

  it('an unwritable state directory is a TrustStoreError saying what to do', async () => {
    const blocker = join(dir, 'blocker')
    await writeFile(blocker, '')
    const err = await saveTrust(join(blocker, 'state'), anchors(1)).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'TrustStoreError', message: expect.stringMatching(/cannot write .* check that .* is writable \(--state, UCANLOG_STATE\)$/) })
  })

  it('the state directory: UCANLOG_STATE, else UCANLOG_AUDIT_STATE, else ~/.ucanlog/audit', () => {
    expect(defaultStateDir({ UCANLOG_STATE: '/s', UCANLOG_AUDIT_STATE: '/a' })).toBe('/s')
    expect(defaultStateDir({ UCANLOG_AUDIT_STATE: '/a' })).toBe('/a')
    expect(defaultStateDir({})).toMatch(/\.ucanlog\/audit$/)
  })
})

describe('resolveTrust against a real service', () => {
  let svc: Awaited<ReturnType<typeof startTestService>>
  let space: string
  let head: { origin: string; vkey: string }
  const get = (u: URL) => fetch(u)
  beforeAll(async () => {
    svc = await startTestService()
    const s = await generateKey()
    const agent = await generateKey()
    const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: s.did(), entry: new Uint8Array([0, 255]), spaceToAgent: await delegateSpaceToAgent({ space: s, agent }) })
    await connect(`${svc.url}/rpc`, svc.did as API.DID).execute(inv)
    space = s.did()
    head = (await (await fetch(`${svc.url}/logs/${space}/head`)).json()) as typeof head
  })
  afterAll(() => svc?.stop())

  it('first use: takes the log key and origin from /head, the policy from /info, the DID from /did, and says so', async () => {
    const { anchors: a, notes } = await resolveTrust({ url: svc.url, space, needServiceDid: true, get })
    expect(a).toEqual({ space, url: svc.url, serviceDid: svc.did, origin: head.origin, logVkey: head.vkey, policy: svc.policy })
    expect(notes).toEqual([
      `first use of this service: trusting the service DID it shows at /did (${svc.did}); it is pinned from now on`,
      `first use of this log: trusting the log key the service shows (${head.vkey}); it is pinned from now on`,
      'first use of this log: using the witness policy the service shows at /info; it is pinned from now on',
    ])
    // Without needServiceDid, /did is not asked for and nothing is said about it.
    expect((await resolveTrust({ url: svc.url, space, get, firstUse: 'first audit' })).notes).toEqual([
      `first audit of this log: trusting the log key the service shows (${head.vkey}); it is pinned from now on`,
      'first audit of this log: using the witness policy the service shows at /info; it is pinned from now on',
    ])
  })

  it('pinned values hold: no notes; another key at /head is LogKeyChanged, another DID at /did ServiceKeyChanged; explicit values win', async () => {
    const stored = (await resolveTrust({ url: svc.url, space, needServiceDid: true, get })).anchors
    const pinned = { ...stored, last: { size: 1, rootHash: new Uint8Array(32), note: 'n\n' } }
    expect(await resolveTrust({ url: svc.url, space, stored: pinned, needServiceDid: true, get })).toEqual({ anchors: pinned, notes: [] })
    const otherVkey = ed25519Signer(head.origin, new Uint8Array(32).fill(5)).vkey
    const keyChanged = await resolveTrust({ url: svc.url, space, stored: { ...pinned, logVkey: otherVkey }, get }).catch((e: unknown) => e)
    expect(keyChanged).toMatchObject({ name: 'LogKeyChanged', exitCode: 3, message: `the service now shows log key ${head.vkey}, but ${otherVkey} was pinned` })
    const otherDid = (await generateKey()).did()
    const didChanged = await resolveTrust({ url: svc.url, space, stored: { ...pinned, serviceDid: otherDid }, needServiceDid: true, get }).catch((e: unknown) => e)
    expect(didChanged).toMatchObject({ name: 'ServiceKeyChanged', exitCode: 3, message: `the service at ${svc.url} now shows DID ${svc.did}, but ${otherDid} was pinned` })
    const explicit = await resolveTrust({ url: svc.url, space, stored: pinned, needServiceDid: true, get, explicit: { logVkey: otherVkey, policy: 'quorum none\n', serviceDid: otherDid } })
    expect(explicit.anchors).toMatchObject({ logVkey: otherVkey, policy: 'quorum none\n', serviceDid: otherDid, last: pinned.last })
  })

  it('a space with no published log: NoPublishedLog, or the log createLog makes', async () => {
    const fresh = (await generateKey()).did()
    const err = await resolveTrust({ url: svc.url, space: fresh, get }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NoPublishedLogError)
    expect(err).toMatchObject({ message: `the service has no published log for ${fresh}` })
    const asked: (string | undefined)[] = []
    const created = await resolveTrust({ url: svc.url, space: fresh, get, needServiceDid: true, createLog: async (did) => (asked.push(did), { origin: `o/logs/${fresh}`, vkey: head.vkey }) })
    expect(created.anchors).toMatchObject({ origin: `o/logs/${fresh}`, logVkey: head.vkey })
    expect(asked).toEqual([svc.did]) // given the service DID resolved first, to check the create receipt with
  })
})

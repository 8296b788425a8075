/**
 * Issue 8 hole 5: the service's own DID (and any other key the service holds) is not a space. With
 * `with` = the service DID, the grant probe the service signs is self-issued, so before the fix a
 * stranger with no grant at all created and appended to a log named after the operator's key.
 * Over real HTTP against the real server.
 */
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type * as API from '@ucanto/interface'
import { ed25519 } from '@ucanto/principal'
import { decodeBase64 } from '../../src/tlog/encoding.js'
import { appendInvocation, createInvocation, delegateAgentToService, generateKey, readInvocation } from '../../src/ucan/index.js'
import { encodeRequest, outOf, sendRaw, type Out } from '../ucan/helpers.js'
import { httpTarget, startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>

async function call(svc: Svc, inv: API.Invocation): Promise<Out> {
  const [receipt] = await sendRaw(httpTarget(svc.url), await encodeRequest([inv]))
  return outOf(receipt!)
}

const exists = (path: string) => access(path).then(() => true, () => false)

describe('a space the service itself controls is refused before any chain work', () => {
  let svc: Svc
  beforeAll(async () => {
    svc = await startTestService()
  })
  afterAll(async () => {
    await svc?.stop()
  })

  it("a stranger's tlog/create and tlog/append with `with` = the service DID → ReservedSpace, no log directory", async () => {
    const stranger = await generateKey()
    const space = svc.did as API.DIDKey
    // A self-made Agent→Service delegation on the service's DID, with no proof at all.
    const a2s = await delegateAgentToService({ agent: stranger, service: svc.did as API.DID, proofs: [], space })
    const created = await call(svc, await (await createInvocation({ agent: stranger, service: svc.did as API.DID, space, agentToService: a2s })).delegate())
    expect(created.error?.name).toBe('ReservedSpace')
    const appended = await call(svc, await (await appendInvocation({ agent: stranger, service: svc.did as API.DID, space, entry: new TextEncoder().encode('mine now'), agentToService: a2s })).delegate())
    expect(appended.error?.name).toBe('ReservedSpace')
    const read = await call(svc, await readInvocation({ issuer: stranger, service: svc.did as API.DID, space }).delegate())
    expect(read.error?.name).toBe('ReservedSpace')
    expect(await exists(join(svc.dataDir, 'logs', space))).toBe(false)
    expect((await fetch(`${svc.url}/logs/${space}/head`)).status).toBe(404)
  })

  it("the bundled witness's key (held by the service) is refused the same way", async () => {
    const info = (await (await fetch(`${svc.url}/info`)).json()) as { bundledWitness: { vkey: string } }
    const key = decodeBase64(info.bundledWitness.vkey.split('+').slice(2).join('+')) // 0x04 ‖ Ed25519 public key
    const space = ed25519.Verifier.decode(new Uint8Array([0xed, 0x01, ...key.subarray(1)])).did()
    const stranger = await generateKey()
    const a2s = await delegateAgentToService({ agent: stranger, service: svc.did as API.DID, proofs: [], space })
    const out = await call(svc, await (await createInvocation({ agent: stranger, service: svc.did as API.DID, space, agentToService: a2s })).delegate())
    expect(out.error?.name).toBe('ReservedSpace')
    expect(await exists(join(svc.dataDir, 'logs', space))).toBe(false)
  })
})

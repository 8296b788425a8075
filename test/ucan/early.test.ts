/**
 * Answers given before any signature or chain work (src/ucan/service.ts `early`): a replay of an
 * answered append gets its first outcome without being authorized again, and a write that would
 * create a log its client may not create now is refused by name. Both are counted in signature
 * verifications, which must stay at zero for these requests.
 */
import { beforeAll, describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { appendInvocation, createInvocation, createPrincipalParser, createUcanService, delegateAgentToService, delegateSpaceToAgent, LogCreationLimited } from '../../src/ucan/index.js'
import { createMemoryRevocations } from '../../src/ucan/revocation.js'
import { type Principals, RecordingLog, principals, send } from './helpers.js'

let P: Principals
beforeAll(async () => {
  P = await principals()
})

/** node:crypto's parser, counting every signature verification. */
function countingParser(): { parser: API.PrincipalParser; verifies: () => number } {
  const inner = createPrincipalParser()
  let n = 0
  return {
    parser: {
      parse(did) {
        const v = inner.parse(did)
        return {
          did: () => v.did(),
          toDIDKey: () => v.toDIDKey(),
          withDID: (id: API.DID) => v.withDID(id),
          verify: (payload: Uint8Array, signature: API.Signature) => {
            n++
            return v.verify(payload, signature)
          },
        } as API.Verifier
      },
    },
    verifies: () => n,
  }
}

describe('answers before authorization', () => {
  test('a replay of an answered append gets the first outcome with no signature checked, even once its chain is revoked', async () => {
    const { parser, verifies } = countingParser()
    const log = new RecordingLog()
    const revocations = createMemoryRevocations()
    const server = createUcanService({ signer: P.service, log, principal: parser, revocations })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const inv = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService })).delegate()
    const first = await send(server, inv)
    expect(first.ok, JSON.stringify(first.error)).toMatchObject({ index: 0 })
    const afterFirst = verifies()
    expect(afterFirst).toBeGreaterThan(0)

    // Revoke the Agent→Service delegation: a fresh invocation is refused, the replay is not.
    revocations.add(agentToService.cid.toString(), P.agent.did())
    const fresh = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([2]), agentToService })).delegate()
    expect((await send(server, fresh)).error?.name).toBe('Revoked')
    const beforeReplays = verifies()
    for (let i = 0; i < 5; i++) expect(await send(server, inv)).toEqual(first)
    expect(verifies() - beforeReplays, 'signature verifications for 5 replays').toBe(0)
    expect(log.calls).toBe(1)
  })

  test('a write that would create a log its client may not create is refused (LogCreationLimited) before any signature check', async () => {
    const { parser, verifies } = countingParser()
    const log = new RecordingLog()
    const asked: { space: string; client?: string }[] = []
    Object.assign(log, {
      async creationRefusal(space: string, meta: { client?: string }) {
        asked.push({ space, ...meta })
        return new LogCreationLimited('too many logs created from this address; retry later')
      },
    })
    log.refuse()
    const server = createUcanService({ signer: P.service, log, principal: parser })
    const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent })
    const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], space: P.space.did() })
    const append = await (await appendInvocation({ agent: P.agent, service: P.service, space: P.space.did(), entry: new Uint8Array([1]), agentToService })).delegate()
    const create = await (await createInvocation({ agent: P.agent, service: P.service, space: P.space.did(), agentToService })).delegate()
    expect((await send(server, append)).error?.name).toBe('LogCreationLimited')
    expect((await send(server, create)).error?.name).toBe('LogCreationLimited')
    expect(verifies()).toBe(0)
    expect(asked.map((a) => a.space)).toEqual([P.space.did(), P.space.did()])
  })
})

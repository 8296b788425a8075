/** A hostile proof DAG whose block labels form a cycle: ucanto would overflow its stack exporting it. */
import { expect, test } from 'vitest'
import { Message, UCAN, CAR, invoke } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Link from 'multiformats/link'
import { createUcanService } from '../../src/ucan/index.js'
import { RecordingLog, now, outOf, principals, sendRaw } from './helpers.js'

test('a request with cyclic proof labels gets a ProofCycle receipt (its graph never exported) and never appends', async () => {
  const P = await principals()
  // B is signed with prf [L], and B's own bytes are stored under the label L.
  const L = Link.create(0x71, await sha256.digest(new Uint8Array([1])))
  const B = await UCAN.issue({
    issuer: P.mallory,
    audience: P.mallory,
    capabilities: [{ can: 'x/y', with: P.mallory.did() }],
    proofs: [L as never],
    expiration: now() + 60,
  })
  const loop = { cid: L, bytes: UCAN.encode(B) }
  const inv = await invoke({
    issuer: P.mallory,
    audience: P.service,
    capability: { can: 'tlog/read', with: P.space.did() },
    proofs: [L as never],
    expiration: now() + 60,
  }).delegate()
  const message = await Message.build({ invocations: [inv as unknown as API.Invocation] })
  const blocks = new Map<string, API.Block>()
  for (const b of message.iterateIPLDBlocks()) blocks.set(b.cid.toString(), b)
  blocks.set(L.toString(), loop as never)
  const body = CAR.encode({ roots: [message.root], blocks }) as Uint8Array

  const logged: unknown[] = []
  const log = new RecordingLog().refuse()
  const server = createUcanService({ signer: P.service, log, logger: { error: (d) => logged.push(d) } })
  const [receipt] = await sendRaw(server, { headers: { 'content-type': 'application/vnd.ipld.car' }, body })
  expect(outOf(receipt!).error?.name).toBe('ProofCycle')
  expect(logged).toEqual([])
  expect(log.calls).toBe(0)
  expect(server.id.did()).toBe(P.service.did())
})

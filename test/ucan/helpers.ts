/**
 * Shared fixtures for the src/ucan tests: pinned principals, a recording LogService, and a way to
 * send a real CAR-encoded agent message through `server.request` and read the receipts back.
 */
import { Message, Receipt, delegate } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import * as CAR from '@ucanto/transport/car'
import { expect } from 'vitest'
import type { Appended, CreateResult, LogService, SpaceDID } from '../../src/ucan/index.js'
import { delegateAgentToService, delegateSpaceToAgent } from '../../src/ucan/index.js'

/** Deterministic Ed25519 key from a one-byte seed (the 32-byte secret is the byte repeated). */
export function pinnedKey(seed: number): Promise<ed25519.EdSigner> {
  return ed25519.derive(new Uint8Array(32).fill(seed))
}

/** The cast of the tests, each with a fixed key. */
export interface Principals {
  /** The space (and log) A. */
  space: ed25519.EdSigner
  /** Another space, B. */
  spaceB: ed25519.EdSigner
  /** The space owner's intermediate in the longer chain Space→Alice→Agent. */
  alice: ed25519.EdSigner
  /** The app's agent key, which invokes tlog/append. */
  agent: ed25519.EdSigner
  /** The ucanlog service identity. */
  service: ed25519.EdSigner
  /** An attacker. */
  mallory: ed25519.EdSigner
}

export async function principals(): Promise<Principals> {
  return {
    space: await pinnedKey(1),
    spaceB: await pinnedKey(2),
    alice: await pinnedKey(3),
    agent: await pinnedKey(4),
    service: await pinnedKey(5),
    mallory: await pinnedKey(6),
  }
}

export const now = (): number => Math.floor(Date.now() / 1000)

/** The principals and the honest Space→Agent→Service chain (a day long) most UCAN tests start from. */
export async function honestChain(): Promise<{ P: Principals; spaceToAgent: API.Delegation; agentToService: API.Delegation }> {
  const P = await principals()
  const spaceToAgent = await delegateSpaceToAgent({ space: P.space, agent: P.agent, expiration: now() + 86400 })
  const agentToService = await delegateAgentToService({ agent: P.agent, service: P.service, proofs: [spaceToAgent], expiration: now() + 86400 })
  return { P, spaceToAgent, agentToService }
}

/** A LogService fake that records calls; `refuse()` makes any append a test failure. */
export class RecordingLog implements LogService {
  appends: { space: SpaceDID; entry: Uint8Array; invocation: string; delegation: API.Delegation }[] = []
  logs = new Map<string, Uint8Array[]>()
  #forbidden = false
  failNext: Error | undefined

  /** From now on, any append fails the test (the request under test must be refused). */
  refuse(): this {
    this.#forbidden = true
    return this
  }

  /** Every call to `append`, including refused and failed ones. */
  calls = 0

  /** The log's creation limits (LogService.creationRefusal), when a test sets them. */
  creationRefusal?: LogService['creationRefusal']

  async append(space: SpaceDID, entry: Uint8Array, meta: { invocation: string; delegation: API.Delegation }): Promise<Appended> {
    this.calls++
    // The service turns a throw into InternalError, so tests also assert `calls === 0`.
    expect(this.#forbidden, 'log.append must not be called for a refused invocation').toBe(false)
    if (this.failNext) {
      const e = this.failNext
      this.failNext = undefined
      throw e
    }
    this.appends.push({ space, entry, ...meta })
    const log = this.logs.get(space) ?? []
    log.push(entry)
    this.logs.set(space, log)
    const index = log.length - 1
    const rootHash = new Uint8Array(Buffer.alloc(32, index))
    return {
      logId: space,
      origin: `ucanlog/logs/${space}`,
      index,
      published: true,
      checkpoint: { size: log.length, rootHash, note: `ucanlog/logs/${space}\n${log.length}\n${Buffer.from(rootHash).toString('base64')}\n\n— sig\n` },
      inclusionProof: [],
    }
  }

  /** Spaces created by tlog/create, in call order. */
  created: SpaceDID[] = []

  async create(space: SpaceDID): Promise<CreateResult> {
    expect(this.#forbidden, 'log.create must not be called for a refused invocation').toBe(false)
    this.created.push(space)
    if (!this.logs.has(space)) this.logs.set(space, [])
    return { logId: space, origin: `ucanlog/logs/${space}`, vkey: `ucanlog/logs/${space}+00000000+AQ==`, treeSize: this.logs.get(space)!.length }
  }

  /** The `maxBytes` of every read call, in order. */
  readBudgets: number[] = []

  async read(space: SpaceDID, offset: number, limit: number, maxBytes: number): Promise<{ entries: Uint8Array[]; total: number } | undefined> {
    this.readBudgets.push(maxBytes)
    const log = this.logs.get(space)
    if (log === undefined) return undefined
    const entries: Uint8Array[] = []
    let bytes = 0
    for (const e of log.slice(offset, offset + limit)) {
      if (bytes + e.length > maxBytes) break
      entries.push(e)
      bytes += e.length
    }
    return { entries, total: log.length }
  }
}

/** Minimal view of what a server exposes that the tests need. */
export interface RequestTarget {
  request(req: { headers: Record<string, string>; body: Uint8Array }): API.Await<{ status?: number; headers: Record<string, string>; body: Uint8Array }>
}

/** A CAR-encoded agent message carrying `invocations`, as a client would POST it. */
export async function encodeRequest(invocations: API.Invocation[]): Promise<{ headers: Record<string, string>; body: Uint8Array }> {
  const message = await Message.build({ invocations: invocations as unknown as [API.Invocation] })
  const req = CAR.request.encode(message)
  return { headers: { ...req.headers }, body: req.body }
}

/** The JSON-ish `out` of a receipt. */
export type Out = { ok?: Record<string, unknown>; error?: Record<string, unknown> }

/** Sends a request body and decodes the receipts, in invocation order. */
export async function sendRaw(
  server: RequestTarget,
  req: { headers: Record<string, string>; body: Uint8Array },
): Promise<API.Receipt[]> {
  const res = await server.request(req)
  expect(res.status ?? 200).toBe(200)
  const message = await CAR.response.decode({ headers: res.headers, body: res.body } as never)
  return [...(message as API.AgentMessage).receipts.values()] as API.Receipt[]
}

/** Sends one invocation through `server.request` and returns its receipt's `out`. */
export async function send(server: RequestTarget, invocation: API.Invocation): Promise<Out> {
  const [receipt] = await sendRaw(server, await encodeRequest([invocation]))
  expect(receipt).toBeDefined()
  return outOf(receipt as API.Receipt)
}

/** `receipt.out`, checking that an error carries exactly a name and a message (never a stack). */
export function outOf(receipt: API.Receipt): Out {
  const out = receipt.out as Out
  if (out.error !== undefined) {
    expect(Object.keys(out.error).sort()).toEqual(['message', 'name'])
    expect(out.error).not.toHaveProperty('stack')
    expect(typeof out.error.message).toBe('string')
    expect((out.error.message as string).length).toBeLessThan(300)
  }
  return out
}

/** A signer that claims `claimed`'s DID but signs with `actual`'s key: its signatures never verify
 * (well-formed, canonical UCANs whose signature does not verify). */
export function impostor(claimed: API.Signer, actual: API.Signer): API.Signer {
  return {
    did: () => claimed.did(),
    toDIDKey: () => claimed.did() as API.DIDKey,
    sign: (payload: Uint8Array) => actual.sign(payload),
    signatureAlgorithm: actual.signatureAlgorithm,
    signatureCode: actual.signatureCode,
    verifier: claimed.verifier,
    encode: () => (actual as unknown as { encode(): Uint8Array }).encode(),
    withDID: () => {
      throw new Error('not supported')
    },
  } as unknown as API.Signer
}

export { Receipt, delegate }

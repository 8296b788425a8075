/**
 * The log's witness client (src/log/witness-client.ts) against real witnesses of ours on loopback
 * HTTP: fan-out, 409 resync, a witness ahead of the log, witnesses that do not know the log, one
 * request per URL, stopping at quorum, greedy mode and the per-witness timeout. The log is the
 * litewitness test log (sizes 1, 3, 5 with upstream signatures and proofs; test/vectors/PROVENANCE.md).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { afterEach, describe, expect, it } from 'vitest'
import { WitnessClient } from '../../src/log/witness-client.js'
import { decodeHash } from '../../src/tlog/encoding.js'
import { parsePolicy, verifiedWitnesses } from '../../src/tlog/policy.js'
import { SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import { CP1, CP3, CP5, LOG, note, PROOF_1_3, PROOF_1_5, PROOF_3_5 } from '../vectors/litewitness.js'
import { closeServer, listenOnLoopback } from '../helpers/loopback.js'

interface TestWitness {
  name: string
  vkey: string
  url: string
  store: SqliteWitnessStore
  /** Bodies of the add-checkpoint requests it received, in order. */
  requests: string[]
  close(): Promise<void>
}

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** A witness of ours on 127.0.0.1 that knows the litewitness log (unless `knows` is false). */
async function startWitness(n: number, opts: { knows?: boolean } = {}): Promise<TestWitness> {
  const store = new SqliteWitnessStore(':memory:')
  store.addLog(LOG.origin)
  if (opts.knows ?? true) store.addKey(LOG.origin, LOG.vkey)
  const witness = new Witness({ name: `w${n}.example`, seed: new Uint8Array(32).fill(n), store, now: () => 1700000000 + n })
  const app = witnessApp(witness)
  const requests: string[] = []
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve(
      {
        fetch: async (req: Request) => {
          if (new URL(req.url).pathname === '/add-checkpoint') requests.push(await req.clone().text())
          return app.fetch(req)
        },
        port: 0,
        hostname: '127.0.0.1',
      },
      () => resolve(s),
    )
  })
  const port = (server.address() as AddressInfo).port
  const w: TestWitness = {
    name: witness.name,
    vkey: witness.vkey,
    url: `http://127.0.0.1:${port}`,
    store,
    requests,
    close: () => closeServer(server).then(() => store.close()),
  }
  cleanup.push(() => w.close())
  return w
}

/** A server that accepts add-checkpoint requests and never answers them. */
async function startHanging(): Promise<{ url: string; seen: Promise<void>; aborted: Promise<void> }> {
  let seen!: () => void
  let aborted!: () => void
  const seenP = new Promise<void>((r) => (seen = r))
  const abortedP = new Promise<void>((r) => (aborted = r))
  const server: Server = createServer((req: IncomingMessage) => {
    seen()
    req.on('close', () => aborted())
  })
  const url = await listenOnLoopback(server)
  cleanup.push(() => closeServer(server))
  return { url, seen: seenP, aborted: abortedP }
}

function policy(witnesses: { name: string; vkey: string; url: string; as?: string }[], quorum: string) {
  return parsePolicy(witnesses.map((w) => `witness ${w.as ?? w.name.split('.')[0]} ${w.vkey} ${w.url}\n`).join('') + quorum)
}

/** Consistency proofs of the litewitness tree, as the log would compute them from its tiles. */
const PROOFS: Record<string, string[]> = { '1-3': PROOF_1_3, '1-5': PROOF_1_5, '3-5': PROOF_3_5 }
const prover = (size: number) => async (old: number) => {
  const p = PROOFS[`${old}-${size}`]
  if (!p) throw new Error(`no proof ${old}→${size}`)
  return p.map(decodeHash)
}

/** A cosignature/v1 vkey for a key no witness has (so a hanging server can be a policy witness). */
async function unusedVkey(name: string): Promise<string> {
  return new Witness({ name, seed: new Uint8Array(32).fill(99), store: new SqliteWitnessStore(':memory:') }).vkey
}

describe('WitnessClient against real witnesses', () => {
  it('fans out to every witness and returns the checkpoint with the cosignatures that verify (2 of 3)', async () => {
    const ws = await Promise.all([1, 2, 3].map((n) => startWitness(n)))
    const p = policy(ws, 'group g 2 w1 w2 w3\nquorum g\n')
    const client = new WitnessClient({ policy: p, greedy: true })
    const r = await client.cosign(note(CP1), 1, prover(1))
    expect(r.satisfied).toBe(true)
    expect([...r.cosigned].sort()).toEqual(['w1', 'w2', 'w3'])
    expect(verifiedWitnesses(p, r.note)).toEqual(new Set(['w1', 'w2', 'w3']))
    expect(r.note.startsWith(note(CP1))).toBe(true)
    for (const w of ws) expect(w.requests).toEqual([`old 0\n\n${note(CP1)}`])

    // The next checkpoint carries each witness's last size and the matching proof.
    const r3 = await client.cosign(note(CP3), 3, prover(3))
    expect(r3.cosigned).toEqual(new Set(['w1', 'w2', 'w3']))
    for (const w of ws) expect(w.requests[1]).toBe(`old 1\n${PROOF_1_3.join('\n')}\n\n${note(CP3)}`)
  })

  it('resyncs on 409 text/x.tlog.size: a fresh client (old 0) learns the witness size and proves from it', async () => {
    const w = await startWitness(1)
    await new WitnessClient({ policy: policy([w], 'quorum w1\n') }).cosign(note(CP3), 3, prover(3)) // witness now at 3
    const errors: string[] = []
    const client = new WitnessClient({ policy: policy([w], 'quorum w1\n'), onWitnessError: (_u, m) => errors.push(m) })
    const r = await client.cosign(note(CP5), 5, prover(5))
    expect(r.satisfied).toBe(true)
    expect(w.requests.slice(1)).toEqual([`old 0\n\n${note(CP5)}`, `old 3\n${PROOF_3_5.join('\n')}\n\n${note(CP5)}`])
    expect(errors).toEqual([])
    expect(w.store.getLog(LOG.origin)?.treeSize).toBe(5)
  })

  it("treats a 409 size larger than the log's as a permanent error for the round (no retry, no new old size)", async () => {
    const w = await startWitness(1)
    await new WitnessClient({ policy: policy([w], 'quorum w1\n') }).cosign(note(CP1), 1, prover(1))
    await new WitnessClient({ policy: policy([w], 'quorum w1\n') }).cosign(note(CP5), 5, prover(5)) // old 0 → 409 "1" → old 1 → 200
    expect(w.store.getLog(LOG.origin)?.treeSize).toBe(5)
    const errors: string[] = []
    const client = new WitnessClient({ policy: policy([w], 'quorum w1\n'), onWitnessError: (_u, m) => errors.push(m) })
    const before = w.requests.length
    const r = await client.cosign(note(CP3), 3, prover(3))
    expect(r).toMatchObject({ satisfied: false, note: note(CP3) })
    expect(r.cosigned.size).toBe(0)
    expect(w.requests.length - before).toBe(1)
    expect(errors).toEqual(["witness is at size 5, ahead of the log's 3"])
    // Still a permanent error next round: the client did not adopt 5 as its old size.
    await client.cosign(note(CP3), 3, prover(3))
    expect(w.requests.slice(before)).toEqual([`old 0\n\n${note(CP3)}`, `old 0\n\n${note(CP3)}`])
  })

  it('reports 404 (unknown or disabled log) as "does not know this log", without retrying', async () => {
    const w = await startWitness(1, { knows: false })
    const errors: string[] = []
    const client = new WitnessClient({ policy: policy([w], 'quorum w1\n'), onWitnessError: (_u, m) => errors.push(m) })
    const r = await client.cosign(note(CP1), 1, prover(1))
    expect(r.satisfied).toBe(false)
    expect(w.requests).toHaveLength(1)
    expect(errors).toEqual(['witness does not know this log (404: unknown log)'])
  })

  it('sends one request per witness URL, however the URL is spelled in the policy', async () => {
    const w = await startWitness(1)
    const other = await unusedVkey('w9.example')
    const p = policy(
      [
        { ...w, as: 'w1' },
        { name: 'w9.example', vkey: other, url: w.url + '/', as: 'w9' },
      ],
      'group g any w1 w9\nquorum g\n',
    )
    const errors: string[] = []
    const r = await new WitnessClient({ policy: p, onWitnessError: (_u, m) => errors.push(m) }).cosign(note(CP1), 1, prover(1))
    expect(r.cosigned).toEqual(new Set(['w1']))
    expect(w.requests).toHaveLength(1)
    expect(errors).toEqual(['no valid cosignature from w9'])
  })

  it('stops as soon as the quorum is met, cancelling a witness that has not answered', async () => {
    const w = await startWitness(1)
    const hang = await startHanging()
    const p = policy([w, { name: 'hang.example', vkey: await unusedVkey('hang.example'), url: hang.url }], 'group g any w1 hang\nquorum g\n')
    const errors: string[] = []
    // A timeout far beyond the test's: resolving at all means it stopped at quorum.
    const client = new WitnessClient({ policy: p, timeoutMs: 600_000, onWitnessError: (_u, m) => errors.push(m) })
    const r = await client.cosign(note(CP1), 1, prover(1))
    await hang.seen
    expect(r).toMatchObject({ satisfied: true, cosigned: new Set(['w1']) })
    await hang.aborted // the straggler's request was cancelled
    expect(errors).toEqual([])
  })

  it('greedy: waits for every witness until the per-witness timeout, and reports the one that did not answer', async () => {
    const ws = await Promise.all([1, 2].map((n) => startWitness(n)))
    const hang = await startHanging()
    const p = policy([...ws, { name: 'hang.example', vkey: await unusedVkey('hang.example'), url: hang.url }], 'group g any w1 w2 hang\nquorum g\n')
    const errors: [string, string][] = []
    // No wall clock: the round's timeout is a timer the test fires by hand, once both witnesses have
    // answered (counted by a fetch that reads each answer whole).
    const timeouts: number[] = []
    let fire: (() => void) | undefined
    const timer = (ms: number, f: () => void) => (timeouts.push(ms), (fire = f), () => {})
    let answered = 0
    let bothAnswered!: () => void
    const both = new Promise<void>((r) => (bothAnswered = r))
    const counting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init)
      const body = await res.arrayBuffer()
      if (res.status === 200 && ++answered === 2) bothAnswered()
      return new Response(body, { status: res.status, headers: res.headers })
    }
    const client = new WitnessClient({ policy: p, greedy: true, timeoutMs: 300, fetch: counting, timer, onWitnessError: (u, m) => errors.push([u, m]) })
    let settled = false
    const round = client.cosign(note(CP1), 1, prover(1)).finally(() => (settled = true))
    await Promise.race([both, round])
    await new Promise((r) => setImmediate(r))
    expect(settled).toBe(false) // greedy: quorum met, still waiting for the third witness
    expect(timeouts).toEqual([300])
    fire!()
    const r = await round
    expect(r).toMatchObject({ satisfied: true, cosigned: new Set(['w1', 'w2']) })
    expect(verifiedWitnesses(p, r.note)).toEqual(new Set(['w1', 'w2']))
    expect(errors).toEqual([[hang.url + '/', 'no answer within 300 ms']])
  })

  it('a round where no witness answers in time is not satisfied', async () => {
    const hang = await startHanging()
    const p = policy([{ name: 'hang.example', vkey: await unusedVkey('hang.example'), url: hang.url }], 'quorum hang\n')
    const errors: string[] = []
    const r = await new WitnessClient({ policy: p, timeoutMs: 200, onWitnessError: (_u, m) => errors.push(m) }).cosign(note(CP1), 1, prover(1))
    expect(r).toMatchObject({ satisfied: false, note: note(CP1) })
    expect(errors).toEqual(['no answer within 200 ms'])
  })
})

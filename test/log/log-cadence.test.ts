/**
 * Checkpoint cadence (issue 11 item 3, src/log/log.ts): a batch — and so a checkpoint, a witness
 * round and a CAR — is taken when `batchMaxSize` entries wait, else once `batchMaxAgeMs` have passed
 * since the previous batch and at least BATCH_GATHER_MS since its oldest entry. Witness requests never overlap for one log.
 * Time is a fake clock here (vi.useFakeTimers), so nothing depends on the machine's speed.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BATCH_GATHER_MS, type WitnessQuorum, Log } from '../../src/log/log.js'
import { WitnessClient } from '../../src/log/witness-client.js'
import { ed25519Cosigner, ed25519Signer, formatSignatureLine, parseCheckpoint, parseNote, parsePolicy } from '../../src/tlog/index.js'
import { MemoryFiles } from '../helpers/memory-files.js'

const ORIGIN = 'ucanlog/logs/did:key:z6MkCadenceCadenceCadenceCadenceCadenceCadence'
const entry = (i: number) => new TextEncoder().encode(`entry ${i}`)

afterEach(() => {
  vi.useRealTimers()
})

/** A cosigner that takes `ms` (of the fake clock) per round and records when each round started and its size. */
class SlowWitnesses implements WitnessQuorum {
  rounds: { at: number; size: number }[] = []
  constructor(private readonly ms: number) {}
  async cosign(note: string, size: number) {
    this.rounds.push({ at: performance.now(), size })
    await new Promise((r) => setTimeout(r, this.ms))
    return { note, cosigned: new Set<string>(), satisfied: true }
  }
}

describe('checkpoint cadence', () => {
  it('under a steady trickle, checkpoints come at most every batchMaxAgeMs (not once per witness round)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] })
    const w = new SlowWitnesses(10)
    const log = await Log.open({ id: 'cadence', origin: ORIGIN, signer: ed25519Signer(ORIGIN, new Uint8Array(32).fill(3)), files: new MemoryFiles(), witnesses: w, batchMaxSize: 256, batchMaxAgeMs: 100 })
    const done: Promise<unknown>[] = []
    for (let i = 0; i < 400; i++) {
      done.push(log.append(entry(i))) // one entry every 5 ms for 2 s: 200 entries/s
      await vi.advanceTimersByTimeAsync(5)
    }
    await vi.advanceTimersByTimeAsync(1000)
    const results = (await Promise.all(done)) as { published: boolean }[]
    expect(results.every((r) => r.published)).toBe(true)
    // Each round but the first starts at least batchMaxAgeMs after the one before (no batch was full).
    for (let k = 1; k < w.rounds.length; k++) expect(w.rounds[k]!.at - w.rounds[k - 1]!.at).toBeGreaterThanOrEqual(100)
    // 2 s of appends: about 20 checkpoints; one per witness round (10 ms) would be ~200.
    expect(w.rounds.length).toBeLessThanOrEqual(2000 / 100 + 2)
    expect(w.rounds.at(-1)!.size).toBe(400)
    await log.close()
  })

  it('a full batch is taken at once (the size trigger), and a lone entry waits at most batchMaxAgeMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] })
    const w = new SlowWitnesses(10)
    const log = await Log.open({ id: 'cadence', origin: ORIGIN, signer: ed25519Signer(ORIGIN, new Uint8Array(32).fill(3)), files: new MemoryFiles(), witnesses: w, batchMaxSize: 50, batchMaxAgeMs: 1000 })
    let settled = 0
    const full = Array.from({ length: 150 }, (_, i) => log.append(entry(i)).then((r) => (settled++, r)))
    await vi.advanceTimersByTimeAsync(50) // three full batches, three 10 ms rounds, no age wait
    expect(settled).toBe(150)
    expect(w.rounds.map((r) => r.size)).toEqual([50, 100, 150])
    await Promise.all(full)
    // A lone entry soon after a batch: the age trigger holds it to batchMaxAgeMs after that batch.
    const lastBatch = w.rounds.at(-1)!.at // when the third batch was taken (integration takes no fake time)
    const t0 = performance.now()
    let lone = false
    const p = log.append(entry(150)).then(() => (lone = true))
    await vi.advanceTimersByTimeAsync(lastBatch + 1000 - t0 - 1)
    expect(lone).toBe(false) // the minimum interval: not before batchMaxAgeMs after the previous batch
    await vi.advanceTimersByTimeAsync(11 + 1) // then one 10 ms round
    expect(lone).toBe(true)
    await p
    expect(w.rounds.at(-1)!.at - lastBatch).toBe(1000)
    expect(w.rounds.at(-1)!.at - t0).toBeLessThanOrEqual(1000) // an entry waits at most batchMaxAgeMs
    await log.close()
  })

  it('on a log idle for batchMaxAgeMs, a lone entry waits only the gather, and entries appended together share its batch', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] })
    const w = new SlowWitnesses(10)
    const log = await Log.open({ id: 'cadence', origin: ORIGIN, signer: ed25519Signer(ORIGIN, new Uint8Array(32).fill(3)), files: new MemoryFiles(), witnesses: w, batchMaxSize: 256, batchMaxAgeMs: 1000 })
    for (const round of [0, 1]) {
      await vi.advanceTimersByTimeAsync(1000) // idle for batchMaxAgeMs
      const t0 = performance.now()
      // Sixteen entries in the same few turns (as one request's appends are sequenced), then one 3 ms later.
      const together = Array.from({ length: 16 }, (_, i) => log.append(entry(round * 17 + i)))
      await vi.advanceTimersByTimeAsync(3)
      together.push(log.append(entry(round * 17 + 16)))
      let settled = false
      void Promise.all(together).then(() => (settled = true))
      await vi.advanceTimersByTimeAsync(BATCH_GATHER_MS - 3 - 1)
      expect(settled).toBe(false) // the gather: not before BATCH_GATHER_MS after the oldest entry
      await vi.advanceTimersByTimeAsync(1 + 10) // then one 10 ms round
      expect(settled).toBe(true)
      expect(w.rounds.at(-1)!.at - t0).toBe(BATCH_GATHER_MS) // not batchMaxAgeMs
      expect(w.rounds.at(-1)!.size).toBe((round + 1) * 17) // all seventeen in one checkpoint
    }
    expect(w.rounds).toHaveLength(2)
    await log.close()
  })
})

describe('witness requests never overlap for one log', () => {
  it('three logs appending at once through the witness client: at most one request in flight per witness and origin', async () => {
    const k1 = ed25519Cosigner('w1.example', new Uint8Array(32).fill(41))
    const k2 = ed25519Cosigner('w2.example', new Uint8Array(32).fill(42))
    const policy = parsePolicy(`witness w1 ${k1.vkey} https://w1.example/\nwitness w2 ${k2.vkey} https://w2.example/\nquorum w1\n`)
    const inFlight = new Map<string, number>()
    const most = new Map<string, number>()
    let total = 0
    let mostTotal = 0
    /** Two witnesses; w2 is slow, so it is the straggler cancelled once w1's cosignature meets the quorum. */
    const fetch = (async (input: URL | string, init?: RequestInit) => {
      const url = String(input)
      const key = url.includes('w1') ? k1 : k2
      const body = String(init!.body)
      const note = body.slice(body.indexOf('\n\n') + 2)
      const { origin } = parseCheckpoint(parseNote(note).text)
      const id = `${url} ${origin}`
      inFlight.set(id, (inFlight.get(id) ?? 0) + 1)
      most.set(id, Math.max(most.get(id) ?? 0, inFlight.get(id)!))
      mostTotal = Math.max(mostTotal, ++total)
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, key === k1 ? 2 : 20)
          init!.signal?.addEventListener('abort', () => (clearTimeout(t), reject(new Error('aborted'))))
        })
        return new Response(formatSignatureLine(key.cosign(parseNote(note).text, 1_700_000_000)), { status: 200 })
      } finally {
        inFlight.set(id, inFlight.get(id)! - 1)
        total--
      }
    }) as typeof globalThis.fetch
    const logs = await Promise.all(
      [1, 2, 3].map((k) => {
        const origin = `${ORIGIN}${k}`
        return Log.open({ id: `l${k}`, origin, signer: ed25519Signer(origin, new Uint8Array(32).fill(k)), files: new MemoryFiles(), witnesses: new WitnessClient({ policy, fetch }), batchMaxSize: 8, batchMaxAgeMs: 1 })
      }),
    )
    const results = await Promise.all(logs.flatMap((log) => Array.from({ length: 80 }, (_, i) => log.append(entry(i)))))
    expect(results.every((r) => r.published)).toBe(true)
    expect(most.size).toBeGreaterThanOrEqual(3) // every log asked w1
    for (const [id, n] of most) expect(n, id).toBe(1)
    expect(mostTotal).toBeGreaterThan(1) // while different logs' requests did overlap
    for (const log of logs) await log.close()
  })
})

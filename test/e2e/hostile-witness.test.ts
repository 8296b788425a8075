/**
 * Hostile and broken witnesses against the real service (issue 15 item 3): a witness policy naming
 * the real bundled witness, one honest fake and a hostile fake per fault, all on loopback HTTP:
 *
 * - `endless`: 200 and a body that never ends (the client reads at most
 *   MAX_WITNESS_RESPONSE_BYTES and gives up with WitnessResponseTooLarge);
 * - `late`: a valid cosignature, sent after the witness timeout (`witnessTimeoutMs`);
 * - `reset`: the connection reset as soon as the request arrives;
 * - `wrong-key`, `other-checkpoint`, `other-origin`, `garbage`, `empty`: forged 200 answers;
 * - `flaky`: garbage for the first checkpoints, then honest (the recovery is logged).
 *
 * The quorum is "bundled and honest"; the service runs greedy (every witness is waited for up to the
 * timeout), so every hostile witness is asked in every round. Promises checked: every append is
 * published, its checkpoint carries exactly the honest cosignatures, each failing witness is logged
 * once with its name per failure episode (not once per checkpoint), its recovery once, and every
 * failure counts in `ucanlog_witness_failures_total{witness}`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Writable } from 'node:stream'
import type * as API from '@ucanto/interface'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_WITNESS_RESPONSE_BYTES } from '../../src/log/witness-client.js'
import { type Cosigner, ed25519Cosigner, formatCheckpoint, formatSignatureLine, parseCheckpoint, parseNote, parsePolicy, verifiedWitnesses } from '../../src/tlog/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { closeServer, listenOnLoopback } from '../helpers/loopback.js'
import { startTestService } from './helpers.js'

const TIMEOUT_MS = 3000
const text = (s: string) => new TextEncoder().encode(s)
const seed = (n: number) => new Uint8Array(32).fill(n)

type Kind = 'good' | 'endless' | 'late' | 'reset' | 'wrong-key' | 'other-checkpoint' | 'other-origin' | 'garbage' | 'empty' | 'flaky'
const HOSTILE: Kind[] = ['endless', 'late', 'reset', 'wrong-key', 'other-checkpoint', 'other-origin', 'garbage', 'empty']

interface Fake {
  name: Kind
  key: Cosigner
  url: string
  honest: boolean // for `flaky`: answers like `good` once set
  close(): Promise<void>
}

const now = () => Math.floor(Date.now() / 1000)

/** The answer of fake `f` to an add-checkpoint request whose checkpoint text is `cp`. */
function answer(f: Fake, cp: string, req: IncomingMessage, res: ServerResponse): void {
  const sign = (t: string, key = f.key) => formatSignatureLine(key.cosign(t, now()))
  const ok = (body: string) => void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(body)
  switch (f.name === 'flaky' ? (f.honest ? 'good' : 'garbage') : f.name) {
    case 'good':
      return ok(sign(cp))
    case 'endless': {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
      const chunk = Buffer.alloc(64 * 1024, 'a')
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump)
      }
      res.on('error', () => {})
      return pump()
    }
    case 'late': {
      const t = setTimeout(() => !res.destroyed && ok(sign(cp)), TIMEOUT_MS + 2000)
      res.on('close', () => clearTimeout(t))
      return
    }
    case 'reset':
      return void req.socket.resetAndDestroy()
    case 'wrong-key':
      return ok(sign(cp, ed25519Cosigner(f.key.name, seed(200))))
    case 'other-checkpoint': {
      const c = parseCheckpoint(cp)
      return ok(sign(formatCheckpoint({ ...c, size: c.size + 1 })))
    }
    case 'other-origin':
      return ok(sign(cp.replace(/^[^\n]*/, 'ucanlog/logs/another')))
    case 'garbage':
      return ok('this is not a signature line\n')
    case 'empty':
      return ok('')
  }
}

async function startFake(name: Kind, i: number): Promise<Fake> {
  const f: Fake = { name, key: ed25519Cosigner(`${name}.hostile.test`, seed(30 + i)), url: '', honest: false, close: async () => {} }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => answer(f, parseNote(body.slice(body.indexOf('\n\n') + 2)).text, req, res))
  })
  f.url = await listenOnLoopback(server)
  f.close = () => closeServer(server)
  return f
}

/** The service's log lines (pino JSON), as a test reads them. */
const lines: Record<string, unknown>[] = []
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
    done()
  },
})

let fakes: Fake[]
let svc: Awaited<ReturnType<typeof startTestService>>
let dir: string

beforeAll(async () => {
  const { mkdtemp, writeFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  fakes = await Promise.all((['good', 'flaky', ...HOSTILE] as Kind[]).map(startFake))
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-hostile-'))
  const policy = join(dir, 'policy.txt')
  await writeFile(
    policy,
    'witness bundled @bundled-vkey @bundled-url\n' + fakes.map((f) => `witness ${f.name} ${f.key.vkey} ${f.url}\n`).join('') + 'group honest all bundled good\nquorum honest\n',
  )
  svc = await startTestService({ witnessPolicyFile: policy, witnessTimeoutMs: TIMEOUT_MS, witnessGreedy: true }, {}, pino({ level: 'info' }, sink))
}, 30_000)

afterAll(async () => {
  await svc?.stop()
  for (const f of fakes ?? []) await f.close()
  const { rm } = await import('node:fs/promises')
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('hostile and broken witnesses, real service', () => {
  it('never counts them, logs each once per failure episode with its name, and keeps publishing with the honest ones', async () => {
    const policy = parsePolicy(svc.policy)
    const space = await generateKey()
    const agent = await generateKey()
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
    const append = async (entry: Uint8Array): Promise<AppendResult> => {
      const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry, spaceToAgent })
      const out = (await conn.execute(inv))[0]!.out as { ok?: AppendResult; error?: unknown }
      expect(out.error).toBeUndefined()
      return out.ok!
    }
    const origin = `ucanlog/logs/${space.did()}`
    const ofLog = () => lines.filter((l) => l.origin === origin)

    // Three checkpoints, one after the other (each append waits for its own): every one published
    // with exactly the honest cosignatures (bundled and good), nothing from a hostile witness.
    for (let i = 0; i < 3; i++) {
      const r = await append(text(`entry ${i}`))
      expect(r).toMatchObject({ index: i, published: true })
      expect(verifiedWitnesses(policy, r.checkpoint)).toEqual(new Set(['bundled', 'good']))
      // the note: the checkpoint text, a blank line, the log's signature and the two honest cosignatures only
      expect(r.checkpoint.split('\n\n')[1]!.trim().split('\n')).toHaveLength(3)
    }

    // Each hostile witness (and flaky, failing so far) logged once, with its name and a named reason.
    const failing = ofLog().filter((l) => l.msg === 'witness failing')
    expect(failing.map((l) => l.witness).sort()).toEqual([...HOSTILE, 'flaky'].sort())
    const reason = (name: string) => String(failing.find((l) => l.witness === name)!.message)
    expect(reason('endless')).toMatch(new RegExp(`WitnessResponseTooLarge: .*more than ${MAX_WITNESS_RESPONSE_BYTES} bytes`))
    expect(reason('late')).toMatch(`no answer within ${TIMEOUT_MS} ms`)
    expect(reason('reset')).toMatch(/^fetch failed: (ECONNRESET|UND_ERR_SOCKET)/)
    for (const n of ['wrong-key', 'other-checkpoint', 'other-origin']) expect(reason(n)).toMatch(`no valid cosignature from ${n}`)
    expect(reason('garbage')).toMatch(/malformed|signature line/i)
    expect(reason('empty')).toMatch(/newline|empty/)
    for (const l of failing) expect(l.level).toBe(40) // warn

    // flaky turns honest: the next checkpoint carries its cosignature, and its recovery is logged once.
    fakes.find((f) => f.name === 'flaky')!.honest = true
    for (let i = 3; i < 5; i++) {
      const r = await append(text(`entry ${i}`))
      expect(r).toMatchObject({ index: i, published: true })
      expect(verifiedWitnesses(policy, r.checkpoint)).toEqual(new Set(['bundled', 'good', 'flaky']))
    }
    expect(ofLog().filter((l) => l.msg === 'witness recovered').map((l) => l.witness)).toEqual(['flaky'])
    // Still one failure line per hostile witness after five checkpoints.
    expect(ofLog().filter((l) => l.msg === 'witness failing').map((l) => l.witness).sort()).toEqual([...HOSTILE, 'flaky'].sort())

    // Every failure is counted, per witness: five rounds for the hostile ones, three for flaky.
    const metrics = await (await fetch(`${svc.url}/metrics`)).text()
    const count = (name: string) => Number(new RegExp(`^ucanlog_witness_failures_total\\{witness="${name}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0)
    for (const n of HOSTILE) expect(count(n)).toBeGreaterThanOrEqual(5)
    expect(count('flaky')).toBeGreaterThanOrEqual(3)
    expect(count('good')).toBe(0)
  }, 120_000)
})

/**
 * A 2-of-3 witness policy end to end on loopback, with real components only: the service
 * (`startService`, the real log engine and witness client) and three standalone witnesses, each a
 * `ucanlog witness serve` process with its own key and SQLite state, configured by their operators
 * with `ucanlog witness pull-logs --source <service>/logs.txt`.
 *
 * 1. A new log: no witness knows it, so the first append answers `published: false`; once the
 *    operators pull the service's log list, the retry publishes it.
 * 2. One witness down: checkpoints are published with the other two cosignatures.
 * 3. Two down: nothing is published; appends answer their index and `published: false`.
 * 4. One comes back (same key and state, at the same URL): the checkpoint publishes, and every entry is there.
 *
 * w2 is reached through a loopback TCP forwarder the test holds for its whole run (the URL in the
 * policy), so w2 can come back on a fresh port (0) without the test reusing a port another process
 * may have taken meanwhile; while w2 is down the forwarder closes each connection it accepts.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type AddressInfo, type Server, type Socket, connect as tcpConnect, createServer } from 'node:net'
import { promisify } from 'node:util'
import type * as API from '@ucanto/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkAppendResult } from '../../src/client/receipt.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { encodeBase64, parsePolicy, verifiedWitnesses } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey, readInvocation } from '../../src/ucan/index.js'
import { parseLogList } from '../../witness/index.js'
import { serveWitness, stop } from '../witness/process.js'
import { REPO, startTestService } from './helpers.js'

const exec = promisify(execFile)
const witnessCli = (...args: string[]) => exec(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), 'witness', ...args], { cwd: REPO })
const text = (s: string) => new TextEncoder().encode(s)

interface W {
  name: string
  key: string
  db: string
  url: string
  vkey: string
  child: ChildProcess | undefined
}

let dir: string
const witnesses: W[] = []
let svc: Awaited<ReturnType<typeof startTestService>>

/**
 * A TCP forwarder on 127.0.0.1 (port 0) to 127.0.0.1:`port` (settable; 0 = nothing there): a stable
 * address for a witness that restarts on a new port. A connection upstream that fails, or ends,
 * closes the client's side too.
 */
async function forwarder(): Promise<{ url: string; set(port: number): void; close(): Promise<void> }> {
  let target = 0
  const open = new Set<Socket>()
  const server: Server = createServer((client) => {
    if (target === 0) return void client.destroy()
    open.add(client)
    client.on('close', () => open.delete(client))
    const upstream = tcpConnect({ host: '127.0.0.1', port: target })
    open.add(upstream)
    upstream.on('close', () => open.delete(upstream))
    client.pipe(upstream).on('error', () => client.destroy())
    upstream.pipe(client).on('error', () => upstream.destroy())
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    set: (port) => void (target = port),
    close: () =>
      new Promise<void>((ok) => {
        for (const s of open) s.destroy()
        server.close(() => ok())
      }),
  }
}
let w2Proxy: Awaited<ReturnType<typeof forwarder>>

async function start(w: W, listen: string): Promise<void> {
  const s = await serveWitness(['--name', w.name, '--key', w.key, '--db', w.db, '--listen', listen])
  Object.assign(w, { url: s.url, vkey: s.vkey, child: s.child })
}

async function down(w: W): Promise<void> {
  expect(await stop(w.child!)).toBe(0)
  w.child = undefined
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-quorum-'))
  for (const n of [1, 2, 3]) {
    const w: W = { name: `w${n}.ucanlog.test`, key: join(dir, `w${n}.key`), db: join(dir, `w${n}.db`), url: '', vkey: '', child: undefined }
    await start(w, '127.0.0.1:0')
    witnesses.push(w)
  }
  // The service reaches w2 at the forwarder's stable URL.
  w2Proxy = await forwarder()
  w2Proxy.set(Number(new URL(witnesses[1]!.url).port))
  const urlOf = (i: number) => (i === 1 ? w2Proxy.url : witnesses[i]!.url)
  const policy = join(dir, 'policy.txt')
  await writeFile(
    policy,
    witnesses.map((w, i) => `witness w${i + 1} ${w.vkey} ${urlOf(i)}\n`).join('') + 'group two-of-three 2 w1 w2 w3\nquorum two-of-three\n',
  )
  svc = await startTestService({ witnessPolicyFile: policy, witnessTimeoutMs: 5000 })
})

afterAll(async () => {
  await svc?.stop()
  for (const w of witnesses) if (w.child) await stop(w.child)
  await w2Proxy?.close()
  await rm(dir, { recursive: true, force: true })
})

/** `ucanlog witness list-logs` of a witness, parsed. */
async function logsOf(w: W): Promise<{ origin: string; size: number; keys: string[] }[]> {
  const out = (await witnessCli('list-logs', '--db', w.db)).stdout
  return out.trim().split('\n').map((l) => JSON.parse(l) as { origin: string; size: number; keys: string[] })
}

async function head(space: string): Promise<{ treeSize: number; integratedSize: number; checkpoint: string } | undefined> {
  const res = await fetch(`${svc.url}/logs/${space}/head`)
  return res.ok ? ((await res.json()) as { treeSize: number; integratedSize: number; checkpoint: string }) : undefined
}

/** Polls /head (every 100 ms) until the published tree has `size` entries; fails after a generous 30 s. */
async function publishedSize(space: string, size: number): Promise<{ treeSize: number; checkpoint: string }> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const h = await head(space)
    if (h && h.treeSize >= size) return h
    if (Date.now() > deadline) throw new Error(`the published tree did not reach ${size} entries within 30 s (head: ${JSON.stringify(h)})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('2-of-3 witness policy, three standalone witnesses on loopback', () => {
  it('publishes with two of three, stops publishing with one, and publishes everything once a witness returns', async () => {
    const policy = parsePolicy(svc.policy)
    const space = await generateKey()
    const agent = await generateKey()
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const conn = connect(`${svc.url}/rpc`, svc.did as API.DID)
    const sent: Uint8Array[] = []
    const append = async (entry: Uint8Array): Promise<AppendResult> => {
      sent.push(entry)
      const inv = await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry, spaceToAgent })
      const out = (await conn.execute(inv))[0]!.out as { ok?: AppendResult; error?: unknown }
      expect(out.error).toBeUndefined()
      return out.ok!
    }
    const origin = `ucanlog/logs/${space.did()}`

    // 1. A log no witness knows yet: sequenced, durable, not published.
    const first = await append(text('entry 0'))
    expect(first).toMatchObject({ index: 0, published: false, checkpoint: '', inclusionProof: [] })
    expect(await head(space.did())).toBeUndefined()

    // The operators pull the service's log list (add-only) while their witnesses run.
    // The list has the service's revocation log and this space's log.
    const listed = parseLogList(await (await fetch(`${svc.url}/logs.txt`)).text())
    expect(listed).toMatchObject({ logs: [{ origin: 'ucanlog/revocations' }, { origin }], skipped: [] })
    const logVkey = listed.logs[1]!.vkey
    expect(logVkey.startsWith(`${origin}+`)).toBe(true)
    for (const w of witnesses) {
      expect(await witnessCli('pull-logs', '--db', w.db, '--source', `${svc.url}/logs.txt`)).toMatchObject({ stdout: '', stderr: '' })
      expect(await logsOf(w)).toEqual([
        expect.objectContaining({ origin, keys: [logVkey] }), // ordered by origin; the engine may already have published
        expect.objectContaining({ origin: 'ucanlog/revocations', size: 0, keys: [listed.logs[0]!.vkey] }),
      ])
    }
    // The engine's retry publishes it.
    const h1 = await publishedSize(space.did(), 1)
    expect(((await (await fetch(`${svc.url}/logs/${space.did()}/head`)).json()) as { vkey: string }).vkey).toBe(logVkey)
    expect(verifiedWitnesses(policy, h1.checkpoint).size).toBeGreaterThanOrEqual(2)

    // 2. w3 down: every append is published with the cosignatures of w1 and w2.
    await down(witnesses[2]!)
    const batch = await Promise.all(Array.from({ length: 10 }, (_, i) => append(text(`entry ${i + 1}`))))
    for (const [i, r] of batch.entries()) {
      expect(r.published).toBe(true)
      checkAppendResult(r, text(`entry ${i + 1}`))
      expect(verifiedWitnesses(policy, r.checkpoint)).toEqual(new Set(['w1', 'w2']))
    }
    expect(new Set(batch.map((r) => r.index))).toEqual(new Set(Array.from({ length: 10 }, (_, i) => i + 1)))
    const h2 = await head(space.did())
    expect(h2).toMatchObject({ treeSize: 11, integratedSize: 11 })

    // 3. w2 down too: appends are sequenced and answer published: false; nothing is published.
    const w2Vkey = witnesses[1]!.vkey
    await down(witnesses[1]!)
    w2Proxy.set(0) // nothing listens for w2 now: the forwarder closes what it accepts
    const stalled = await Promise.all(Array.from({ length: 5 }, (_, i) => append(text(`entry ${i + 11}`))))
    for (const r of stalled) expect(r).toMatchObject({ published: false, checkpoint: '', inclusionProof: [] })
    expect(stalled.map((r) => r.index).sort((a, b) => a - b)).toEqual([11, 12, 13, 14, 15])
    expect(await head(space.did())).toMatchObject({ treeSize: 11, integratedSize: 16 })

    // 4. w2 comes back at the URL in the policy (on a fresh port behind the forwarder), with its key
    // and state: the next retry publishes size 16.
    await start(witnesses[1]!, '127.0.0.1:0')
    expect(witnesses[1]!.vkey).toBe(w2Vkey)
    w2Proxy.set(Number(new URL(witnesses[1]!.url).port))
    const h4 = await publishedSize(space.did(), 16)
    expect(h4.treeSize).toBe(16)
    expect(verifiedWitnesses(policy, h4.checkpoint)).toEqual(new Set(['w1', 'w2']))

    // No entry lost: the log holds exactly what was appended, in index order.
    const reader = await generateKey()
    const [rr] = await conn.execute(readInvocation({ issuer: reader, service: svc.did as API.DID, space: space.did(), offset: 0, limit: 100 }))
    const entries = (rr!.out as { ok: { entries: string[]; total: number } }).ok
    expect(entries.total).toBe(16)
    const byIndex = new Map<number, Uint8Array>([[0, sent[0]!], ...batch.map((r, i) => [r.index, sent[1 + i]!] as const), ...stalled.map((r, i) => [r.index, sent[11 + i]!] as const)])
    expect(entries.entries).toEqual(Array.from({ length: 16 }, (_, i) => encodeBase64(byIndex.get(i)!)))

    // Each witness's state: w1 and w2 cosigned size 16; w3 stopped at what it saw before going down.
    const size = async (w: W) => (await logsOf(w)).find((l) => l.origin === origin)!.size
    expect(await size(witnesses[0]!)).toBe(16)
    expect(await size(witnesses[1]!)).toBe(16)
    expect(await size(witnesses[2]!)).toBeLessThanOrEqual(1)
  })
})

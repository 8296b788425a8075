/**
 * A paused process (issue 15 item 5): the real `ucanlog serve` (the built CLI) is stopped with
 * SIGSTOP for longer than the witness timeout (--witness-timeout) and than the client's request
 * timeout, while appends are in flight; the clients give up, the service is resumed with SIGCONT,
 * and the clients resend the *same* signed invocations (what src/client/append-batch.ts does for
 * unanswered ones). No entry is appended twice, the log does not fork (a full audit is clean and
 * every checkpoint a client was shown is consistent with the final one), every acknowledged entry
 * is in the log exactly once, and a resent invocation gets the original result.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { checkTree, decodeBase64, entryBundlePath, parseEntryBundle, parsePolicy, proveTree, tileHashReader, tilePath } from '../../src/tlog/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { type Out, encodeRequest, outOf, sendRaw } from '../ucan/helpers.js'
import { appendFixture, counts, finished, numberedLines, readLog, runUcanlog, spawnUcanlog } from '../cli/append-helpers.js'
import { REPO, spawnServe } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)
const WITNESS_TIMEOUT_MS = 300
const CLIENT_TIMEOUT_MS = 1000
const PAUSE_MS = 3000 // > both timeouts

/** Sends one invocation and gives up after `timeoutMs` (the client's request timeout). */
async function callWithin(url: string, inv: API.Invocation, timeoutMs: number): Promise<Out> {
  const target = {
    async request(req: { headers: Record<string, string>; body: Uint8Array }) {
      const res = await fetch(`${url}/rpc`, { method: 'POST', headers: req.headers, body: req.body, signal: AbortSignal.timeout(timeoutMs) })
      return { status: res.status, headers: Object.fromEntries(res.headers), body: new Uint8Array(await res.arrayBuffer()) }
    },
  }
  const [receipt] = await sendRaw(target, await encodeRequest([inv]))
  return outOf(receipt!)
}

describe('SIGSTOP past the witness and client timeouts, then SIGCONT', () => {
  const children: ChildProcess[] = []
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL')
  })

  it('the same invocations resent after SIGCONT get their original result; nothing twice, no fork, audit clean', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-sigstop-'))
    try {
      const svc = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt'), '--witness-timeout', String(WITNESS_TIMEOUT_MS)])
      children.push(svc.child)
      const [space, agent] = [await generateKey(), await generateKey()]
      const spaceToAgent = await delegateSpaceToAgent({ space, agent })
      const invoke = async (label: string) =>
        (await appendInvocation({ agent, service: svc.did as API.DID, space: space.did(), entry: text(label), spaceToAgent })).delegate()

      // Before the pause: 4 entries acknowledged.
      const before = await Promise.all(Array.from({ length: 4 }, (_, i) => invoke(`before ${i}`)))
      const beforeOut = await Promise.all(before.map((inv) => callWithin(svc.url, inv, 30_000)))
      for (const o of beforeOut) expect(o.ok).toBeDefined()

      // Paused with 8 appends in flight: every client times out (the kernel still accepts the connections).
      const paused = await Promise.all(Array.from({ length: 8 }, (_, i) => invoke(`paused ${i}`)))
      svc.child.kill('SIGSTOP')
      const timedOut = await Promise.allSettled(paused.map((inv) => callWithin(svc.url, inv, CLIENT_TIMEOUT_MS)))
      for (const t of timedOut) expect(t.status).toBe('rejected')
      await new Promise((r) => setTimeout(r, PAUSE_MS - CLIENT_TIMEOUT_MS))
      svc.child.kill('SIGCONT')

      // The clients resend the very same invocations: each is answered, twice the same way.
      const first = await Promise.all(paused.map((inv) => callWithin(svc.url, inv, 30_000)))
      const again = await Promise.all(paused.map((inv) => callWithin(svc.url, inv, 30_000)))
      for (const [k, o] of first.entries()) {
        expect(o.ok, JSON.stringify(o)).toBeDefined()
        expect(again[k]).toEqual(o)
      }
      // The earlier answers too.
      for (const [k, inv] of before.entries()) expect(await callWithin(svc.url, inv, 30_000)).toEqual(beforeOut[k])

      // Every acknowledged entry exactly once, at its index; nothing else in the log.
      const acked = [...before.map((_, i) => ({ entry: `before ${i}`, r: beforeOut[i]!.ok as unknown as AppendResult })), ...paused.map((_, i) => ({ entry: `paused ${i}`, r: first[i]!.ok as unknown as AppendResult }))]
      const indexes = acked.map((a) => a.r.index)
      expect(new Set(indexes).size).toBe(acked.length)

      // A later append still publishes (witness rounds resumed after the pause).
      const after = await callWithin(svc.url, await invoke('after'), 30_000)
      expect((after.ok as unknown as AppendResult).index).toBe(acked.length)

      const base = `${svc.url}/logs/${space.did()}/`
      const fetchFile = async (p: string) => {
        const res = await fetch(base + p)
        return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
      }
      const head = (await (await fetch(base + 'head')).json()) as { vkey: string; origin: string }
      const info = (await (await fetch(`${svc.url}/info`)).json()) as { witnessPolicy: string }
      const report = await auditLog({ fetchFile, origin: head.origin, logVkey: head.vkey, policy: parsePolicy(info.witnessPolicy) })
      expect(report.size).toBe(acked.length + 1)
      const bundle = parseEntryBundle((await fetchFile(entryBundlePath(0, report.size)))!).map((b) => new TextDecoder().decode(b))
      expect(bundle.slice(0, acked.length).sort()).toEqual(acked.map((a) => a.entry).sort())
      for (const a of acked) expect(bundle[a.r.index]).toBe(a.entry)

      // Every checkpoint a client was shown is consistent with the final tree (no fork).
      const reader = tileHashReader(report.size, report.rootHash, {
        readTiles: (tiles) => Promise.all(tiles.map(async (t) => (await fetchFile(tilePath(t)))!)),
      })
      for (const { r } of acked) checkTree(await proveTree(report.size, r.treeSize, reader), report.size, report.rootHash, r.treeSize, decodeBase64(r.rootHash))
      svc.child.kill('SIGKILL')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }, 60_000)

  it('`ucanlog append --journal` killed while the service is stopped, rerun after SIGCONT with the same journal: every line exactly once, unanswered invocations resent', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ucanlog-sigstop-cli-'))
    const fx = await appendFixture()
    try {
      const svc = await spawnServe(['--data', dataDir, '--port', '0', '--log-level', 'warn', '--witness-policy', join(REPO, 'witness_policy.txt'), '--witness-timeout', String(WITNESS_TIMEOUT_MS)])
      children.push(svc.child)
      const { lines, stdin } = numberedLines('sigstop', 200)
      const journal = join(fx.dir, 'run.journal')
      const child = spawnUcanlog(['append', ...fx.args(svc.url), '--journal', journal, '--concurrency', '4'])
      const done = finished(child)
      child.stdin!.on('error', () => {})
      child.stdin!.end(Buffer.from(stdin))
      const outcomes = async () => (await readFile(journal, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('"outcome"')).length
      while ((await outcomes()) < 20) await new Promise((r) => setTimeout(r, 20))
      svc.child.kill('SIGSTOP')
      // The client waits on the stopped service; past its timeout it is given up on (killed).
      await new Promise((r) => setTimeout(r, CLIENT_TIMEOUT_MS))
      child.kill('SIGKILL')
      const first = await done
      expect(first.signal).toBe('SIGKILL')
      const answeredBefore = await outcomes()
      expect(answeredBefore).toBeLessThan(200)
      await new Promise((r) => setTimeout(r, PAUSE_MS - CLIENT_TIMEOUT_MS))
      svc.child.kill('SIGCONT')

      const again = await runUcanlog(['append', ...fx.args(svc.url), '--journal', journal, '--json'], stdin)
      expect(again.code, again.stderr).toBe(0)
      const out = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      const summary = out.at(-1) as { summary: { appended: number; alreadyAppended: number; refused: unknown[] } }
      expect(summary.summary.appended + summary.summary.alreadyAppended).toBe(200)
      expect(summary.summary.alreadyAppended).toBe(answeredBefore)
      expect(summary.summary.refused).toEqual([])
      // The invocations in flight at the stop were resent as the same signed bytes (answered by the replay guard or run now).
      expect(out.filter((x) => x.resent === true).length).toBeGreaterThan(0)
      const stored = counts(await readLog(svc.url, svc.did, fx.space.did()))
      expect([...stored.entries()].filter(([, k]) => k !== 1)).toEqual([])
      expect([...stored.keys()].sort()).toEqual([...lines].sort())
      svc.child.kill('SIGKILL')
    } finally {
      await rm(dataDir, { recursive: true, force: true })
      await rm(fx.dir, { recursive: true, force: true })
    }
  }, 90_000)
})

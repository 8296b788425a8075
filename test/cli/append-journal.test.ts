/**
 * Issue 12 item 3, exactly-once bulk append: `ucanlog append --journal FILE` against a real
 * service on loopback, with faults injected by a proxy in front of it (answers dropped after the
 * service ran the append, requests refused; receipts forged with the service key) and with the CLI
 * interrupted by SIGINT. After every
 * rerun with the same journal, the log is read back through `tlog/read` and every input line is
 * in it exactly once.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ed25519Signer, parseNote, signNote } from '../../src/tlog/index.js'
import { startForgingProxy } from '../helpers/forging-proxy.js'
import { type AppendFixture, appendFixture, counts, finished, numberedLines, readLog, runUcanlog, serviceForFile, spawnUcanlog } from './append-helpers.js'
import { startFaultProxy } from './fault-proxy.js'

const svc = serviceForFile()
let fx: AppendFixture

const log = () => readLog(svc().url, svc().did, fx.space.did())

/** Every line of `lines` is in the log exactly once, and nothing else is. */
async function expectExactlyOnce(lines: string[]): Promise<void> {
  const stored = await log()
  const c = counts(stored)
  expect([...c.entries()].filter(([, k]) => k !== 1)).toEqual([])
  expect([...c.keys()].sort()).toEqual([...lines].sort())
}

describe('ucanlog append --journal: exactly once', () => {
  it('answers dropped after the service ran them (every 3rd): the same invocation is resent, each entry lands once', async () => {
    fx = await appendFixture()
    const proxy = await startFaultProxy(svc().url, (n) => (n % 3 === 0 ? 'drop-answer' : 'pass'))
    try {
      const { lines, stdin } = numberedLines('drop3', 30)
      const journal = join(fx.dir, 'run.journal')
      const r = await runUcanlog(['append', ...fx.args(proxy.url), '--journal', journal, '--concurrency', '4'], stdin)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/^appended 30 entries/)
      expect(proxy.requests()).toBeGreaterThan(30) // some were resent
      await expectExactlyOnce(lines)
    } finally {
      await proxy.close()
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('partial failure (the service unreachable mid-run: exit 4) + rerun with the same journal: no duplicate, no loss', async () => {
    fx = await appendFixture()
    // From the 11th request on, the service runs every append but no answer comes back.
    const proxy = await startFaultProxy(svc().url, (n) => (n > 10 ? 'drop-answer' : 'pass'))
    try {
      const { lines, stdin } = numberedLines('partial', 40)
      const journal = join(fx.dir, 'run.journal')
      const first = await runUcanlog(['append', ...fx.args(proxy.url), '--journal', journal, '--concurrency', '3'], stdin)
      expect(first.code, first.stderr).toBe(4)
      expect(first.stderr).toMatch(/^ucanlog: ServiceUnreachable: /m)
      expect(first.stderr).toMatch(/rerun with the same --journal/)
      const before = (await log()).length
      expect(before).toBeGreaterThan(10) // the dropped answers' appends did happen
      expect(before).toBeLessThan(40)

      const answered = (await readFile(journal, 'utf8')).split('\n').filter((l) => l.includes('"type":"outcome"')).length
      expect(answered).toBeGreaterThan(0)
      const again = await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal, '--json'], stdin)
      expect(again.code, again.stderr).toBe(0)
      const out = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      const summary = out.at(-1) as { summary: { appended: number; alreadyAppended: number; refused: unknown[] } }
      expect(summary.summary.appended + summary.summary.alreadyAppended).toBe(40)
      // What the first run recorded as answered is exactly what the rerun does not send again.
      expect(summary.summary.alreadyAppended).toBe(answered)
      // The appends whose answers were dropped were resent as the same invocations (answered by the replay guard).
      expect(out.filter((x) => x.resent === true).length).toBeGreaterThan(0)
      expect(summary.summary.refused).toEqual([])
      expect(out.slice(0, -1)).toHaveLength(40)
      await expectExactlyOnce(lines)

      // A third run has nothing left to send.
      const third = await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal], stdin)
      expect(third.code, third.stderr).toBe(0)
      expect(third.stdout).toMatch(/already appended 40/)
      await expectExactlyOnce(lines)
    } finally {
      await proxy.close()
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('Ctrl-C (SIGINT) mid-run, then a rerun with the same journal: every line exactly once', async () => {
    fx = await appendFixture()
    try {
      const { lines, stdin } = numberedLines('sigint', 300)
      const journal = join(fx.dir, 'run.journal')
      const child = spawnUcanlog(['append', ...fx.args(svc().url), '--journal', journal, '--concurrency', '2'])
      const done = finished(child)
      child.stdin!.on('error', () => {})
      child.stdin!.end(Buffer.from(stdin))
      // Interrupt once some appends have been answered (their outcomes are in the journal).
      for (;;) {
        const text = await readFile(journal, 'utf8').catch(() => '')
        if (text.split('\n').filter((l) => l.includes('"outcome"')).length >= 20) break
        await new Promise((r) => setTimeout(r, 20))
      }
      child.kill('SIGINT')
      const first = await done
      expect(first.code === 0 && first.stdout.includes('appended 300 entries'), 'the run ended before the interrupt').toBe(false)
      // Interrupted: the appends in flight finished, the summary was printed, and it says how to resume.
      expect(first.code, first.stderr).toBe(130)
      expect(first.stderr).toMatch(/^ucanlog: Interrupted: .*rerun with the same --journal/m)
      expect(first.stdout).toMatch(/^appended \d+ entries/)
      expect((await log()).length).toBeLessThan(300)

      const again = await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal], stdin)
      expect(again.code, again.stderr).toBe(0)
      await expectExactlyOnce(lines)
    } finally {
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('per-entry refusals do not stop the batch: the summary names each refused line and why (exit 2); --fail-fast stops at the first', async () => {
    fx = await appendFixture()
    const marker = Buffer.from('refuse-me').toString('base64')
    // The proxy refuses (HTTP 413) every request carrying an entry that starts with "refuse-me".
    const proxy = await startFaultProxy(svc().url, (_n, body) => (body.includes(marker.slice(0, 8)) ? { status: 413 } : 'pass'))
    try {
      const lines = ['one', 'refuse-me 1', 'three', 'refuse-me 2', 'five']
      const stdin = new TextEncoder().encode(lines.join('\n') + '\n')
      const r = await runUcanlog(['append', ...fx.args(proxy.url), '--journal', join(fx.dir, 'a.journal'), '--json', '--concurrency', '1'], stdin)
      expect(r.code, r.stderr).toBe(2)
      const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      const summary = out.at(-1) as { summary: { appended: number; alreadyAppended: number; refused: { line: number; error: { name: string; message: string } }[] } }
      expect(summary.summary.appended).toBe(3)
      expect(summary.summary.refused.map((x) => x.line)).toEqual([2, 4])
      expect(summary.summary.refused[0]!.error.message).toMatch(/413/)
      await expectExactlyOnce(['one', 'three', 'five'])

      const ff = await runUcanlog(['append', ...fx.args(proxy.url), '--fail-fast', '--concurrency', '1'], new TextEncoder().encode('refuse-me 3\nsix\n'))
      expect(ff.code).toBe(2)
      expect(ff.stderr).toMatch(/line 1/)
      expect((await log()).map((e) => Buffer.from(e).toString())).not.toContain('six')
    } finally {
      await proxy.close()
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('an answer that does not verify (garbage checkpoint, signed by the service key): exit 3, no outcome recorded; the rerun resends the same invocation and the entry is in the log once', async () => {
    fx = await appendFixture()
    // Receipts re-signed with the service's own key (a compromised service), each append's checkpoint garbage.
    const proxy = await startForgingProxy({ url: svc().url, dataDir: svc().dataDir }, (r) => ('inclusionProof' in r ? { ...r, checkpoint: 'garbage\n' } : r))
    try {
      const journal = join(fx.dir, 'run.journal')
      const stdin = new TextEncoder().encode('forged answer\n')
      const first = await runUcanlog(['append', ...fx.args(proxy.url), '--journal', journal], stdin)
      expect(first.code, first.stderr).toBe(3)
      expect(first.stderr).toMatch(/^ucanlog: VerificationFailed: line 1: /m)
      expect(await readFile(journal, 'utf8')).not.toMatch(/"outcome"/)
      const again = await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal, '--json'], stdin)
      expect(again.code, again.stderr).toBe(0)
      expect(JSON.parse(again.stdout.split('\n')[0]!)).toMatchObject({ line: 1, status: 'appended', resent: true })
      await expectExactlyOnce(['forged answer'])
    } finally {
      await proxy.close()
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('verified appends: a checkpoint log-signed by another key, in receipts the service key signed, is refused (exit 3) and never called verified; the honest run says verified and pins', async () => {
    fx = await appendFixture()
    const origin = `ucanlog/logs/${fx.space.did()}`
    const other = ed25519Signer(origin, new Uint8Array(32).fill(9))
    // Lies only about the appends: the log's creation (tlog/create) and the public files pass as they are.
    const proxy = await startForgingProxy({ url: svc().url, dataDir: svc().dataDir }, (r) => ('inclusionProof' in r && r.published ? { ...r, checkpoint: signNote(parseNote(r.checkpoint).text, [other]) } : r))
    try {
      const forged = await runUcanlog(['append', ...fx.args(proxy.url), 'forged?'])
      expect(forged.code, forged.stderr).toBe(3)
      expect(forged.stderr).toMatch(/^ucanlog: VerificationFailed: line 1: .*LogSignatureInvalid/m)
      expect(forged.stdout).not.toMatch(/verified/)
      const honest = await runUcanlog(['append', ...fx.args(svc().url), 'honest'])
      expect(honest.code, honest.stderr).toBe(0)
      expect(honest.stdout).toMatch(/^every inclusion proof verified against its cosigned checkpoint, consistent with the last checkpoint seen \(pinned in .*state/m)
    } finally {
      await proxy.close()
      await rm(fx.dir, { recursive: true, force: true })
    }
  })

  it('a rerun with a different input and the same journal is refused before anything is sent', async () => {
    fx = await appendFixture()
    try {
      const journal = join(fx.dir, 'run.journal')
      const a = numberedLines('input-a', 5)
      expect((await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal], a.stdin)).code).toBe(0)
      const b = numberedLines('input-b', 5)
      const r = await runUcanlog(['append', ...fx.args(svc().url), '--journal', journal], b.stdin)
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^ucanlog: JournalMismatch: .*line 1/m)
      await expectExactlyOnce(a.lines)
    } finally {
      await rm(fx.dir, { recursive: true, force: true })
    }
  })
})

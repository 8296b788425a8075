/**
 * Issue 12 item 4, "bytes in, bytes stored", with the built CLI against a real service on
 * loopback: what `ucanlog append` reads is what the log stores, byte for byte (read back through
 * `tlog/read`), and input it cannot take as given (non-UTF-8 text, a U+FFFD argument, bad base64,
 * an oversized entry) is refused with a named error naming where, never replaced or sent.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO } from '../e2e/helpers.js'
import { type AppendFixture, appendFixture, serviceForFile, finished, readLog, runUcanlog, spawnUcanlog } from './append-helpers.js'

const svc = serviceForFile()
let fx: AppendFixture

const fresh = async () => (fx = await appendFixture())
const cleanup = () => rm(fx.dir, { recursive: true, force: true })
const enc = (s: string) => new TextEncoder().encode(s)
const log = () => readLog(svc().url, svc().did, fx.space.did())

describe('ucanlog append: bytes in, bytes stored', () => {
  it('stdin lines are split on \\n only and stored byte-exact: a \\r stays, NUL, tabs and multi-byte UTF-8 stay; empty lines are skipped', async () => {
    await fresh()
    try {
      const stdin = Buffer.concat([enc('crlf line\r\n'), enc('nul\u0000tab\tdel\u007f\n'), enc('\n'), enc('ünïcödé 🌳\n'), enc('\r\n'), enc('last, no newline')])
      const r = await runUcanlog(['append', ...fx.args(svc().url)], stdin)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/^appended 5 entries/)
      const stored = await log()
      expect(stored.map((e) => Buffer.from(e).toString('hex')).sort()).toEqual(
        [enc('crlf line\r'), enc('nul\u0000tab\tdel\u007f'), enc('ünïcödé 🌳'), enc('\r'), enc('last, no newline')].map((e) => Buffer.from(e).toString('hex')).sort(),
      )
    } finally {
      await cleanup()
    }
  })

  it('--file without --lines is one entry of the file\'s raw bytes (every byte value)', async () => {
    await fresh()
    try {
      const bytes = new Uint8Array(Array.from({ length: 512 }, (_, i) => i % 256))
      const file = join(fx.dir, 'blob.bin')
      await writeFile(file, bytes)
      const r = await runUcanlog(['append', ...fx.args(svc().url), '--file', file])
      expect(r.code, r.stderr).toBe(0)
      expect(await log()).toEqual([bytes])
    } finally {
      await cleanup()
    }
  })

  it('--base64: one standard base64 entry per line, stored as the decoded bytes (binary, \\n and \\r inside)', async () => {
    await fresh()
    try {
      const entries = [randomBytes(100), Buffer.from([0xff, 0xfe, 0x0a, 0x0d, 0x00]), randomBytes(3000)].map((b) => new Uint8Array(b))
      const stdin = enc(entries.map((e) => Buffer.from(e).toString('base64')).join('\n') + '\n')
      const r = await runUcanlog(['append', ...fx.args(svc().url), '--base64'], stdin)
      expect(r.code, r.stderr).toBe(0)
      const stored = await log()
      expect(stored.map((e) => Buffer.from(e).toString('hex')).sort()).toEqual(entries.map((e) => Buffer.from(e).toString('hex')).sort())
    } finally {
      await cleanup()
    }
  })

  it('--base64 refuses a line that is not strict standard base64, naming the line; the input stops there (lines before it, streamed, are appended and summed up)', async () => {
    await fresh()
    try {
      const r = await runUcanlog(['append', ...fx.args(svc().url), '--base64'], enc('aGVsbG8=\naGVsbG8\nd29ybGQ=\n'))
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^ucanlog: InvalidBase64: line 2 /m)
      expect(r.stderr).not.toMatch(/\n\s+at /)
      expect(r.stdout).toMatch(/^appended 1 entry/)
      expect(await log()).toEqual([enc('hello')])
    } finally {
      await cleanup()
    }
  })

  it('a stdin line that is not UTF-8 is refused with a named error naming its line, never stored as U+FFFD', async () => {
    await fresh()
    try {
      const stdin = Buffer.concat([enc('fine\n'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x0a]), enc('after\n')])
      const r = await runUcanlog(['append', ...fx.args(svc().url)], stdin)
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^ucanlog: InvalidUtf8: line 2 is not valid UTF-8; use --base64 or --file/m)
      const stored = await log()
      for (const e of stored) expect(Buffer.from(e).includes(Buffer.from('\ufffd'))).toBe(false)
      expect(stored.map((e) => Buffer.from(e).toString())).not.toContain('after')
    } finally {
      await cleanup()
    }
  })

  it('an argument with bytes that are not UTF-8 (U+FFFD in Node\'s argv) is refused, nothing sent', async () => {
    await fresh()
    try {
      // The shell passes the raw byte 0xff; Node turns it into U+FFFD in process.argv.
      const child = spawn('sh', ['-c', `exec "$0" "$@" "$(printf 'bad\\377')"`, process.execPath, join(REPO, 'bin', 'ucanlog.js'), 'append', ...fx.args(svc().url), 'good'], { stdio: ['ignore', 'pipe', 'pipe'] })
      const r = await finished(child)
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/argument 2 is not valid UTF-8; use --base64 or --file/)
      expect(await log()).toEqual([])
    } finally {
      await cleanup()
    }
  })

  it('an entry over 65,535 bytes is refused locally before anything is sent (EntryTooLarge, naming the line)', async () => {
    await fresh()
    try {
      const r = await runUcanlog(['append', ...fx.args(svc().url)], Buffer.concat([Buffer.alloc(65_536, 0x61), enc('\nsmall\n')]))
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^ucanlog: EntryTooLarge: line 1 is longer than 65535 bytes/m)
      expect(await log()).toEqual([])
      // Exactly at the limit is fine.
      const ok = await runUcanlog(['append', ...fx.args(svc().url)], Buffer.alloc(65_535, 0x62))
      expect(ok.code, ok.stderr).toBe(0)
      expect((await log()).map((e) => e.length)).toEqual([65_535])
    } finally {
      await cleanup()
    }
  })

  it('50 MB on stdin is refused quickly with bounded memory (peak RSS of the CLI process read at its exit)', async () => {
    await fresh()
    try {
      // A preload that reports the process's own peak RSS (VmHWM) as it exits: the test's probe, not the CLI's code.
      const probe = join(fx.dir, 'hwm.cjs')
      await writeFile(probe, `process.on('exit', () => { const m = /VmHWM:\\s+(\\d+) kB/.exec(require('fs').readFileSync('/proc/self/status', 'utf8')); process.stderr.write('\\nHWM ' + (m ? m[1] : '?') + '\\n') })\n`)
      const child = spawnUcanlog(['append', ...fx.args(svc().url)], ['--require', probe])
      const done = finished(child)
      child.stdin!.on('error', () => {})
      const chunk = Buffer.alloc(1 << 20, 0x78) // 1 MiB of 'x', no newline: one 50 MB line
      for (let i = 0; i < 50 && !child.stdin!.destroyed; i++) {
        if (!child.stdin!.write(chunk)) await new Promise<void>((r) => { child.stdin!.once('drain', r); child.once('close', () => r()) })
      }
      child.stdin!.end()
      const r = await done
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/EntryTooLarge: line 1 is longer than 65535 bytes/)
      const hwmKb = Number(/HWM (\d+)/.exec(r.stderr)?.[1])
      expect(hwmKb).toBeGreaterThan(0)
      expect(hwmKb).toBeLessThan(200 * 1024) // Node and the ucanto stack are ~80 MB; the 50 MB input is never held
      expect(await log()).toEqual([])
    } finally {
      await cleanup()
    }
  })
})

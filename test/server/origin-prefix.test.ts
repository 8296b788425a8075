/**
 * src/server/origin-prefix.ts in-process: the derived prefix (unique per key, host-like, stable),
 * what counts as host-like, and the decision rules over a data directory (stored, configured,
 * legacy, derived; a conflict or an impossible prefix refused before anything is stored).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ORIGIN_PREFIX_FILE, decideOriginPrefix, derivedOriginPrefix, isHostLike } from '../../src/server/origin-prefix.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-prefix-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('derivedOriginPrefix', () => {
  it('is host-like, the same for one key and different for another', () => {
    const k = randomBytes(32)
    const p = derivedOriginPrefix(k)
    expect(p).toMatch(/^[a-z2-7]{16}\.ucanlog\.local$/)
    expect(isHostLike(p)).toBe(true)
    expect(derivedOriginPrefix(Uint8Array.from(k))).toBe(p)
    expect(derivedOriginPrefix(randomBytes(32))).not.toBe(p)
  })

  it('is the first 10 bytes of SHA-256 of the key in base32 (a fixed vector)', () => {
    // SHA-256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
    expect(derivedOriginPrefix(new Uint8Array(32))).toBe('mzuhvlpymk6xo3ep.ucanlog.local')
  })
})

describe('isHostLike', () => {
  it('accepts a DNS name of two labels or more, an optional port and a path', () => {
    for (const p of ['log.example.com', 'example.com/ucanlog', 'a-b.example:8443/x/y', 'xn--bcher-kva.example']) expect(isHostLike(p), p).toBe(true)
  })
  it('refuses a single label, an empty or spaced path segment, a bad label', () => {
    for (const p of ['ucanlog', 'test', 'localhost', 'example.com/', 'example.com//x', '-a.example', 'a..example', 'exa mple.com', 'example.com/a b', 'example.com/a+b']) {
      expect(isHostLike(p), p).toBe(false)
    }
  })
})

describe('decideOriginPrefix', () => {
  const publicKey = new Uint8Array(32)
  const derived = 'mzuhvlpymk6xo3ep.ucanlog.local'
  const stored = async () => (await readFile(join(dir, ORIGIN_PREFIX_FILE), 'utf8')).trim()

  it('a fresh data directory: derived from the key, stored, no warning', async () => {
    expect(await decideOriginPrefix({ dataDir: dir, configured: 'auto', publicKey, keyCreated: true })).toEqual({ prefix: derived, source: 'derived' })
    expect(await stored()).toBe(derived)
    expect(await decideOriginPrefix({ dataDir: dir, configured: 'auto', publicKey: randomBytes(32), keyCreated: false })).toEqual({ prefix: derived, source: 'stored' })
  })

  it('a key that existed before and no stored prefix: the legacy "ucanlog", with a warning', async () => {
    const r = await decideOriginPrefix({ dataDir: dir, configured: 'auto', publicKey, keyCreated: false })
    expect(r).toMatchObject({ prefix: 'ucanlog', source: 'legacy', warning: expect.stringContaining('not a host-like name') })
    expect(await stored()).toBe('ucanlog')
  })

  it('a configured prefix is used and stored; the warning asks for a host name only when it is not one', async () => {
    expect(await decideOriginPrefix({ dataDir: dir, configured: 'log.example.com', publicKey, keyCreated: true })).toEqual({ prefix: 'log.example.com', source: 'configured' })
    const other = await mkdtemp(join(tmpdir(), 'ucanlog-prefix-'))
    try {
      const r = await decideOriginPrefix({ dataDir: other, configured: 'mylog', publicKey, keyCreated: true })
      expect(r.warning).toMatch(/"mylog" is not a host-like name.*--origin-prefix/)
    } finally {
      await rm(other, { recursive: true, force: true })
    }
  })

  it('a configured prefix contradicting the stored one is refused, naming both and the file; the same one is fine', async () => {
    await writeFile(join(dir, ORIGIN_PREFIX_FILE), 'log.example.com\n')
    await expect(decideOriginPrefix({ dataDir: dir, configured: 'other.example.com', publicKey, keyCreated: false })).rejects.toThrow(
      /"other\.example\.com" differs from "log\.example\.com".*origin-prefix/,
    )
    expect(await decideOriginPrefix({ dataDir: dir, configured: 'log.example.com', publicKey, keyCreated: false })).toEqual({ prefix: 'log.example.com', source: 'stored' })
  })

  it('a prefix no origin can have is refused before anything is stored', async () => {
    for (const bad of ['a b', 'a+b', 'example.com/']) {
      await expect(decideOriginPrefix({ dataDir: dir, configured: bad, publicKey, keyCreated: true })).rejects.toThrow(/InvalidOriginPrefix|no whitespace/)
    }
    await expect(readFile(join(dir, ORIGIN_PREFIX_FILE))).rejects.toThrow(/ENOENT/)
  })
})

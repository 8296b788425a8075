/**
 * A delegation as a file holds it: `ucanlog delegate --out` and `storacha delegation create --base64 > f`
 * both end it with a newline, an editor may add CRLF or spaces. The library (ucanlog/client's
 * parseDelegation) takes such text as the CLI does; the wire (`nb.delegation`) stays strict
 * (test/ucan/delegation.test.ts pins that).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, test } from 'vitest'
import type { API } from '@ucanto/core'
import { InvalidDelegationError, createKey, delegateSpaceToAgent, formatDelegation, formatKey, parseDelegation } from '../../src/client/index.js'
import { formatDelegationBase64 } from '../../src/ucan/index.js'
import { REPO } from '../e2e/helpers.js'

let d: API.Delegation
let s: string

beforeAll(async () => {
  const space = await createKey()
  const agent = await createKey()
  d = await delegateSpaceToAgent({ space, agent, expiration: Math.floor(Date.now() / 1000) + 3600 })
  s = await formatDelegation(d)
})

describe('ucanlog/client parseDelegation: surrounding whitespace is not part of a delegation', () => {
  test('a trailing newline, CRLF, leading and trailing spaces and tabs: each parses to the same delegation', async () => {
    for (const text of [`${s}\n`, `${s}\r\n`, `  ${s}  `, `\t${s}\n\n`, `\n${s}`, s]) {
      expect((await parseDelegation(text)).cid.toString(), JSON.stringify(text.slice(-3))).toBe(d.cid.toString())
    }
    // the plain base64 form too
    expect((await parseDelegation(`${await formatDelegationBase64(d)}\n`)).cid.toString()).toBe(d.cid.toString())
  })

  test('the file `ucanlog delegate --out` writes (it ends with a newline) parses as read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ucanlog-deltext-'))
    try {
      const space = await createKey()
      const { writeFile } = await import('node:fs/promises')
      await writeFile(join(dir, 'space.key'), formatKey(space) + '\n', { mode: 0o600 })
      const agent = await createKey()
      await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), 'delegate', '--space-key', join(dir, 'space.key'), '--agent', agent.did(), '--out', join(dir, 'd.ucan')])
      const text = await readFile(join(dir, 'd.ucan'), 'utf8')
      expect(text.endsWith('\n')).toBe(true)
      const parsed = await parseDelegation(text)
      expect([parsed.issuer.did(), parsed.audience.did()]).toEqual([space.did(), agent.did()])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('whitespace inside the string, an empty or blank text, and garbage are refused by name, never echoed', async () => {
    for (const text of [`${s.slice(0, 10)} ${s.slice(10)}`, `${s.slice(0, 10)}\n${s.slice(10)}`, '', ' \n ', 'secret-looking-garbage']) {
      const err = await parseDelegation(text).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidDelegationError)
      expect((err as Error).name).toBe('InvalidDelegation')
      expect((err as Error).message).not.toContain('secret-looking-garbage')
    }
  })
})

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadPolicy } from '../../src/server/policy.js'
import { ed25519Cosigner } from '../../src/tlog/index.js'
import { REPO } from '../e2e/helpers.js'

const bundled = { vkey: ed25519Cosigner('ucanlog.local/witness', new Uint8Array(32).fill(5)).vkey, url: 'http://127.0.0.1:8787/witness' }

describe('loadPolicy (witness_policy.txt with the bundled witness placeholders)', () => {
  it('fills the committed policy in: witness lines get the vkey and URL, comments stay as written', () => {
    const text = readFileSync(join(REPO, 'witness_policy.txt'), 'utf8')
    const { effective, policy } = loadPolicy(text, bundled)
    expect(policy.witnesses).toEqual([expect.objectContaining({ name: 'bundled', vkey: bundled.vkey, url: bundled.url })])
    expect(policy.quorum).toBe('bundled')
    expect(policy.satisfied(new Set())).toBe(false)
    expect(policy.satisfied(new Set(['bundled']))).toBe(true)
    expect(effective).toContain(`witness bundled ${bundled.vkey} ${bundled.url}\n`)
    // The comment that explains the placeholders still names them.
    expect(effective).toMatch(/^#.*@bundled-vkey/m)
    expect(effective.split('\n').filter((l) => l.startsWith('#'))).toEqual(text.split('\n').filter((l) => l.startsWith('#')))
  })

  it('refuses placeholders when the bundled witness is disabled, and names the line of a grammar error', () => {
    expect(() => loadPolicy('witness b @bundled-vkey @bundled-url\nquorum b\n', undefined, 'p.txt')).toThrow(/p\.txt refers to the bundled witness/)
    expect(loadPolicy('# mentions @bundled-vkey only in a comment\nquorum none\n', undefined).policy.quorum).toBe('none')
    expect(() => loadPolicy('quorum nobody\n', bundled, 'p.txt')).toThrow(/^p\.txt: .*line 1/)
  })
})

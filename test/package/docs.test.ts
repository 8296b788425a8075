/**
 * docs/client.md documents the whole of `ucanlog/client` and `ucanlog/server`: every exported
 * function and constant is used in one of its ```ts snippets (which test/package/example.test.ts
 * type-checks against the installed package), every exported class is named in it; and the
 * README's app-developer section links to it.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import * as client from '../../src/client/index.js'
import * as server from '../../src/server/index.js'
import { REPO } from '../e2e/helpers.js'

const doc = await readFile(join(REPO, 'docs', 'client.md'), 'utf8')
const snippets = [...doc.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!).join('\n')
const isClass = (v: unknown) => typeof v === 'function' && /^class\b/.test(Function.prototype.toString.call(v))
const used = (name: string, text: string) => new RegExp(`\\b${name}\\b`).test(text)

describe('docs/client.md', () => {
  it('uses every exported function and constant of ucanlog/client and ucanlog/server in a snippet, and names every exported class', () => {
    const missing: string[] = []
    for (const [entry, mod] of [['ucanlog/client', client], ['ucanlog/server', server]] as const) {
      for (const [name, value] of Object.entries(mod)) {
        if (isClass(value) ? !used(name, doc) : !used(name, snippets)) missing.push(`${entry} ${name}`)
      }
    }
    expect(missing).toEqual([])
  })

  it('is linked from the README\'s app-developer section', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8')
    const section = readme.split(/^## /m).find((s) => s.startsWith('For app developers'))
    expect(section).toBeDefined()
    expect(section).toContain('(docs/client.md)')
    expect(section).toContain('ucanlog/client')
  })
})

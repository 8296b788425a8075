/** The version has one home, package.json: /info and `ucanlog --version` read it from there. */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { program } from '../../src/cli/main.js'
import { VERSION } from '../../src/server/version.js'
import { REPO } from '../e2e/helpers.js'

describe('version', () => {
  it('is package.json\'s, for the service and the CLI', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }
    expect(VERSION).toBe(pkg.version)
    expect((await program(['node', 'ucanlog', 'key'])).version()).toBe(pkg.version)
  })
})

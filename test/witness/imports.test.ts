/**
 * The dependency rule of docs/architecture.md for the bundled witness: witness/ imports only src/tlog and
 * libraries, so it stays usable without the server; the server and CLI reach it only through
 * witness/index.ts.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO } from '../e2e/helpers.js'

const importsOf = (src: string) => [...src.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!)

describe('witness/ dependency direction', () => {
  it('witness/*.ts imports only src/tlog, its own modules and packages', async () => {
    const files = (await readdir(join(REPO, 'witness'))).filter((f) => f.endsWith('.ts'))
    expect(files.sort()).toEqual(['http.ts', 'index.ts', 'loglist.ts', 'store.ts', 'witness.ts'])
    for (const f of files) {
      for (const spec of importsOf(await readFile(join(REPO, 'witness', f), 'utf8'))) {
        const ok = /^\.\/[a-z]+\.js$/.test(spec) || /^\.\.\/src\/tlog\/[a-z-]+\.js$/.test(spec) || !spec.startsWith('.')
        expect(ok, `${f} imports ${spec}`).toBe(true)
      }
    }
  })

  it('src/ imports the witness only through witness/index.ts', async () => {
    const offenders: string[] = []
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name)
        if (e.isDirectory()) await walk(p)
        else if (e.name.endsWith('.ts')) {
          for (const spec of importsOf(await readFile(p, 'utf8'))) if (/\/witness\//.test(spec) && !spec.endsWith('/witness/index.js')) offenders.push(`${p}: ${spec}`)
        }
      }
    }
    await walk(join(REPO, 'src'))
    expect(offenders).toEqual([])
  })
})

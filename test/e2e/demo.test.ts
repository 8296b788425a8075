/**
 * The README's main job, exactly as a newcomer runs it: `npm run demo` (scripts/demo.js) starts the
 * service, creates a space and an agent, delegates, appends one entry per package of
 * package-lock.json through the CLI, and audits twice.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { REPO } from './helpers.js'

describe('npm run demo', () => {
  it('appends every package of package-lock.json and the audit verifies, twice', async () => {
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> }
    const packages = Object.entries(lock.packages).filter(([p, v]) => p && v.version).length
    const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'scripts', 'demo.js')], { cwd: REPO, maxBuffer: 1 << 24 })
    expect(stdout).toContain(`appended ${packages} entries`)
    expect(stdout).toContain('every inclusion proof verified against its cosigned checkpoint')
    const audits = stdout.split('audit OK: ').slice(1)
    expect(audits).toHaveLength(2)
    expect(audits[0]).toContain(`tree size        ${packages}\n`)
    expect(audits[0]).toMatch(/cosignature {6}bundled \(ucanlog\.local\/witness\) at .*, verified/)
    expect(audits[0]).toContain(`inclusion proofs ${packages} verified`)
    expect(audits[1]).toContain(`tree size        ${packages + 1}\n`)
    expect(audits[1]).toContain(`consistency      verified with the size ${packages} seen last time`)
  }, 180_000)
})

/**
 * The README's main job, exactly as a newcomer runs it: `npm run demo` (scripts/demo.js) starts the
 * service, creates a space and an agent, delegates, appends one entry per package of
 * package-lock.json through the CLI, and audits twice.
 *
 * What the demo claims is checked on what it left in .demo/, not on its printed sentences: the log
 * is audited again here (auditLog with a log key derived from the printed service DID and a policy
 * built from the printed bundled-witness key), its checkpoint's log signature and cosignature are
 * verified, its root is recomputed from the entries with the naive RFC 6962 reference, and a known
 * entry's inclusion proof is checked against that checkpoint.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { base58btc } from 'multiformats/bases/base58'
import { describe, expect, it } from 'vitest'
import { auditLog } from '../../src/client/audit.js'
import { didKeyOfVkey } from '../../src/server/keys.js'
import {
  SIG_TYPE_ED25519,
  TILE_WIDTH,
  checkRecord,
  ed25519Verifier,
  entryBundlePath,
  formatVerifierKey,
  leafHash,
  openNote,
  parseCheckpoint,
  parseEntryBundle,
  parsePolicy,
  verifiedWitnesses,
} from '../../src/tlog/index.js'
import { ReferenceTree, refLeafHash } from '../tlog/rfc6962.js'
import { REPO } from './helpers.js'

describe('npm run demo', () => {
  it('appends every package of package-lock.json; the log it leaves audits, is cosigned by its witness and includes a known entry', async () => {
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> }
    // The entries the demo appends, computed here from package-lock.json as the README describes them.
    const lines = Object.entries(lock.packages)
      .filter(([p, v]) => p && v.version)
      .map(([p, v]) => `${p.replace(/^.*node_modules\//, '')}@${v.version} ${v.integrity ?? 'no-integrity'}`)
    const packages = lines.length
    const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'scripts', 'demo.js')], { cwd: REPO, maxBuffer: 1 << 24 })
    expect(stdout).toContain(`appended ${packages} entries`)
    const audits = stdout.split('audit OK: ').slice(1)
    expect(audits).toHaveLength(2)
    expect(audits[1]).toContain(`consistency      verified with the size ${packages} seen last time`)

    // The demo's keys, as `ucanlog serve` and `ucanlog key create` printed them.
    const serviceDid = /service DID: (did:key:\S+)/.exec(stdout)![1]!
    const witnessVkey = /bundled witness: (\S+)/.exec(stdout)![1]!
    const space = /^space (did:key:\S+)$/m.exec(stdout)![1]!
    const dir = join(REPO, '.demo', 'data', 'logs', space)
    const fetchFile = (path: string) => readFile(join(dir, path)).then((b) => new Uint8Array(b), () => undefined)

    // The checkpoint: signed by the service key under the log's origin, cosigned by the bundled witness.
    const note = Buffer.from((await fetchFile('checkpoint'))!).toString('utf8')
    const origin = note.slice(0, note.indexOf('\n'))
    const logVkey = formatVerifierKey(origin, SIG_TYPE_ED25519, base58btc.decode(serviceDid.slice('did:key:'.length)).subarray(2))
    expect(didKeyOfVkey(logVkey)).toBe(serviceDid)
    const cp = parseCheckpoint(openNote(note, [ed25519Verifier(logVkey)]).text)
    expect(cp.size).toBe(packages + 1)
    const policy = parsePolicy(`witness bundled ${witnessVkey}\nquorum bundled\n`)
    expect(verifiedWitnesses(policy, note)).toEqual(new Set(['bundled']))

    // auditLog over the files on disk: signature, policy, every entry against the tiles, proofs.
    const report = await auditLog({ fetchFile, origin, logVkey, policy })
    expect(report).toMatchObject({ size: packages + 1, entriesChecked: packages + 1 })
    expect(report.cosignatures.map((c) => c.name)).toEqual(['bundled'])

    // Independently of src/tlog's tree code: every entry from the bundles, the root recomputed with
    // the naive RFC 6962 reference, and the entries are the package lines plus the final one.
    const entries: Uint8Array[] = []
    for (let n = 0; n * TILE_WIDTH < cp.size; n++) {
      entries.push(...parseEntryBundle((await fetchFile(entryBundlePath(n, Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH))))!))
    }
    expect(entries).toHaveLength(cp.size)
    const tree = new ReferenceTree(entries.map(refLeafHash))
    expect(tree.mth(0, cp.size)).toEqual(cp.rootHash)
    const texts = entries.map((e) => new TextDecoder().decode(e))
    expect(texts.slice(0, packages).sort()).toEqual([...lines].sort())
    expect(texts[packages]).toMatch(/^demo finished at /)

    // A known entry (the first package of the lock file): its inclusion proof against the cosigned checkpoint.
    const known = new TextEncoder().encode(lines[0]!)
    const index = texts.indexOf(lines[0]!)
    expect(index).toBeGreaterThanOrEqual(0)
    expect(() => checkRecord(tree.path(index, 0, cp.size), cp.size, cp.rootHash, index, leafHash(known))).not.toThrow()
  }, 180_000)
})

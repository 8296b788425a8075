/**
 * The dependency rule (docs/architecture.md), checked on every import of `src/**` and `witness/**`
 * (static, `export … from`, `import type` and dynamic `import('…')`, parsed by the TypeScript
 * compiler's own pre-processor, so comments and strings are never mistaken for imports):
 *
 * - src/tlog is the pure core: it imports nothing of ours and no I/O (node:crypto only);
 * - tlog ← log ← server; storage ← log; ucan ← server; storage imports nothing of ours;
 * - src/client (what apps and auditors call) → tlog, ucan, the log's state format, and storage
 *   only through its public surface src/storage/index.ts — never the server;
 * - witness/ → src/tlog only, so it stays usable without the server; src/ reaches the witness
 *   only through witness/index.ts;
 * - src/cli (the commands) may import anything in src;
 * - nothing in src/ or witness/ imports test/ or a devDependency (dist ships without them).
 */
import { readdir, readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { dirname, join, relative } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { REPO } from '../e2e/helpers.js'

/** Where an import points: a module of ours (repo-relative `.ts` path), a node builtin, or a package. */
type Target = { kind: 'ours'; path: string } | { kind: 'builtin'; name: string } | { kind: 'package'; name: string }

/** What each part of the code may import of ours: repo-relative path prefixes (a directory ends in `/`). */
const ALLOWED: Record<string, readonly string[]> = {
  'src/tlog/': ['src/tlog/'],
  'src/storage/': ['src/storage/'],
  'src/log/': ['src/log/', 'src/tlog/', 'src/storage/'],
  // ucan does not import log: it declares the LogService port it needs (src/ucan/log-service.ts).
  // ucan → storage's list of the Storacha capabilities a delegation must grant (checked by ucan,
  // invoked by storage: one declaration).
  // ucan → storage's lists of the error codes meaning a full disk (storage-full.ts) or a failed
  // write (storage-failed.ts): one list each, for the replay guard's failures as for the log's.
  // ucan → the PostgreSQL driver errors meaning the database is unreachable (postgres/errors.ts),
  // for the PostgreSQL replay guard's and revocation index's failures as for the log's.
  // ucan → the SQLite page cache bound every store's connections take (sqlite-cache.ts).
  // ucan → the one byte-bounded LRU of the code base (byte-lru.ts), for its proof-block cache.
  'src/ucan/': ['src/ucan/', 'src/tlog/', 'src/storage/storacha-capabilities.ts', 'src/storage/storage-full.ts', 'src/storage/storage-failed.ts', 'src/storage/postgres/errors.ts', 'src/storage/sqlite-cache.ts', 'src/storage/byte-lru.ts'],
  'src/client/': ['src/client/', 'src/tlog/', 'src/ucan/', 'src/log/state.ts', 'src/storage/index.ts'],
  'src/server/': ['src/server/', 'src/tlog/', 'src/log/', 'src/storage/', 'src/ucan/', 'witness/index.ts'],
  'src/cli/': ['src/', 'witness/index.ts'],
  'witness/': ['witness/', 'src/tlog/'],
}

/** Node builtins src/tlog may import: hashing and signatures, no I/O. */
const TLOG_BUILTINS = new Set(['node:crypto'])

/** The rule part `file` (repo-relative) falls under, or undefined when no rule covers it. */
function partOf(file: string): string | undefined {
  return Object.keys(ALLOWED).find((p) => file.startsWith(p))
}

/** The package name of a bare specifier: `@scope/name` or `name`, without a subpath. */
function packageName(spec: string): string {
  const parts = spec.split('/')
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

/** Resolves one import specifier written in `file` (repo-relative). */
function resolveImport(file: string, spec: string): Target {
  if (spec.startsWith('.')) return { kind: 'ours', path: join(dirname(file), spec).replace(/\.js$/, '.ts') }
  if (spec.startsWith('node:') || builtinModules.includes(spec) || builtinModules.includes(spec.split('/')[0]!)) {
    return { kind: 'builtin', name: spec.startsWith('node:') ? spec : `node:${spec}` }
  }
  return { kind: 'package', name: packageName(spec) }
}

/**
 * The broken rules among `imports` (specifiers written in `file`, repo-relative), one message each.
 * @param devDependencies package names only tests and tools may import.
 */
export function violations(file: string, imports: readonly string[], devDependencies: ReadonlySet<string>): string[] {
  const part = partOf(file)
  if (part === undefined) return [`${file}: no rule covers this file; add its directory to ALLOWED`]
  const out: string[] = []
  for (const spec of imports) {
    const t = resolveImport(file, spec)
    if (t.kind === 'ours') {
      if (t.path.startsWith('test/') || t.path.startsWith('../')) out.push(`${file} imports ${spec}: test code or a file outside the package`)
      else if (t.path.startsWith('witness/') && t.path !== 'witness/index.ts' && part !== 'witness/') out.push(`${file} imports ${spec}: reach the witness through witness/index.ts`)
      else if (!ALLOWED[part]!.some((p) => t.path === p || (p.endsWith('/') && t.path.startsWith(p)))) out.push(`${file} imports ${spec}: ${part} may not import ${t.path}`)
    } else if (t.kind === 'package') {
      if (devDependencies.has(t.name)) out.push(`${file} imports ${spec}: a devDependency, not installed with the package`)
      else if (part === 'src/tlog/') out.push(`${file} imports ${spec}: src/tlog imports no packages (pure core)`)
    } else if (part === 'src/tlog/' && !TLOG_BUILTINS.has(t.name)) {
      out.push(`${file} imports ${spec}: src/tlog does no I/O (only ${[...TLOG_BUILTINS].join(', ')})`)
    }
  }
  return out
}

/** Every import specifier of a TypeScript source, dynamic `import('…')` included. */
function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName)
}

/** Repo-relative paths of every `.ts` file under `dir`. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(join(REPO, dir), { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ts')) out.push(relative(REPO, join(e.parentPath, e.name)))
  }
  return out.sort()
}

const DEV = new Set(Object.keys((JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { devDependencies: object }).devDependencies))

describe('the dependency rule', () => {
  it('every import of src/ and witness/ follows it', async () => {
    const files = [...(await sources('src')), ...(await sources('witness'))]
    expect(files.length).toBeGreaterThan(50)
    const broken: string[] = []
    let checked = 0
    for (const file of files) {
      const imports = importsOf(await readFile(join(REPO, file), 'utf8'))
      checked += imports.length
      broken.push(...violations(file, imports, DEV))
      // Every relative import names a file that exists: a misparsed import cannot slip through.
      for (const spec of imports.filter((s) => s.startsWith('.'))) {
        const t = resolveImport(file, spec)
        if (t.kind === 'ours' && !files.includes(t.path)) broken.push(`${file} imports ${spec}: no such source file`)
      }
    }
    expect(checked).toBeGreaterThan(200)
    expect(broken).toEqual([])
  })

  it('witness/ holds the bundled witness alone: its six modules', async () => {
    expect(await sources('witness')).toEqual(['http.ts', 'index.ts', 'loglist.ts', 'pg-store.ts', 'store.ts', 'witness.ts'].map((f) => `witness/${f}`))
  })

  it('flags each kind of broken rule', () => {
    const dev = new Set(['@storacha/upload-api', 'vitest'])
    const check = (file: string, spec: string) => violations(file, [spec], dev)
    // src/tlog: pure
    expect(check('src/tlog/note.ts', 'node:crypto')).toEqual([])
    expect(check('src/tlog/note.ts', './encoding.js')).toEqual([])
    expect(check('src/tlog/note.ts', 'node:fs/promises')).toHaveLength(1)
    expect(check('src/tlog/note.ts', 'fs')).toHaveLength(1)
    expect(check('src/tlog/note.ts', '../log/log.js')).toHaveLength(1)
    expect(check('src/tlog/note.ts', 'multiformats/cid')).toHaveLength(1)
    // the layers
    expect(check('src/log/log.ts', '../tlog/index.js')).toEqual([])
    expect(check('src/log/log.ts', '../server/app.js')).toHaveLength(1)
    expect(check('src/log/log.ts', '../ucan/index.js')).toHaveLength(1)
    expect(check('src/storage/file-store.ts', '../log/storage.js')).toHaveLength(1)
    expect(check('src/storage/file-store.ts', '../tlog/index.js')).toHaveLength(1)
    expect(check('src/ucan/service.ts', '../server/app.js')).toHaveLength(1)
    expect(check('src/server/app.ts', '../cli/main.js')).toHaveLength(1)
    expect(check('src/server/app.ts', '../../witness/index.js')).toEqual([])
    expect(check('src/server/app.ts', '../../witness/http.js')).toHaveLength(1)
    expect(check('src/client/audit.ts', '../server/keys.js')).toHaveLength(1)
    expect(check('src/client/restore.ts', '../storage/index.js')).toEqual([])
    expect(check('src/client/restore.ts', '../storage/file-store.js')).toHaveLength(1)
    expect(check('src/cli/restore.ts', '../server/keys.js')).toEqual([])
    expect(check('witness/http.ts', '../src/tlog/encoding.js')).toEqual([])
    expect(check('witness/http.ts', '../src/log/log.js')).toHaveLength(1)
    // test code and devDependencies, anywhere
    expect(check('src/cli/main.ts', '../../test/helpers/local-storacha.js')).toHaveLength(1)
    expect(check('witness/store.ts', '../test/helpers/loopback.js')).toHaveLength(1)
    expect(check('src/storage/index.ts', '@storacha/upload-api/test/context')).toHaveLength(1)
    expect(check('src/server/app.ts', 'hono')).toEqual([])
    // a new directory needs a rule
    expect(check('src/extra/x.ts', '../tlog/index.js')).toHaveLength(1)
  })
})

/**
 * The package as a user gets it (issue 12 "Must show"): `npm pack` of this checkout (built: run
 * `npm run build` first), the tarball installed into a fresh temporary project with the example
 * app (examples/append-and-verify), `npm run build` there (tsc against the emitted declarations),
 * then the app run against a real service with its bundled witness on loopback: it appends,
 * verifies its receipts (pinning on first use), reads back and audits; this test checks the log independently.
 *
 * Offline: the install uses only the npm cache `npm ci` filled (offline-install.ts says how).
 * 15–30 s on a shared 2-core machine (npm ci from the cache ~4 s, three tsc runs ~3–6 s each).
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fetchLogHead } from '../../src/client/index.js'
import { REPO, startTestService } from '../e2e/helpers.js'
import { type Manifest, writeOfflineLock } from './offline-install.js'

const run = promisify(execFile)
const EXAMPLE = join(REPO, 'examples', 'append-and-verify')
const NPM_QUIET = ['--no-audit', '--no-fund', '--loglevel=error']

let dir: string
let app: string
let packed: { filename: string; files: { path: string }[] }
let svc: Awaited<ReturnType<typeof startTestService>>

/** Runs `cmd args` in `cwd`, resolving to stdout; a failure carries the command's stderr. */
async function sh(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  try {
    return (await run(cmd, args, { cwd, timeout, maxBuffer: 16 << 20, env: { ...process.env, npm_config_update_notifier: 'false' } })).stdout
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
  }
}

beforeAll(async () => {
  // The tarball carries dist: the checkout must be built (npm test builds first).
  await stat(join(REPO, 'dist', 'src', 'client', 'index.d.ts'))
  dir = await mkdtemp(join(tmpdir(), 'ucanlog-package-'))
  // --ignore-scripts: `prepare` would rebuild dist/ under the other tests running from it.
  const [info] = JSON.parse(await sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir, ...NPM_QUIET], REPO)) as (typeof packed)[]
  packed = info!

  app = join(dir, 'app')
  await mkdir(app)
  for (const f of ['index.ts', 'tsconfig.json']) await cp(join(EXAMPLE, f), join(app, f))
  const manifest = JSON.parse(await readFile(join(EXAMPLE, 'package.json'), 'utf8')) as Manifest
  const project: Manifest = { ...manifest, dependencies: { ...manifest.dependencies, ucanlog: `file:../${packed.filename}` } }
  await writeFile(join(app, 'package.json'), JSON.stringify(project, null, 2) + '\n')
  const ucanlog = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as Manifest
  await writeOfflineLock(app, project, ucanlog, `../${packed.filename}`, join(REPO, 'package-lock.json'))
  // --ignore-scripts: better-sqlite3's native build is for `ucanlog serve`; the app needs none.
  await sh('npm', ['ci', '--offline', '--ignore-scripts', ...NPM_QUIET], app)
  svc = await startTestService()
}, 180_000)

afterAll(async () => {
  await svc?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('the packed package, installed in a fresh project', () => {
  it('holds what a user needs and nothing of the development: dist js and declarations, bin, README, the user docs', () => {
    const files = packed.files.map((f) => f.path).sort()
    for (const f of ['package.json', 'README.md', 'bin/ucanlog.js', 'docs/client.md', 'docs/wire.md', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'dist/src/server/index.js', 'dist/src/server/index.d.ts', 'dist/src/cli/main.js', 'dist/witness/index.js', 'explorer/index.html', 'explorer/explorer.js', 'explorer/tlog.js', 'explorer/explorer.css']) {
      expect(files, f).toContain(f)
    }
    const stray = files.filter((f) => /^(test|bench|scripts|reports|examples|src|witness|data)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || /^docs\/(testing|tests|contracts)\.md$/.test(f))
    expect(stray).toEqual([])
  })

  it('the example type-checks against the emitted declarations (tsc), and a misuse does not', async () => {
    await sh('npm', ['run', 'build', '--silent'], app)
    await stat(join(app, 'dist', 'index.js'))
    // The declarations are precise, not `any`: text where bytes are due, an unknown export, fail.
    await writeFile(
      join(app, 'misuse.ts'),
      "import { createClient, createKey, notAnExport } from 'ucanlog/client'\n" +
        "const client = await createClient({ url: 'http://127.0.0.1:1', agent: await createKey() })\n" +
        "await client.append('text, not bytes')\n" +
        'void notAnExport\n',
    )
    await writeFile(join(app, 'tsconfig.misuse.json'), JSON.stringify({ extends: './tsconfig.json', include: ['misuse.ts'], compilerOptions: { noEmit: true } }))
    const out = await sh(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.misuse.json'], app).then(
      () => 'passed',
      (e: Error) => e.message,
    )
    expect(out).toContain("has no exported member 'notAnExport'")
    expect(out).toMatch(/Argument of type 'string' is not assignable to parameter of type 'Uint8Array/)
  })

  it('every ```ts snippet of docs/client.md type-checks against the installed package', async () => {
    const doc = await readFile(join(REPO, 'docs', 'client.md'), 'utf8')
    const snippets = [...doc.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
    expect(snippets.length).toBeGreaterThan(10)
    const snippetDir = join(app, 'doc-snippets')
    await mkdir(snippetDir, { recursive: true })
    for (const [i, code] of snippets.entries()) await writeFile(join(snippetDir, `snippet-${String(i).padStart(2, '0')}.ts`), code)
    await writeFile(join(snippetDir, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', include: ['*.ts'], compilerOptions: { noEmit: true } }))
    await sh(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'doc-snippets'], app)
  })

  it('the example appends against a real service, verifies its receipts, reads back and audits; the log shows its entries', async () => {
    await stat(join(app, 'dist', 'index.js')) // built by the previous test
    const stdout = await sh(process.execPath, [join(app, 'dist', 'index.js'), svc.url], app, 60_000)
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      api: string
      space: string
      origin: string
      indexes: number[]
      receiptsVerified: number
      pinnedSize: number
      readBack: boolean
      audit: { size: number; inclusionProofsChecked: number }
    }
    expect(result.api).toMatch(/^1\.\d+\.\d+$/)
    expect([...result.indexes].sort()).toEqual([0, 1])
    expect([result.receiptsVerified, result.pinnedSize, result.readBack, result.audit]).toEqual([2, 2, true, { size: 2, inclusionProofsChecked: 2 }])
    // Independently of the app: the service's log of that space holds exactly its two entries.
    const head = await fetchLogHead(svc.url, result.space)
    expect([head?.origin, head?.treeSize]).toEqual([result.origin, 2])
    const bundle = await (await fetch(`${svc.url}/logs/${result.space}/tile/entries/000.p/2`)).arrayBuffer()
    const bytes = Buffer.from(bundle)
    const expected = [Buffer.from('hello from an app'), Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x80])]
    const got = [bytes.subarray(2, 2 + bytes.readUInt16BE(0))]
    got.push(bytes.subarray(4 + got[0]!.length, 4 + got[0]!.length + bytes.readUInt16BE(2 + got[0]!.length)))
    expect(new Set(got.map((b) => b.toString('hex')))).toEqual(new Set(expected.map((b) => b.toString('hex'))))
  })

  it('bin/ucanlog.js and ucanlog/server work from the installed tarball', async () => {
    const version = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version
    expect((await sh(process.execPath, [join(app, 'node_modules', 'ucanlog', 'bin', 'ucanlog.js'), '--version'], app)).trim()).toBe(version)
    const did = (await sh(process.execPath, [join(app, 'node_modules', 'ucanlog', 'bin', 'ucanlog.js'), 'key', 'create', '--out', join(dir, 'agent.key')], app)).trim()
    expect(did).toMatch(/^did:key:z6Mk/)
    const server = await sh(process.execPath, ['--input-type=module', '-e', "const s = await import('ucanlog/server'); const c = await import('ucanlog'); console.log(typeof s.startService, typeof s.openWitness, s.VERSION, typeof c.createClient)"], app)
    expect(server.trim()).toBe(`function function ${version} function`)
    // The explorer's page ships with the server (explorer/ at the package root, read by dist/src/server/explorer.js).
    const explorer = join(app, 'node_modules', 'ucanlog', 'dist', 'src', 'server', 'explorer.js')
    const page = await sh(process.execPath, ['--input-type=module', '-e', `const { explorerRoutes } = await import(${JSON.stringify(explorer)}); const r = await explorerRoutes(/^x$/).request('/explorer/tlog.js'); console.log(r.status, (await r.text()).includes('inclusionProof'))`], app)
    expect(page.trim()).toBe('200 true')
  })
})

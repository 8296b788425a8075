/**
 * Runs test/interop/go/tlogtool, the reference Go implementation (golang.org/x/mod/sumdb/tlog and
 * sumdb/note from Debian's golang-golang-x-mod-dev) that the interop tests check our code against.
 *
 * The binary is built once into `.tmp/go/tlogtool` in GOPATH mode with no network
 * (GO111MODULE=off, GOPATH=/usr/share/gocode), and rebuilt only when main.go is newer than it.
 * Builds go to a temporary name and are renamed into place, so parallel test files never run a
 * half-written binary. Without Go installed this throws, pointing at scripts/ensure-go.sh.
 */
import { spawn } from 'node:child_process'
import { mkdir, rename, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SOURCE_DIR = join(ROOT, 'test', 'interop', 'go', 'tlogtool')
const OUT_DIR = join(ROOT, '.tmp', 'go')
/** Path of the built tlogtool binary. */
export const GO_TOOL = join(OUT_DIR, 'tlogtool')
const GOPATH = '/usr/share/gocode'
/** Source files of tlogtool besides main.go; a change to any of them rebuilds it. */
const GO_FILES = ['witness.go']

/** Result of one tlogtool run: exit code, stdout and stderr as UTF-8. */
export interface GoToolResult {
  code: number
  stdout: string
  stderr: string
}

function run(cmd: string, args: readonly string[], opts: { stdin?: string | Uint8Array; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<GoToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', reject)
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    )
    child.stdin.on('error', () => {}) // the tool may exit before reading all of stdin
    child.stdin.end(opts.stdin ?? '')
  })
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs
  } catch {
    return undefined
  }
}

async function build(): Promise<string> {
  const src = await mtime(join(SOURCE_DIR, 'main.go'))
  if (src === undefined) throw new Error(`missing ${SOURCE_DIR}/main.go`)
  const newest = Math.max(src, ...(await Promise.all(GO_FILES.map((f) => mtime(join(SOURCE_DIR, f))))).map((t) => t ?? 0))
  const bin = await mtime(GO_TOOL)
  if (bin !== undefined && bin >= newest) return GO_TOOL
  await mkdir(OUT_DIR, { recursive: true })
  const tmp = `${GO_TOOL}.${process.pid}.${Date.now()}.tmp`
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH,
    GOFLAGS: '',
    GOPROXY: 'off',
    GOCACHE: process.env.GOCACHE ?? join(OUT_DIR, 'cache'),
  }
  let res: GoToolResult
  try {
    res = await run('go', ['build', '-o', tmp, '.'], { cwd: SOURCE_DIR, env })
  } catch (e) {
    throw new Error(`cannot run go (${(e as Error).message}); install Go and x/mod with scripts/ensure-go.sh`)
  }
  if (res.code !== 0) throw new Error(`go build of tlogtool failed (run scripts/ensure-go.sh if x/mod is missing):\n${res.stderr}`)
  await rename(tmp, GO_TOOL)
  return GO_TOOL
}

let built: Promise<string> | undefined

/**
 * Runs `tlogtool args…` with `stdin`, building it first if needed (once per process).
 * Resolves with the exit code and output; rejects only if the tool cannot be built or started.
 */
export async function goTool(args: string[], stdin?: string | Uint8Array): Promise<GoToolResult> {
  built ??= build().catch((e: unknown) => {
    built = undefined
    throw e
  })
  return run(await built, args, { stdin })
}

/** `ucanlog witness serve` as a child process (the built bin/ucanlog.js), for CLI and end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { REPO } from '../e2e/helpers.js'

const BIN = join(REPO, 'bin', 'ucanlog.js')

/**
 * Starts `ucanlog witness serve args…` (with `env` added to this process's environment) and
 * resolves, once it listens, with its URL, printed vkey and output so far.
 */
export async function serveWitness(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; vkey: string; stdout: string }> {
  const child = spawn(process.execPath, [BIN, 'witness', 'serve', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let out = ''
  let err = ''
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()))
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString()
      const m = /^witness vkey: (\S+)\n.* listening on (http:\/\/\S+)\n/.exec(out)
      if (m) resolve({ child, url: m[2]!, vkey: m[1]!, stdout: out })
    })
    child.on('exit', (code) => reject(new Error(`witness serve exited ${code}: ${err}`)))
  })
}

/** Sends SIGTERM and resolves with the exit code. */
export function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.once('exit', (code) => resolve(code))
    child.kill('SIGTERM')
  })
}


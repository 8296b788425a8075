/**
 * End-to-end helpers: a real service (Hono on @hono/node-server, the bundled witness over HTTP,
 * the local file backend) on 127.0.0.1 with a fresh data directory.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import { startService, type RunningService } from '../../src/server/service.js'
import type { ServiceConfig } from '../../src/server/config.js'
import type { RequestTarget } from '../ucan/helpers.js'

export const REPO = join(import.meta.dirname, '..', '..')

export async function startTestService(config: Partial<ServiceConfig> = {}): Promise<RunningService & { dataDir: string; stop(): Promise<void> }> {
  const dataDir = config.dataDir ?? (await mkdtemp(join(tmpdir(), 'ucanlog-e2e-')))
  const svc = await startService({
    port: 0,
    dataDir,
    witnessPolicyFile: join(REPO, 'witness_policy.txt'),
    logLevel: 'silent',
    batchMaxAgeMs: 20,
    // These tests assert what gets published, not how fast: a loaded 2-core CI machine must not
    // turn a slow loopback witness answer into published: false.
    witnessTimeoutMs: 10_000,
    ...config,
  })
  return {
    ...svc,
    dataDir,
    async stop() {
      await svc.close()
      if (!config.dataDir) await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** POSTs CAR requests to the service's /rpc route over real HTTP. */
export function httpTarget(url: string): RequestTarget {
  return {
    async request(req) {
      const res = await fetch(`${url}/rpc`, { method: 'POST', headers: req.headers, body: req.body })
      return { status: res.status, headers: Object.fromEntries(res.headers), body: new Uint8Array(await res.arrayBuffer()) }
    },
  }
}

/** A signer that claims `claimed`'s DID but signs with `actual`'s key: its signatures never verify. */
export function impostor(claimed: API.Signer, actual: API.Signer): API.Signer {
  return {
    did: () => claimed.did(),
    toDIDKey: () => claimed.did() as API.DIDKey,
    sign: (payload: Uint8Array) => actual.sign(payload),
    signatureAlgorithm: actual.signatureAlgorithm,
    signatureCode: actual.signatureCode,
    verifier: claimed.verifier,
    encode: () => (actual as unknown as { encode(): Uint8Array }).encode(),
    withDID: () => {
      throw new Error('not supported')
    },
  } as unknown as API.Signer
}

/**
 * Runs the built CLI's `ucanlog serve` with `args` as a real process and resolves once it prints its
 * URL. The caller kills it (tests use SIGKILL to crash it). `opts.env` adds environment variables;
 * `opts.maxFds` caps its file descriptors (`ulimit -n`).
 */
export async function spawnServe(
  args: string[],
  stderr: 'inherit' | 'ignore' | 'pipe' = 'inherit',
  opts: { env?: Record<string, string>; maxFds?: number } = {},
): Promise<{ url: string; did: string; child: ChildProcess }> {
  const env = { ...process.env, ...opts.env }
  const argv = [join(REPO, 'bin', 'ucanlog.js'), 'serve', ...args]
  // `maxFds`: run under `ulimit -n` (the shell execs node, so the child is the server itself).
  const child =
    opts.maxFds === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', stderr], env })
      : spawn('sh', ['-c', `ulimit -n ${opts.maxFds} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', stderr], env })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /serving on (http:\/\/\S+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.once('exit', (code) => reject(new Error(`ucanlog serve exited with ${code}`)))
  })
  return { url, did: (await (await fetch(`${url}/did`)).text()).trim(), child }
}

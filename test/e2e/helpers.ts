/**
 * End-to-end helpers: a real service (Hono on @hono/node-server, the bundled witness over HTTP,
 * the local file backend) on 127.0.0.1 with a fresh data directory.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process'
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as API from '@ucanto/interface'
import type { Logger } from 'pino'
import { afterAll, afterEach, beforeAll } from 'vitest'
import * as CAR from '@ucanto/transport/car'
import { startService, type RunningService, type ServiceHooks } from '../../src/server/service.js'
import { DEFAULT_CONFIG, type ServiceConfig } from '../../src/server/config.js'
import { connectionLimits } from '../../src/server/connection-limits.js'
import { defaultFdReserve, readFdLimit } from '../../src/server/fd-budget.js'
import { type Out, type RequestTarget, encodeRequest, outOf, sendRaw } from '../ucan/helpers.js'

export const REPO = join(import.meta.dirname, '..', '..')

/**
 * A clock the test moves by hand (milliseconds since the epoch, starting at the real time so
 * invocation expiries stay meaningful): pass `now` as {@link ServiceHooks.limitsClock} so token
 * buckets refill only when the test calls `advance`, never because the machine was slow.
 */
export function manualClock(start = Date.now()): { now: () => number; advance(ms: number): void } {
  let t = start
  return { now: () => t, advance: (ms) => void (t += ms) }
}

/**
 * A {@link ServiceHooks.ucanClock} read from `clock` (a {@link manualClock}): Unix seconds, so the
 * service's own invocation time checks (expiry, not-before, lifetime bound, replay-guard expiry)
 * move only when the test advances `clock`. ucanto's validator keeps the system clock for the
 * delegation chain (see {@link ServiceHooks.ucanClock}).
 */
export function ucanSeconds(clock: { now(): number }): () => number {
  return () => Math.floor(clock.now() / 1000)
}

/**
 * A real service on 127.0.0.1 (port 0) with a fresh data directory (removed by `stop` unless the
 * config names one), test-friendly defaults overridden by `config`; `hooks` (e.g. a
 * {@link manualClock} for the rate limits) go to {@link startService}; `logger` replaces the silent
 * one (tests that read the service's log lines pass a pino logger writing to a stream they hold).
 */
export async function startTestService(config: Partial<ServiceConfig> = {}, hooks: ServiceHooks = {}, logger?: Logger): Promise<RunningService & { dataDir: string; stop(): Promise<void> }> {
  const dataDir = config.dataDir ?? (await mkdtemp(join(tmpdir(), 'ucanlog-e2e-')))
  const svc = await startService({
    port: 0,
    dataDir,
    witnessPolicyFile: join(REPO, 'witness_policy.txt'),
    // The prefix these tests' origins were written with; the default (derived from the service
    // key, issue 12) has its own tests in origin-prefix.test.ts, which pass `originPrefix: 'auto'`.
    originPrefix: 'ucanlog',
    logLevel: 'silent',
    batchMaxAgeMs: 20,
    // These tests assert what gets published, not how fast: a loaded 2-core CI machine must not
    // turn a slow loopback witness answer into published: false.
    witnessTimeoutMs: 10_000,
    // 429s answered at once: these tests count refusals; the tarpit has its own test (test/ucan/early.test.ts).
    refusalDelayMs: 0,
    // The test process is one client address (127.0.0.1) sending up to ~250 requests at once: let
    // it use every connection the budget allows, not a quarter.
    maxConnectionsPerClient: connectionLimits({ ...DEFAULT_CONFIG, ...config }, readFdLimit(), defaultFdReserve((config.maxOpenLogs ?? DEFAULT_CONFIG.maxOpenLogs) + 1)).maxConnections,
    // UCANLOG_TEST_REQUEST_WORKERS=N runs these tests with N request workers (--request-workers; the
    // attack and security tests must pass either way).
    ...(process.env.UCANLOG_TEST_REQUEST_WORKERS !== undefined && { requestWorkers: Number(process.env.UCANLOG_TEST_REQUEST_WORKERS) }),
    ...config,
  }, logger, hooks)
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

export { impostor } from '../ucan/helpers.js'

/**
 * Runs the built CLI (`bin/ucanlog.js args…`) as a child process; with `nofile`, under that
 * descriptor limit (soft and hard, `ulimit -n` in sh, which Node cannot raise); `env` adds
 * environment variables.
 */
export function spawnCli(args: string[], opts: { stdio: StdioOptions; nofile?: number; env?: Record<string, string> }): ChildProcess {
  const argv = [join(REPO, 'bin', 'ucanlog.js'), ...args]
  const env = { ...process.env, ...opts.env }
  if (opts.nofile === undefined) return spawn(process.execPath, argv, { stdio: opts.stdio, env })
  // The shell execs node, so the child is the server itself.
  return spawn('sh', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: opts.stdio, env })
}

/**
 * Runs the built CLI's `ucanlog serve` with `args` as a real process and resolves once it prints its
 * URL. The caller kills it (tests use SIGKILL to crash it). `opts`: see {@link spawnCli}.
 */
export async function spawnServe(
  args: string[],
  stderr: 'inherit' | 'ignore' | 'pipe' = 'inherit',
  opts: { nofile?: number; env?: Record<string, string> } = {},
): Promise<{ url: string; did: string; child: ChildProcess }> {
  const child = spawnCli(['serve', ...args], { stdio: ['ignore', 'pipe', stderr], ...opts })
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

/**
 * POSTs a CAR request to the service's /rpc route from a chosen loopback source address (Linux
 * routes all of 127/8 to lo), so tests can act as distinct clients. Plain node:http, no pooling.
 */
export function postFrom(
  url: string,
  req: { headers: Record<string, string>; body: Uint8Array },
  localAddress: string,
): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array }> {
  const target = new URL(`${url}/rpc`)
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', localAddress, agent: false, headers: { ...req.headers, 'content-length': String(req.body.length) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v
          resolve({ status: res.statusCode ?? 0, headers, body: new Uint8Array(Buffer.concat(chunks)) })
        })
        res.on('error', reject)
      },
    )
    r.on('error', reject)
    r.end(req.body)
  })
}

/** A {@link RequestTarget} whose requests come from `localAddress` (see {@link postFrom}). */
export function httpTargetFrom(url: string, localAddress: string): RequestTarget {
  return { request: (req) => postFrom(url, req, localAddress) }
}

/** Sends one invocation to the service at `url` over HTTP and returns its receipt's outcome. */
export async function call(url: string, inv: API.Invocation): Promise<Out> {
  const [receipt] = await sendRaw(httpTarget(url), await encodeRequest([inv]))
  return outOf(receipt!)
}

/** Starts one real service for the test file (beforeAll) and stops it after (afterAll); call the result for it. */
export function serviceForFile(config: Partial<ServiceConfig> = {}): () => Awaited<ReturnType<typeof startTestService>> {
  let svc: Awaited<ReturnType<typeof startTestService>> | undefined
  beforeAll(async () => {
    svc = await startTestService(config)
  })
  afterAll(async () => {
    await svc?.stop()
  })
  return () => svc!
}

/** Starts a real service per test (`start(config)`), stopped after each test. */
export function servicePerTest(): (config?: Partial<ServiceConfig>) => Promise<Awaited<ReturnType<typeof startTestService>>> {
  let svc: Awaited<ReturnType<typeof startTestService>> | undefined
  afterEach(async () => {
    await svc?.stop()
    svc = undefined
  })
  return async (config = {}) => (svc = await startTestService(config))
}

/**
 * POSTs one request of `invocations` from `localAddress` (default 127.0.0.1, see {@link postFrom}):
 * its status, its headers and, for a 200, each invocation's outcome in order (else none).
 */
export async function postInvocations(url: string, invocations: API.Invocation[], localAddress = '127.0.0.1'): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array; outs: Out[] }> {
  const res = await postFrom(url, await encodeRequest(invocations), localAddress)
  if (res.status !== 200) return { ...res, outs: [] }
  const message = (await CAR.response.decode({ headers: res.headers, body: res.body } as never)) as API.AgentMessage
  return { ...res, outs: invocations.map((inv) => outOf(message.receipts.get(inv.cid.toString() as never) as API.Receipt)) }
}

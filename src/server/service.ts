/**
 * The composition root of `ucanlog serve`: keys, the bundled witness, the witness policy, the log
 * engine on the local backend, the ucanto RPC service and the Hono app, listening on one port.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { Registry, Counter, collectDefaultMetrics } from 'prom-client'
import { LogManager } from '../log/registry.js'
import { WitnessClient } from '../log/witness-client.js'
import { LocalBackend } from '../storage/local-backend.js'
import { ed25519Signer } from '../tlog/index.js'
import { createUcanService, type LogService } from '../ucan/index.js'
import { openWitness, witnessApp } from '../../witness/index.js'
import { createApp } from './app.js'
import { type ServiceConfig, DEFAULT_CONFIG } from './config.js'
import { loadServiceKey } from './keys.js'
import { loadPolicy } from './policy.js'

/** A running service. */
export interface RunningService {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  url: string
  /** The service DID (did:key of the service key). */
  did: string
  /** The bundled witness's vkey (type 0x04), when it runs. */
  witnessVkey: string | undefined
  /** The effective witness policy text. */
  policy: string
  logs: LogManager
  /** Flushes every log, stops listening and closes state. */
  close(): Promise<void>
}

export async function startService(config: Partial<ServiceConfig> = {}, logger?: Logger): Promise<RunningService> {
  const c: ServiceConfig = { ...DEFAULT_CONFIG, ...config }
  const log = logger ?? pino({ level: c.logLevel })
  const dataDir = resolve(c.dataDir)
  const { signer, seed, created } = await loadServiceKey(join(dataDir, 'service.key'))
  if (created) log.info({ did: signer.did(), file: join(dataDir, 'service.key') }, 'created service key')

  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const appends = new Counter({ name: 'ucanlog_appends_total', help: 'tlog/append results by outcome', labelNames: ['result'], registers: [metrics] })

  // The bundled witness, in-process, mounted at /witness on the same listener.
  const bw = await openWitness({ name: c.witnessName, keyFile: join(dataDir, 'witness.key'), dbFile: join(dataDir, 'witness.db') })

  // Listen first (port 0 picks one) so the bundled witness URL is known before the policy is read.
  let handler: (req: Request) => Response | Promise<Response> = () => new Response('starting\n', { status: 503 })
  const server = serve({ fetch: (req) => handler(req), port: c.port, hostname: c.host })
  await new Promise<void>((ok, fail) => {
    server.once('listening', ok)
    server.once('error', fail)
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = c.host === '0.0.0.0' || c.host === '::' ? '127.0.0.1' : c.host.includes(':') ? `[${c.host}]` : c.host
  const url = `http://${urlHost}:${port}`

  const policyText = await readFile(c.witnessPolicyFile, 'utf8').catch((err) => {
    throw new Error(`cannot read the witness policy ${c.witnessPolicyFile}: ${err.message}; pass --witness-policy <file>`)
  })
  const { effective, policy } = loadPolicy(policyText, { vkey: bw.witness.vkey, url: `${url}/witness` }, c.witnessPolicyFile)

  const logs = new LogManager({
    backend: new LocalBackend(dataDir),
    originPrefix: c.originPrefix,
    signer: (origin) => ed25519Signer(origin, seed),
    witnesses: (origin) => {
      // The bundled witness learns every log of this service (an operator does this for external ones).
      bw.store.addLog(origin)
      bw.store.addKey(origin, ed25519Signer(origin, seed).vkey)
      return new WitnessClient({
        policy,
        timeoutMs: c.witnessTimeoutMs,
        greedy: c.witnessGreedy,
        onWitnessError: (u, message) => log.warn({ witness: u, origin, message }, 'witness did not cosign'),
      })
    },
    log: { batchMaxSize: c.batchMaxSize, batchMaxAgeMs: c.batchMaxAgeMs, logger: log },
  })

  const logService: LogService = {
    async append(space, entry) {
      try {
        const r = await (await logs.getOrCreate(space)).append(entry)
        appends.inc({ result: r.published ? 'published' : 'unpublished' })
        return r
      } catch (err) {
        appends.inc({ result: 'error' })
        throw err
      }
    },
    async read(space, offset, limit) {
      const l = await logs.get(space)
      return l ? l.read(offset, limit) : undefined
    },
  }
  const rpc = createUcanService({ signer, log: logService, maxInvocationLifetime: c.maxInvocationLifetime, logger: log })

  const info = () => ({
    did: signer.did(),
    originPrefix: c.originPrefix,
    witnessPolicy: effective,
    witnesses: policy.witnesses.map((w) => ({ name: w.name, vkey: w.vkey, url: w.url ?? null })),
    bundledWitness: { name: c.witnessName, vkey: bw.witness.vkey, url: `${url}/witness` },
    version: VERSION,
  })
  const app = createApp({
    logs,
    rpc,
    info,
    did: signer.did(),
    logVkey: (origin) => ed25519Signer(origin, seed).vkey,
    metrics,
    witness: witnessApp(bw.witness, { registry: metrics, metricsPage: false }), // its counters join /metrics
    maxBodyBytes: c.maxBodyBytes,
    onError: (err) => log.error({ err }, 'request failed'),
  })
  handler = (req) => app.fetch(req)
  log.info({ url, did: signer.did(), data: dataDir, witness: bw.witness.vkey }, 'ucanlog listening')

  return {
    url,
    did: signer.did(),
    witnessVkey: bw.witness.vkey,
    policy: effective,
    logs,
    async close() {
      await logs.close()
      await new Promise<void>((ok) => server.close(() => ok()))
      bw.close()
    },
  }
}

/** The package version, shown at /info. */
export const VERSION = '0.1.0'

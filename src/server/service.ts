/**
 * The composition root of `ucanlog serve`: keys, the bundled witness, the witness policy, the log
 * engine on the local backend, the ucanto RPC service and the Hono app, listening on one port.
 */
import { access, constants, mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client'
import { LogManager } from '../log/log-manager.js'
import { setProofBlockCacheBytes } from '../ucan/proof-blocks.js'
import { TileCache } from '../log/tile-cache.js'
import { WitnessClient } from '../log/witness-client.js'
import type { DurableIO } from '../storage/durable.js'
import { LocalBackend } from '../storage/local-backend.js'
import { PgBackend, serviceLogId } from '../storage/postgres/pg-backend.js'
import { DATABASE_RETRY_AFTER, isDatabaseUnavailable } from '../storage/postgres/errors.js'
import { type Database, openDatabase } from './database.js'
import { StorachaUploader } from '../storage/storacha-uploader.js'
import { UPLOAD_QUEUE_FILE, UploadQueue, type UploadQueueStore } from '../storage/upload-queue.js'
import { PgUploadQueue } from '../storage/postgres/pg-upload-queue.js'
import { UploadingBackend } from '../storage/uploading-backend.js'
import { sharedShardCache } from '../storage/unixfs.js'
import { ed25519Signer, ed25519Verifier } from '../tlog/index.js'
import { createPreverifyPool, createRequestPool, createUcanService, loadDelegation, type LogService } from '../ucan/index.js'
import { UcanStore } from '../ucan/store.js'
import type { ReplayGuard } from '../ucan/replay.js'
import type { RevocationIndex } from '../ucan/revocation.js'
import { openPgUcanStores, pgWitnessStore } from './pg-stores.js'
import { createAdmission, createClientLimit } from './rate-limit.js'
import { RevocationLog, revocationRoutes } from './revocations.js'
import { forwardingRpc } from './forward.js'
import { type Witness, type WitnessStore, openWitness, witnessApp } from '../../witness/index.js'
import { createApp } from './app.js'
import { EntryIndex, LOOKUP_INDEX_FILE } from './entry-index.js'
import { type ServiceConfig, ConfigError, DEFAULT_CONFIG } from './config.js'
import { didKeyOfVkey, loadServiceKey, publicKeyOf } from './keys.js'
import { StorageHealth } from './storage-health.js'
import { BUILTIN_POLICY, loadPolicy } from './policy.js'
import { type OriginPrefixSource, decideOriginPrefix } from './origin-prefix.js'
import { connectionLimits } from './connection-limits.js'
import { defaultFdReserve, readFdLimit } from './fd-budget.js'
import { type ConnectionEvent, closeListener, listen } from './listener.js'
import { witnessFetch } from './witness-fetch.js'
import { VERSION } from './version.js'

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
  /** Where the policy came from: its file, or `built-in` when the default file is absent ({@link BUILTIN_POLICY}). */
  policySource: string
  /** The origin prefix of every log (`<prefix>/logs/<space>`), kept in `<data>/origin-prefix`. */
  originPrefix: string
  /** Where the origin prefix came from (src/server/origin-prefix.ts). */
  originPrefixSource: OriginPrefixSource
  /** Start-up warnings for the operator (e.g. an origin prefix that is not host-like); also logged. */
  warnings: string[]
  logs: LogManager
  /** The logs' database URL without its password, when `databaseUrl` is set (else the logs are in the data directory). */
  database: string | undefined
  /** The Storacha uploader, when `storachaUrl` is not `off`. */
  uploader: StorachaUploader | undefined
  /** Flushes every log, stops listening and closes state. */
  close(): Promise<void>
}

/** What a caller (a test) may inject into {@link startService} besides the configuration. */
export interface ServiceHooks {
  /**
   * Clock of every rate limit (the client, agent and space token buckets, the charge memory, the
   * log-creation and revocation limits), milliseconds; default `performance.now` for the token buckets
   * (intervals only, monotonic) and `Date.now` for the charge memory (compared with invocation `exp`).
   * Invocation expiry and timeouts keep the system clock (see {@link ServiceHooks.ucanClock}).
   */
  limitsClock?: () => number
  /**
   * Clock of the service's own time checks of invocations, Unix seconds; default the system clock.
   * It drives: an invocation's `exp` (Expired) and `nbf` (NotValidBefore), the bound on its
   * lifetime (`exp − now` ≤ `maxInvocationLifetime`, InvalidExpiry), whether a replay is still
   * answered from the replay guard and when the guard forgets an invocation (its share per space
   * freed), and the time the revocation store gives new revocation records. It does NOT drive
   * ucanto's validator, which checks the delegation chain's own `exp`/`nbf` against the system
   * clock (it has no clock option), nor the cache of delegations ucanto verified (it expires them
   * on the system clock too, as ucanto would), nor rate limits ({@link ServiceHooks.limitsClock}),
   * nor any timeout. Tests move it past an invocation's `exp` instead of waiting real seconds.
   */
  ucanClock?: () => number
  /**
   * Called synchronously with what the listener does with each TCP connection (accepted, refused
   * on arrival by which cap, closed), in order: lets a test wait for the listener's verdicts
   * without sending requests of its own, which would count against the caps under test.
   */
  onConnection?: (event: ConnectionEvent) => void
  /**
   * How every file write, fsync, rename and removal of the logs, their CARs and the revocation log
   * runs (src/storage/durable.ts DurableIO); default the direct one. Tests inject failed writes
   * and fsyncs through it (issue 15 item 2, test/helpers/faulty-io.ts).
   */
  storageIO?: DurableIO
}

/**
 * Starts the service: listens on `host:port` first (so a port in use is reported before anything
 * is created), then creates the data directory, keys (0600) and state on first start, opens the
 * bundled witness, reads the witness policy (the built-in one when the default file is absent),
 * decides the origin prefix (src/server/origin-prefix.ts) and serves the app. `hooks`: see {@link ServiceHooks}.
 * @throws ConfigError for unusable settings, a port in use (EADDRINUSE) or an unusable data
 *   directory, each naming the flag to change; PolicyConfigError for a bad policy file;
 *   InsecureKeyFileError for a key file others can read; CorruptKeyFileError for one that is not a
 *   key (never quoting it); OriginPrefixConflictError for a prefix contradicting the data directory's.
 *   On any of these the port is freed.
 */
export async function startService(config: Partial<ServiceConfig> = {}, logger?: Logger, hooks: ServiceHooks = {}): Promise<RunningService> {
  const c: ServiceConfig = { ...DEFAULT_CONFIG, ...config }
  const attester = trustedAttester(c) // validated before anything is opened or listening
  internalUrl(c.internalUrl, '') // --internal-url validated before anything is opened
  if (c.maxResponseBytesInFlight < c.maxResponseBytes) {
    throw new ConfigError('--max-response-bytes-in-flight / UCANLOG_MAX_RESPONSE_BYTES_IN_FLIGHT must be at least --max-response-bytes')
  }
  // Connection caps within the descriptor budget (ConfigError before anything is opened).
  const { budget, ...limits } = connectionLimits(c, readFdLimit(), defaultFdReserve(c.maxOpenLogs + 1)) // + the revocation log
  const log = logger ?? pino({ level: c.logLevel })
  const dataDir = resolve(c.dataDir)
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const appends = new Counter({ name: 'ucanlog_appends_total', help: 'tlog/append results by outcome', labelNames: ['result'], registers: [metrics] })

  // Listen first, before anything is created in the data directory: a port in use is reported
  // with nothing left behind, and (port 0 picks one) the bundled witness URL is known before the
  // policy is read. Requests get 503 until the app is ready.
  let handler: (req: Request, env: unknown) => Response | Promise<Response> = () => new Response('starting\n', { status: 503 })
  const preverified = new Counter({ name: 'ucanlog_preverify_requests_total', help: 'requests handed to the pre-verification workers, by who checked their signatures (worker; main-thread: pool busy, failed or closed)', labelNames: ['by'], registers: [metrics] })
  const requestRoutes = new Counter({ name: 'ucanlog_request_workers_total', help: 'RPC requests offered to the request workers, by where they ran (worker; fallback: not only appends, run on the main thread; main-thread: no worker answered; busy: refused 503)', labelNames: ['by'], registers: [metrics] })
  const witnessFailures = new Counter({ name: 'ucanlog_witness_failures_total', help: 'checkpoint cosigning rounds a policy witness did not cosign (error, timeout, invalid answer), by witness name', labelNames: ['witness'], registers: [metrics] })
  const refused = new Counter({ name: 'ucanlog_connections_refused_total', help: 'connections closed on arrival, by cap', labelNames: ['cap'], registers: [metrics] })
  // env carries the node:http request, whose socket gives the client address.
  const server = await listen({ fetch: (req, env) => handler(req, env), port: c.port, hostname: c.host, limits, onRefused: (cap) => refused.inc({ cap }), onConnection: hooks.onConnection }).catch(
    (err: NodeJS.ErrnoException) => {
      throw listenError(c, err)
    },
  )
  log.info({ fdLimit: budget ? (Number.isFinite(budget.limit) ? budget.limit : 'unlimited') : 'unknown', fdReserved: budget?.reserved, ...limits }, 'descriptor budget and connection limits')
  const port = (server.address() as AddressInfo).port
  const urlHost = c.host === '0.0.0.0' || c.host === '::' ? '127.0.0.1' : c.host.includes(':') ? `[${c.host}]` : c.host
  const url = `http://${urlHost}:${port}`

  // Keys, the bundled witness, the policy and the origin prefix; on any failure the port is freed.
  let bw: { witness: Witness; store: WitnessStore; close(): void } | undefined
  let db: Database | undefined
  let started: Awaited<ReturnType<typeof prepare>>
  const prepare = async () => {
    await usableDataDir(dataDir)
    // The logs' database (--database-url), its schema migrated before anything is served.
    if (c.databaseUrl !== '') db = await openDatabase(c, log)
    const { signer, seed, created } = await loadServiceKey(join(dataDir, 'service.key'))
    if (created) log.info({ did: signer.did(), file: join(dataDir, 'service.key') }, 'created service key')
    // The bundled witness, in-process, mounted at /witness on the same listener; its state in the
    // database when there is one (one witness identity shared by the instances: same witness.key).
    const witnessState = db ? { store: pgWitnessStore(db.pool) as WitnessStore } : { dbFile: join(dataDir, 'witness.db') }
    bw = await openWitness({ name: c.witnessName, keyFile: join(dataDir, 'witness.key'), ...witnessState })
    const { text: policyText, source: policySource } = await readPolicyFile(c.witnessPolicyFile)
    const { effective, policy } = loadPolicy(policyText, { vkey: bw.witness.vkey, url: `${url}/witness` }, policySource)
    const prefix = await decideOriginPrefix({ dataDir, configured: c.originPrefix, publicKey: publicKeyOf(signer), keyCreated: created })
    if (prefix.warning) log.warn({ originPrefix: prefix.prefix }, prefix.warning)
    return { signer, seed, bw, effective, policy, policySource, prefix }
  }
  try {
    started = await prepare()
  } catch (err) {
    bw?.close()
    await db?.close().catch(() => {})
    await closeListener(server)
    throw err
  }
  const { signer, seed, effective, policy, policySource, prefix } = started
  const originPrefix = prefix.prefix
  const bundled = started.bw

  // Storacha uploads (opt-in): a durable queue fed by every CAR packed: in the data directory, or
  // with a database there, drained by every instance (pg-upload-queue.ts; claims last a lease).
  let uploader: StorachaUploader | undefined
  let uploadQueue: (UploadQueueStore & { readonly isOpen: boolean; close(): void | Promise<void> }) | undefined
  const local = new LocalBackend(dataDir, { io: hooks.storageIO, cacheBytes: c.sqliteCacheBytes })
  if (c.storachaUrl !== 'off') {
    const target = storachaTarget(c)
    uploadQueue = db
      ? new PgUploadQueue(db.pool, { keepDone: c.uploadKeepDone, claimMs: c.databaseLeaseMs })
      : new UploadQueue(join(dataDir, UPLOAD_QUEUE_FILE), { keepDone: c.uploadKeepDone, cacheBytes: c.sqliteCacheBytes })
    const attempts = new Counter({ name: 'ucanlog_upload_attempts_total', help: 'checkpoint CAR upload attempts, by result (ok, or the failure name: StorachaUnavailable, NoDelegation, …)', labelNames: ['result'], registers: [metrics] })
    const backlogFull = new Counter({ name: 'ucanlog_upload_backlog_refusals_total', help: 'appends refused UploadBacklogFull: their log had --upload-backlog-max checkpoints waiting for upload', registers: [metrics] })
    uploader = new StorachaUploader({
      queue: uploadQueue,
      signer,
      target,
      retryMaxMs: c.uploadRetryMaxMs,
      concurrency: c.uploadConcurrency,
      batchCheckpoints: c.uploadBatchCheckpoints,
      batchBytes: c.uploadBatchBytes,
      backlogMax: c.uploadBacklogMax,
      logger: log,
      onAttempt: (result) => attempts.inc({ result }),
      onBacklogFull: () => backlogFull.inc(),
    })
    const queue = uploadQueue
    // Read from the queue database at each scrape (one grouped scan of the pending jobs).
    const none = { pendingCheckpoints: 0, lagEntries: 0, failingLogs: 0 }
    const totals = async () => (queue.isOpen ? await Promise.resolve(queue.totals()).catch(() => none) : none)
    new Gauge({ name: 'ucanlog_upload_pending_checkpoints', help: 'checkpoint CARs packed but not yet stored in their Storacha space, over every log', registers: [metrics], async collect() { this.set((await totals()).pendingCheckpoints) } })
    new Gauge({ name: 'ucanlog_upload_lag_entries', help: 'entries published but not yet in their Storacha space, summed over every log (each log: /logs/<space>/head upload.lagEntries)', registers: [metrics], async collect() { this.set((await totals()).lagEntries) } })
    new Gauge({ name: 'ucanlog_upload_failing_logs', help: 'logs whose oldest pending upload failed its last attempt', registers: [metrics], async collect() { this.set((await totals()).failingLogs) } })
  }
  /** Every log's checkpoint signer: the service key under the log's origin as key name (one per origin, reused). */
  // Bounded (most recently used kept): one per log ever used would grow with every fresh-key space.
  const signers = new Map<string, ReturnType<typeof ed25519Signer>>()
  const maxSigners = 4 * (c.maxOpenLogs + 1)
  const logSigner = (origin: string) => {
    let signer = signers.get(origin)
    if (signer) signers.delete(origin)
    else signer = ed25519Signer(origin, seed)
    signers.set(origin, signer)
    if (signers.size > maxSigners) signers.delete(signers.keys().next().value as string)
    return signer
  }
  // The bundled witness's HTTP handler: served at /witness, and called in-process by the logs' witness clients.
  const bundledWitness = witnessApp(bundled.witness, {
    registry: metrics, // its counters join /metrics
    metricsPage: false,
    // With a database, its state unreachable is 503 + Retry-After, as for every route.
    ...(db && { unavailable: (err: unknown) => (isDatabaseUnavailable(err) ? DATABASE_RETRY_AFTER : undefined) }),
  })
  const fetchWitness = witnessFetch(`${url}/witness`, (req) => bundledWitness.fetch(req))
  /** The witness client of one log; the bundled witness learns every log of this service (an operator does this for external ones). */
  const witnessesFor = (origin: string) => {
    // Registered before the witness is first asked (at once for the SQLite store; a PostgreSQL one
    // answers later, so the log's witness requests wait for it, and a failure is tried again).
    let registered: Promise<unknown> | undefined
    const register = () =>
      (registered ??= (async () => {
        await bundled.store.addLog(origin)
        await bundled.store.addKey(origin, logSigner(origin).vkey)
      })().catch((err: unknown) => {
        registered = undefined
        throw err
      }))
    register().catch(() => {}) // reported by the witness request that waits for it
    return new WitnessClient({
      policy,
      timeoutMs: c.witnessTimeoutMs,
      greedy: c.witnessGreedy,
      fetch: async (input, init) => {
        await register()
        return fetchWitness(input, init)
      },
      // Logged once per failure episode (and its end), counted every time: a witness down for an hour
      // is one line per log, not one per checkpoint.
      onWitnessFailure: ({ name, url, message, episodeStart }) => {
        witnessFailures.inc({ witness: name })
        if (episodeStart) log.warn({ witness: name, url, origin, message }, 'witness failing')
      },
      onWitnessRecovered: ({ name, url }) => log.info({ witness: name, url, origin }, 'witness recovered'),
    })
  }
  // With a database, every log (and the revocation log) lives there, written under per-log leases.
  // Each lease row names this instance's URL, so the others forward appends of its logs to it (forward.ts).
  const leaseLost = new Counter({ name: 'ucanlog_lease_lost_total', help: "logs this instance found it had lost to another instance (a write refused by the lease's fencing token, a renewal refused, or a release finding the lease taken)", registers: [metrics] })
  // With uploads on, each pack queues its CAR in the pack's own transaction and wakes the uploader.
  const uploads = uploader && { queued: () => uploader!.poke() }
  const pgBackend = db ? new PgBackend(db.pool, { leaseMs: c.databaseLeaseMs, logger: log, url: internalUrl(c.internalUrl, url), onLost: () => leaseLost.inc(), ...(uploads && { uploads }) }) : undefined
  const backend = pgBackend ?? (uploader && uploadQueue instanceof UploadQueue ? new UploadingBackend(local, uploader, uploadQueue) : local)
  // The engine's caches, shared by every log and bounded by bytes (src/log/tile-cache.ts, src/storage/unixfs.ts).
  const tileCache = new TileCache({ bytes: c.tileCacheBytes, upperBytes: c.upperTileCacheBytes })
  sharedShardCache(c.shardCacheBytes)
  setProofBlockCacheBytes(c.proofBlockCacheBytes)
  const logs = new LogManager({
    backend,
    originPrefix,
    signer: logSigner,
    verifier: (origin) => ed25519Verifier(logSigner(origin).vkey),
    witnesses: witnessesFor,
    log: { batchMaxSize: c.batchMaxSize, batchMaxAgeMs: c.batchMaxAgeMs, maxEntries: c.maxLogEntries, tileCache, logger: log },
    maxOpenLogs: c.maxOpenLogs,
    maxLogs: c.maxLogs,
    // With a database, an idle log is closed and its lease let go, so other instances can write it.
    ...(pgBackend && { idleCloseMs: c.databaseIdleReleaseMs }),
    admitCreate: createClientLimit({ rate: c.logCreateRate, burst: c.logCreateBurst, now: hooks.limitsClock }),
    onPublished: (id, size, rootHash) => {
      entryIndex.schedule(id)
      // The explorer's chart (checkpoint-history.ts): informational, so a failure is only logged.
      try {
        entryIndex.history.record(id, { size, rootHash, time: Math.floor(Date.now() / 1000) })
      } catch (err) {
        log.warn({ err, log: id }, 'checkpoint history not recorded')
      }
    },
  })
  // The lookup index (entry-index.ts): derived from the published bundles, caught up after each publication.
  const entryIndex = EntryIndex.open(join(dataDir, LOOKUP_INDEX_FILE), {
    published: (id) => logs.published(id),
    maxResults: c.lookupMaxResults,
    catchUpEntries: c.lookupCatchUpEntries,
    historyMaxPoints: c.historyMaxPoints,
    cacheBytes: c.sqliteCacheBytes,
    onError: (err, id) => log.warn({ err, log: id }, 'lookup index catch-up failed; retried at the next publication or lookup'),
  })

  const storage = new StorageHealth({ logger: log })
  const logService: LogService = {
    async append(space, entry, meta) {
      try {
        // The Agent→Service delegation of the log's most recent append is kept (durably) for its uploads.
        await uploader?.rememberDelegation(space, await loadDelegation(meta.delegation))
        const lease = (await logs.acquire(space, { create: true, client: meta.client }))!
        try {
          const r = await lease.log.append(entry)
          appends.inc({ result: r.published ? 'published' : 'unpublished' })
          storage.succeeded()
          return r
        } finally {
          lease.release()
        }
      } catch (err) {
        appends.inc({ result: 'error' })
        // A full disk is answered StorageFull (and shown at /healthz), not InternalError.
        throw storage.failed(err)
      }
    },
    async read(space, offset, limit, maxBytes) {
      // Read-only: never opens the log (log-manager.ts LogManager.published).
      const p = await logs.published(space)
      if (p) return { entries: await p.read(offset, limit, maxBytes), total: p.checkpoint.size }
      return (await logs.exists(space)) ? { entries: [], total: 0 } : undefined
    },
    async create(space, meta) {
      const lease = (await logs.acquire(space, { create: true, client: meta?.client }))!
      lease.release()
      const l = lease.log
      return { logId: l.id, origin: l.origin, vkey: logSigner(l.origin).vkey, treeSize: l.treeSize }
    },
    reserve: async (space, meta) => {
      // A log whose upload backlog is at --upload-backlog-max is refused UploadBacklogFull (its delegation kept first).
      await uploader?.admit(space, meta.delegation && (await loadDelegation(meta.delegation)))
      return (await logs.acquire(space, { create: true, client: meta.client }))!
    },
    creationRefusal: (space, meta) => logs.creationRefusal(space, meta.client),
  }
  // UCAN state: revocations (also in their own transparency log) and seen invocations, durable; with
  // a database, shared there by every instance (src/server/pg-stores.ts), else in <data>/ucan.db.
  const ucanOptions = { maxReplayPerOwner: c.replayPerSpace, maxUncommittedOutcomes: c.replayUncommitted, maxRevocationsPerScope: c.revocationsPerScope, now: hooks.ucanClock, cacheBytes: c.sqliteCacheBytes }
  const ucanStore: { replay: ReplayGuard; revocations: RevocationIndex; close(): void | Promise<void> } = db
    ? await openPgUcanStores(db.pool, ucanOptions)
    : UcanStore.open(join(dataDir, 'ucan.db'), ucanOptions)
  const revocationLog = await RevocationLog.open({
    backend,
    originPrefix,
    signer: logSigner,
    witnesses: witnessesFor,
    store: ucanStore.revocations,
    log: { batchMaxSize: c.batchMaxSize, batchMaxAgeMs: c.batchMaxAgeMs, tileCache, logger: log },
    ...(pgBackend && { idleCloseMs: c.databaseIdleReleaseMs, release: () => pgBackend.releaseServiceLog('revocations') }),
  }).catch(async (err: unknown) => {
    // E.g. LeaseHeld: another instance writes this database's revocation log. Close what is open
    // (the database pool, the listener, …) so the process can exit with the error.
    await logs.close()
    await entryIndex.close()
    await ucanStore.close()
    await pgBackend?.close()
    await uploader?.close()
    await uploadQueue?.close()
    await db?.close()
    await closeListener(server)
    bundled.close()
    throw err
  })
  // Signature checks of RPC requests on the other cores (src/ucan/preverify-pool.ts).
  const preverifyPool =
    c.verifyWorkers > 0
      ? createPreverifyPool({ workers: c.verifyWorkers, maxInvocations: c.maxInvocationsPerRequest, proofBlockCacheBytes: c.proofBlockCacheBytes, onError: (err) => log.warn({ err }, 'pre-verification worker failed; its requests are checked on the main thread') })
      : undefined
  // Whole append requests on the other cores, this thread only sequencing (src/ucan/request-pool.ts).
  const reservedSpaces = [didKeyOfVkey(bundled.witness.vkey)]
  const requestPool =
    c.requestWorkers > 0
      ? createRequestPool({
          workers: c.requestWorkers,
          maxQueue: c.requestWorkerQueue,
          settings: { signer: signer.encode(), maxInvocationLifetime: c.maxInvocationLifetime, reservedSpaces, maxInvocations: c.maxInvocationsPerRequest, maxVerifiedUcans: c.verifiedUcans, maxVerifiedUcanBytes: c.verifiedUcanBytes, proofBlockCacheBytes: c.proofBlockCacheBytes },
          onError: (err) => log.warn({ err }, 'request worker failed; its requests run on the main thread'),
        })
      : undefined
  // The worker threads' heaps, which nodejs_heap_* (this thread's) leave out: asked at each scrape.
  new Gauge({
    name: 'ucanlog_worker_heap_bytes',
    help: "V8 heap of the running worker threads, summed per pool (request, preverify) and kind (used: live and not yet collected objects; total: reserved), bytes; each thread's old generation is capped (src/ucan/request-pool.ts REQUEST_WORKER_HEAP_LIMITS)",
    labelNames: ['pool', 'kind'],
    registers: [metrics],
    async collect() {
      for (const [pool, p] of [['request', requestPool], ['preverify', preverifyPool]] as const) {
        if (p === undefined) continue
        const h = await p.heap()
        this.set({ pool, kind: 'used' }, h.used)
        this.set({ pool, kind: 'total' }, h.total)
      }
    },
  })
  // The engine's byte-bounded caches, so an operator (and the soak) can tell a cache filling to its
  // knob from memory growing without bound.
  new Gauge({
    name: 'ucanlog_cache_bytes',
    help: 'bytes held by each of the engine\'s byte-bounded caches, as counted against its knob: tile (level-0 hash tiles, --tile-cache-bytes), upper_tile (--upper-tile-cache-bytes), shard (encoded HAMT shard nodes, --shard-cache-bytes)',
    labelNames: ['cache'],
    registers: [metrics],
    collect() {
      const tiles = tileCache.bytes
      this.set({ cache: 'tile' }, tiles.leaves)
      this.set({ cache: 'upper_tile' }, tiles.upper)
      this.set({ cache: 'shard' }, sharedShardCache().bytes)
    },
  })
  const rpc = createUcanService({
    signer,
    log: logService,
    maxInvocationLifetime: c.maxInvocationLifetime,
    now: hooks.ucanClock,
    logger: log,
    onStorageFull: (cause) => void storage.failed(cause),
    revocations: revocationLog,
    revocationRecorder: revocationLog,
    replay: ucanStore.replay,
    attester,
    // The service DID is always refused as a space; the bundled witness's key is the service's too.
    reservedSpaces,
    maxInvocationsPerRequest: c.maxInvocationsPerRequest,
    maxVerifiedUcans: c.verifiedUcans,
    maxVerifiedUcanBytes: c.verifiedUcanBytes,
    ...(preverifyPool && {
      preverify: async (body: Uint8Array, contentType: string) => {
        const pre = await preverifyPool.run(body, contentType)
        preverified.inc({ by: pre === undefined ? 'main-thread' : 'worker' })
        return pre
      },
    }),
    ...(requestPool && { requestPool, onRequestRoute: (by: string) => requestRoutes.inc({ by }) }),
    refusalDelayMs: c.refusalDelayMs,
    admitRevocation: createClientLimit({ rate: c.revokeRate, burst: c.revokeBurst, now: hooks.limitsClock }),
    admission: createAdmission({
      client: { rate: c.clientRate, burst: c.clientBurst, now: hooks.limitsClock },
      agent: { rate: c.agentRate, burst: c.agentBurst, now: hooks.limitsClock },
      space: { rate: c.spaceRate, burst: c.spaceBurst, now: hooks.limitsClock },
      concurrency: c.clientConcurrency,
      globalConcurrency: c.authorizeConcurrency,
      queueTotal: c.maxQueuedRequests,
      queueWaitMs: c.maxQueueWaitMs,
      memory: c.chargeMemory,
      now: hooks.limitsClock,
    }),
    maxResponseBytes: c.maxResponseBytes,
    maxResponseBytesInFlight: c.maxResponseBytesInFlight,
  })

  /** Every log's upload status, for /info. */
  const uploadLogs = async () => {
    const out: Record<string, unknown> = {}
    for (const s of await uploadQueue!.spaces()) out[s] = await uploader!.status(s)
    return out
  }
  const info = async () => ({
    did: signer.did(),
    originPrefix,
    witnessPolicy: effective,
    witnesses: policy.witnesses.map((w) => ({ name: w.name, vkey: w.vkey, url: w.url ?? null })),
    bundledWitness: { name: c.witnessName, vkey: bundled.witness.vkey, url: `${url}/witness` },
    revocations: { origin: revocationLog.origin, vkey: logSigner(revocationLog.origin).vkey, url: `${url}/revocations` },
    attester: attester ?? null,
    version: VERSION,
    storacha: uploader
      ? { url: uploader.target.url, did: uploader.target.did, receiptsEndpoint: uploader.target.receiptsEndpoint, logs: await uploadLogs() }
      : null,
  })
  // With a database, an append for a log another instance writes goes to that instance, and a
  // ucan/revoke to the instance writing the revocation log (forward.ts).
  const forwarded = new Counter({ name: 'ucanlog_forwarded_requests_total', help: 'append and revoke requests sent on to the instance holding their log, by result (ok, unreachable, timeout)', labelNames: ['result'], registers: [metrics] })
  const revocationLogId = serviceLogId('revocations')
  const rpcEntry = pgBackend
    ? forwardingRpc({
        rpc,
        secret: seed,
        revocationLog: revocationLogId,
        otherHolder: (id) => pgBackend.otherHolder(id),
        openHere: (id) => (id === revocationLogId ? revocationLog.isOpen : logs.isOpen(id)),
        hold: async (id) => {
          if (id === revocationLogId) return revocationLog.hold()
          const lease = await logs.acquire(id)
          return lease && (() => lease.release())
        },
        timeoutMs: 2 * c.databaseLeaseMs,
        onForward: (result) => forwarded.inc({ result }),
      })
    : rpc
  const app = createApp({
    logs,
    storageFull: () => storage.full(),
    ...(db && { database: () => db!.health() }),
    rpc: rpcEntry,
    info,
    did: signer.did(),
    logVkey: (origin) => logSigner(origin).vkey,
    metrics,
    uploadStatus: uploader ? (space: string) => uploader!.status(space) ?? null : undefined,
    witness: bundledWitness,
    maxBodyBytes: c.maxBodyBytes,
    revocations: revocationRoutes(revocationLog, logSigner(revocationLog.origin).vkey),
    otherLogs: () => [{ origin: revocationLog.origin, vkey: logSigner(revocationLog.origin).vkey }],
    onError: (err) => log.error({ err }, 'request failed'),
    entryIndex,
    entriesPageMax: c.entriesPageMax,
    entriesPageBytes: c.entriesPageBytes,
  })
  handler = (req, env) => app.fetch(req, env as never)
  // Damaged logs show at /healthz without waiting for a request: every log's state, in the background.
  const checking = logs.checkAll().then(
    (n) => log.info({ checked: n, damaged: logs.damaged().length }, 'checked the stored state of every log'),
    (err) => log.error({ err }, 'checking the logs failed'),
  )
  let catchUp: Promise<void> = Promise.resolve()
  if (uploader && uploadQueue instanceof PgUploadQueue) {
    // PostgreSQL: a pack and its queue row are one transaction; CARs packed while uploads were off are queued now.
    const queue = uploadQueue
    const u = uploader
    catchUp = queue.catchUp().then(
      (n) => void (n > 0 && log.info({ queued: n }, 'queued checkpoint CARs packed while uploads were off')),
      (err) => log.error({ err }, 'queueing checkpoint CARs packed while uploads were off failed'),
    ).finally(() => u.start())
  } else if (uploader) {
    uploader.start()
    // Open every log, one at a time, so CARs packed but never queued (a crash in between) get
    // queued, and checkpoints published but never packed get packed.
    catchUp = (async () => {
      for (const id of await logs.list()) {
        const lease = await logs.acquire(id).catch((err) => log.warn({ err, log: id }, 'upload catch-up: cannot open log'))
        if (!lease) continue
        await lease.log.settled()
        lease.release()
      }
    })().catch((err) => log.error({ err }, 'opening logs for upload catch-up failed'))
  }
  log.info({ url, did: signer.did(), data: dataDir, witness: bundled.witness.vkey, ...(db && { database: db.url }) }, 'ucanlog listening')

  return {
    url,
    did: signer.did(),
    witnessVkey: bundled.witness.vkey,
    policy: effective,
    policySource,
    originPrefix,
    originPrefixSource: prefix.source,
    warnings: prefix.warning ? [prefix.warning] : [],
    logs,
    uploader,
    database: db?.url,
    async close() {
      await preverifyPool?.close()
      await requestPool?.close()
      await logs.close()
      await entryIndex.close()
      await checking
      await catchUp
      await revocationLog.close()
      await pgBackend?.close()
      await ucanStore.close()
      await uploader?.close()
      await uploadQueue?.close()
      await db?.close()
      await closeListener(server)
      bundled.close()
    },
  }
}

/** The Storacha target of a config, validated; `auto` receipts = `<storachaUrl>/receipt/`. */
function storachaTarget(c: ServiceConfig): { url: string; did: string; receiptsEndpoint: string } {
  const url = parseUrl(c.storachaUrl, '--storacha-url / UCANLOG_STORACHA_URL')
  const receipts = c.storachaReceipts === 'auto' ? new URL('/receipt/', url).toString() : parseUrl(c.storachaReceipts, '--storacha-receipts / UCANLOG_STORACHA_RECEIPTS')
  if (!/^did:[a-z0-9]+:\S+$/.test(c.storachaDid)) throw new ConfigError(`--storacha-did / UCANLOG_STORACHA_DID must be a DID, got ${JSON.stringify(c.storachaDid)}`)
  return { url, did: c.storachaDid, receiptsEndpoint: receipts.endsWith('/') ? receipts : `${receipts}/` }
}

function parseUrl(s: string, knob: string): string {
  try {
    const u = new URL(s)
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.toString()
  } catch {}
  throw new ConfigError(`${knob} must be an http(s) URL or off, got ${JSON.stringify(s)}`)
}

/**
 * The trusted `ucan/attest` issuer from `--attester-did` and `--attester-key`: both or neither;
 * the key must be an Ed25519 did:key.
 * @throws ConfigError
 */
function trustedAttester(c: ServiceConfig): { did: `did:${string}:${string}`; key: `did:key:${string}` } | undefined {
  if (c.attesterDid === '' && c.attesterKey === '') return undefined
  if (!/^did:[a-z0-9]+:\S+$/.test(c.attesterDid)) {
    throw new ConfigError(`--attester-did / UCANLOG_ATTESTER_DID must be a DID when --attester-key is set, got ${JSON.stringify(c.attesterDid)}`)
  }
  if (!/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{40,50}$/.test(c.attesterKey)) {
    throw new ConfigError(`--attester-key / UCANLOG_ATTESTER_KEY must be the attester's Ed25519 did:key, got ${JSON.stringify(c.attesterKey)}`)
  }
  return { did: c.attesterDid as `did:${string}:${string}`, key: c.attesterKey as `did:key:${string}` }
}

/** A listener error as the operator should read it: the address, the cause and the next step. */
function listenError(c: ServiceConfig, err: NodeJS.ErrnoException): Error {
  const where = `${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`
  if (err.code === 'EADDRINUSE') {
    return new ConfigError(`cannot listen on ${where}: the port is already in use (EADDRINUSE); stop the other process or choose another --port / UCANLOG_PORT (0 picks a free one)`)
  }
  if (err.code === 'EACCES') return new ConfigError(`cannot listen on ${where}: not permitted (EACCES); choose a port above 1023 with --port / UCANLOG_PORT`)
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
    return new ConfigError(`cannot listen on ${where}: no such local address (${err.code}); choose another --host / UCANLOG_HOST`)
  }
  return new ConfigError(`cannot listen on ${where}: ${err.message}; check --host and --port`)
}

/**
 * Creates the data directory if needed and checks it is a writable directory.
 * @throws ConfigError naming the directory, the cause and the next step.
 */
async function usableDataDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true })
    await access(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`cannot use the data directory ${dir} (${code}): it must be a writable directory; choose another --data / UCANLOG_DATA or fix its permissions`)
  }
}

/**
 * The witness policy text: the file, or {@link BUILTIN_POLICY} when the file is the default
 * (`./witness_policy.txt`, relative to the working directory) and absent, so `serve` runs outside
 * the checkout. A file named explicitly must exist.
 * @returns the text and its source (the file name, or `built-in`).
 * @throws Error naming the file and the flag.
 */
async function readPolicyFile(file: string): Promise<{ text: string; source: string }> {
  try {
    return { text: await readFile(file, 'utf8'), source: file }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file === DEFAULT_CONFIG.witnessPolicyFile) return { text: BUILTIN_POLICY, source: 'built-in' }
    throw new ConfigError(`cannot read the witness policy ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass --witness-policy <file> / UCANLOG_WITNESS_POLICY`)
  }
}

/** The URL other instances forward to (`--internal-url`, else the listening URL), without a trailing `/`. @throws ConfigError unless http(s) */
function internalUrl(configured: string, listening: string): string {
  if (configured === '') return listening
  let u: URL
  try {
    u = new URL(configured)
  } catch {
    throw new ConfigError('--internal-url / UCANLOG_INTERNAL_URL must be an http(s) URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('--internal-url / UCANLOG_INTERNAL_URL must be an http(s) URL')
  return configured.replace(/\/+$/, '')
}

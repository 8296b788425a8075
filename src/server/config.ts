/**
 * Every knob of `ucanlog serve`, with its unit and default. Each is a CLI flag and an environment
 * variable (flags win); both are validated once here, at start.
 */
import { DEFAULT_BATCH_MAX_AGE_MS, DEFAULT_BATCH_MAX_SIZE, DEFAULT_MAX_ENTRIES } from '../log/log.js'
import { DEFAULT_LOG_CREATE_BURST, DEFAULT_LOG_CREATE_RATE, DEFAULT_MAX_LOGS, DEFAULT_MAX_OPEN_LOGS } from '../log/log-manager.js'
import { AUTO_ORIGIN_PREFIX } from './origin-prefix.js'
import { DEFAULT_WITNESS_TIMEOUT_MS } from '../log/witness-client.js'
import { DEFAULT_TILE_CACHE_BYTES, DEFAULT_UPPER_TILE_CACHE_BYTES } from '../log/tile-cache.js'
import { DEFAULT_SHARD_CACHE_BYTES } from '../storage/unixfs.js'
import { DEFAULT_SQLITE_CACHE_BYTES } from '../storage/sqlite-cache.js'
import { DEFAULT_MAX_BODY_BYTES } from './app.js'
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS } from './listener.js'
import { DEFAULT_MAX_INVOCATIONS_PER_REQUEST, DEFAULT_REFUSAL_DELAY_MS } from '../ucan/service.js'
import { DEFAULT_REPLAY_PER_SPACE } from '../ucan/replay.js'
import { DEFAULT_REPLAY_UNCOMMITTED } from '../ucan/sqlite-replay.js'
import { availableParallelism } from 'node:os'
import { DEFAULT_ENTRIES_PAGE_BYTES, DEFAULT_ENTRIES_PAGE_MAX } from './read-routes.js'
import { DEFAULT_LOOKUP_CATCH_UP_ENTRIES, DEFAULT_LOOKUP_MAX_RESULTS } from './entry-index.js'
import { DEFAULT_HISTORY_MAX_POINTS } from './checkpoint-history.js'
import { DEFAULT_MAX_VERIFIED_UCAN_BYTES, DEFAULT_MAX_VERIFIED_UCANS } from '../ucan/verified-ucans.js'
import { DEFAULT_PROOF_BLOCK_CACHE_BYTES } from '../ucan/proof-blocks.js'
import { DEFAULT_REVOCATIONS_PER_SCOPE, DEFAULT_REVOKE_BURST, DEFAULT_REVOKE_RATE } from '../ucan/revocation.js'
import { DEFAULT_AGENT_BURST, DEFAULT_AGENT_RATE, DEFAULT_CHARGE_MEMORY, DEFAULT_CLIENT_BURST, DEFAULT_CLIENT_RATE, DEFAULT_SPACE_BURST, DEFAULT_SPACE_RATE } from './rate-limit.js'
import { DEFAULT_AUTHORIZE_CONCURRENCY, DEFAULT_CLIENT_CONCURRENCY, DEFAULT_MAX_QUEUED_REQUESTS } from './fair-scheduler.js'
import { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT } from '../ucan/response-budget.js'
import { DEFAULT_IDLE_RELEASE_MS, DEFAULT_LEASE_MS } from '../storage/postgres/lease.js'
import { DEFAULT_RECEIPTS_ENDPOINT, DEFAULT_STORACHA_DID, DEFAULT_STORACHA_URL, DEFAULT_UPLOAD_BATCH_BYTES, DEFAULT_UPLOAD_BATCH_CHECKPOINTS, DEFAULT_UPLOAD_CONCURRENCY, DEFAULT_UPLOAD_RETRY_MAX_MS } from '../storage/storacha-uploader.js'
import { DEFAULT_UPLOAD_BACKLOG_MAX, DEFAULT_UPLOAD_KEEP_DONE } from '../storage/upload-queue.js'

/** Every knob of `ucanlog serve`, resolved; units are in each field's comment. */
export interface ServiceConfig {
  /** TCP port (0 picks a free one). */
  port: number
  /** Listen address. */
  host: string
  /** Concurrent client connections in total; 0 = from the descriptor budget (src/server/fd-budget.ts). Over → closed on arrival. */
  maxConnections: number
  /** Concurrent connections per client address (IPv6: per /64); 0 = a quarter of maxConnections. Over → that client's new connection is closed. */
  maxConnectionsPerClient: number
  /** Longest wait for a request's headers, ms (then 408 and close). */
  headersTimeoutMs: number
  /** Longest wait for a whole request, headers and body, ms (then 408 and close). */
  requestTimeoutMs: number
  /** Idle keep-alive connections are closed after this, ms. */
  keepAliveTimeoutMs: number
  /** A connection with no bytes moving either way for this long is closed, ms. */
  idleTimeoutMs: number
  /** Data directory: keys, logs, CARs, witness state. */
  dataDir: string
  /** Witness policy file (c2sp.org/tlog-policy); the default one, when absent, means the built-in policy (src/server/policy.ts BUILTIN_POLICY). */
  witnessPolicyFile: string
  /**
   * Origin prefix: origins are `<prefix>/logs/<spaceDID>`. `auto` (the default): the data
   * directory's, else derived from the service key (src/server/origin-prefix.ts).
   */
  originPrefix: string
  /** Maximum entries per batch. */
  batchMaxSize: number
  /** Maximum age of a batch, ms. */
  batchMaxAgeMs: number
  /** Most entries one space's log may hold (its disk bound); past it, that space's appends → LogFull. */
  maxLogEntries: number
  /** Per-witness request timeout, ms. */
  witnessTimeoutMs: number
  /** Wait for every witness (until the timeout) instead of stopping once the quorum is met. */
  witnessGreedy: boolean
  /** Key name of the bundled witness's cosignatures (URL-like, c2sp.org/signed-note). */
  witnessName: string
  /** Maximum RPC request body, bytes. */
  maxBodyBytes: number
  /** Maximum invocation lifetime accepted (exp − now), seconds. */
  maxInvocationLifetime: number
  /** Maximum invocations in one RPC request (more → 413). */
  maxInvocationsPerRequest: number
  /** Sustained invocations per second per agent (verified issuer, each signed invocation charged once); 0 = unlimited. Over → 429 / RateLimited. */
  /** Bytes of entry text (base64) all `tlog/read`s of one RPC request may return together. */
  maxResponseBytes: number
  /** Bytes of read responses all requests in flight may hold together (≥ maxResponseBytes; over → 503). */
  maxResponseBytesInFlight: number
  agentRate: number
  /** Burst of invocations per agent. */
  agentBurst: number
  /** Sustained authorized writes per second per space (`with`); 0 = unlimited. Over → 429 / RateLimited. */
  spaceRate: number
  /** Burst of authorized writes per space. */
  spaceBurst: number
  /** Most unexpired invocations the replay guard remembers per space; at it, that space's appends → TooManyPendingInvocations. */
  replayPerSpace: number
  /** Most replay-guard outcomes kept in memory after their commit failed (full or failing disk), to be committed again; past it the oldest is dropped (its retry answered as unknown). */
  replayUncommitted: number
  /** Most revocation records per principal (`ucan/revoke`'s with); past it, that principal's new revocations → TooManyRevocations. */
  revocationsPerScope: number
  /** Sustained revocations recorded per second per client address; 0 = unlimited. Over → RateLimited / 429. */
  revokeRate: number
  /** Burst of revocations recorded per client address. */
  revokeBurst: number
  /** Sustained invocations per second per client address (every invocation, before any work); 0 = unlimited. Over → 429. */
  clientRate: number
  /** Burst of invocations per client address. */
  clientBurst: number
  /** Most authorizations in progress at once per client address (others wait). */
  clientConcurrency: number
  /** Most requests and invocations worked on at once in the whole service (freed turns go round-robin across client addresses). */
  authorizeConcurrency: number
  /** Most requests and invocations waiting for a turn, all client addresses together; at it the address with the most waiting is refused or shed → 503 ServiceBusy. */
  maxQueuedRequests: number
  /** Longest wait of a request or invocation for its turn, ms; 0 = unbounded. Past it → 503 ServiceBusy. */
  maxQueueWaitMs: number
  /** Most signed invocations remembered as charged to their issuer (replays of them cost only the sender's address). */
  chargeMemory: number
  /** How long a rate-limited request is held before its 429 is sent, ms (at most its Retry-After; 0 = at once). */
  refusalDelayMs: number
  /** DID of the trusted `ucan/attest` issuer for did:mailto chains ('' = none). */
  attesterDid: string
  /** The did:key that attester signs with, pinned ('' = none). */
  attesterKey: string
  /** pino log level. */
  logLevel: string
  /** Storacha upload service URL that each checkpoint's CAR is stored through, or `off` (keep CARs locally only). */
  storachaUrl: string
  /** DID of that upload service (the audience of its invocations). */
  storachaDid: string
  /** Its receipts endpoint (`<url><task CID>`), or `auto` for `<storachaUrl>/receipt/`. */
  storachaReceipts: string
  /** Longest wait between attempts of a failing upload, ms (backoff doubles from 1 s up to it). */
  uploadRetryMaxMs: number
  /** Logs whose Storacha uploads are in flight at once (one group of checkpoints each). */
  uploadConcurrency: number
  /** Most checkpoints of one log stored by one Storacha upload (one CAR shard). */
  uploadBatchCheckpoints: number
  /** Most bytes of checkpoint CARs stored by one Storacha upload (held in memory while sent). */
  uploadBatchBytes: number
  /** Most checkpoints of one log waiting for upload; at it, that log's appends → UploadBacklogFull. */
  uploadBacklogMax: number
  /** Uploaded checkpoints kept per log in the upload queue (older rows deleted). */
  uploadKeepDone: number
  /** Most logs open at once (each holds FDS_PER_OPEN_LOG descriptors); idle ones are closed first, then → TooManyOpenLogs. */
  maxOpenLogs: number
  /** Sustained log creations per second per client address; 0 = unlimited. Over → LogCreationLimited. */
  logCreateRate: number
  /** Burst of log creations per client address. */
  logCreateBurst: number
  /** Most logs in total (0 = unlimited). Over → LogCreationLimited for any new log. */
  maxLogs: number
  /** Bytes of level-0 hash tiles (with their inner rows) all open logs keep in memory together. */
  tileCacheBytes: number
  /** Bytes of hash tiles of levels ≥ 1 all open logs keep in memory together (what keeps proofs fast in large logs). */
  upperTileCacheBytes: number
  /** Bytes of encoded HAMT shard nodes all CAR packers keep in memory together. */
  shardCacheBytes: number
  /** Bytes of page cache each SQLite connection keeps (src/storage/sqlite-cache.ts). */
  sqliteCacheBytes: number
  /** Most UCANs the verified-UCAN cache keeps (CIDs found canonical and validly signed; ¾ for proofs). */
  verifiedUcans: number
  /** Bytes the verified-UCAN cache may hold (its own accounting, ~250 B an entry). */
  verifiedUcanBytes: number
  /** Bytes of proof blocks each thread keeps to reuse their decoding (src/ucan/proof-blocks.ts). */
  proofBlockCacheBytes: number
  /** Worker threads checking requests' UCAN signatures beside the main thread; 0 = none. */
  verifyWorkers: number
  /** Worker threads running whole append requests (decode, checks, receipts), the main thread only sequencing; 0 = none. */
  requestWorkers: number
  /** Requests each request worker checks at once at most; past it on every worker → 503 + Retry-After. */
  requestWorkerQueue: number
  /** Most entries per `GET /logs/<space>/entries` page. */
  entriesPageMax: number
  /** Most entry bytes per `GET /logs/<space>/entries` page (≥ 65535: a page always holds one entry). */
  entriesPageBytes: number
  /** Most indexes one `GET /logs/<space>/lookup` answers (more → `truncated: true`). */
  lookupMaxResults: number
  /** Most entries one lookup request adds to the lookup index itself when it is behind (then 503 + Retry-After while the background catches up). */
  lookupCatchUpEntries: number
  /** Most checkpoint-history points kept per log (`GET /logs/<space>/history`); older ones are thinned when full. */
  historyMaxPoints: number
  /** PostgreSQL connection URL (`postgres://user:password@host:port/db`) holding the logs; '' = the embedded file store. Never logged with its password. */
  databaseUrl: string
  /** Most connections this instance opens to the database (the pool's size). */
  databasePoolMax: number
  /** Longest wait for a database connection, and longest statement, ms (then DatabaseUnavailable / the statement fails). */
  databaseTimeoutMs: number
  /** A log's write lease, ms: another instance may take a log this long after its holder stops renewing (renewed every third of it). */
  databaseLeaseMs: number
  /** With a database: a log idle this long, ms, is closed and its write lease let go (leases follow use). */
  databaseIdleReleaseMs: number
  /** With a database: the URL the other instances reach this one at (forwarded appends); '' = the listening URL. */
  internalUrl: string
}

/**
 * Default pre-verification worker threads: two less than the cores, at most 8 — none on a 2-core
 * machine, where a worker relieved the main thread by a third but cost as much CPU again in all
 * and left throughput unchanged (BENCHMARKS.md, 2026-11-30: the second core is taken by GC, fsync
 * and the witness). Larger machines are not measured yet.
 */
export const DEFAULT_VERIFY_WORKERS = Math.min(8, Math.max(0, availableParallelism() - 2))

/**
 * Default request worker threads (src/ucan/request-pool.ts): one per core, at most 8; none on one
 * core. Measured on 2 cores (BENCHMARKS.md, 2026-11-30 afternoon): with 2 workers the main thread
 * spends ~0.3 ms per append instead of ~1.2 (16 per request) for the same total CPU, so the ceiling
 * is both cores' CPU rather than the main thread's; one worker costs the same CPU but carries nearly
 * all of it on its one thread (the old bottleneck moved), two split it, for ~45 MiB more RSS.
 */
export const DEFAULT_REQUEST_WORKERS = availableParallelism() >= 2 ? Math.min(8, availableParallelism()) : 0

/** Default queue of each request worker, requests (a 16-append request is ~40 KB: ~10 MB per worker when full). */
export const DEFAULT_REQUEST_WORKER_QUEUE = 256

/** Default most connections per instance to the database (`--database-pool-max`; src/server/database.ts). */
export const DEFAULT_DATABASE_POOL_MAX = 10
/** Default longest wait for a database connection and longest statement, ms (`--database-timeout`). */
export const DEFAULT_DATABASE_TIMEOUT_MS = 10_000

/** The embedded default: what `npm start` runs with no flags or env vars. */
export const DEFAULT_CONFIG: ServiceConfig = {
  port: 8787,
  host: '127.0.0.1',
  maxConnections: 0,
  maxConnectionsPerClient: 0,
  headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
  requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
  keepAliveTimeoutMs: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  dataDir: './data',
  witnessPolicyFile: './witness_policy.txt',
  originPrefix: AUTO_ORIGIN_PREFIX,
  batchMaxSize: DEFAULT_BATCH_MAX_SIZE,
  batchMaxAgeMs: DEFAULT_BATCH_MAX_AGE_MS,
  maxLogEntries: DEFAULT_MAX_ENTRIES,
  witnessTimeoutMs: DEFAULT_WITNESS_TIMEOUT_MS,
  witnessGreedy: false,
  witnessName: 'ucanlog.local/witness',
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  maxInvocationLifetime: 3600,
  maxInvocationsPerRequest: DEFAULT_MAX_INVOCATIONS_PER_REQUEST,
  maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
  maxResponseBytesInFlight: DEFAULT_MAX_RESPONSE_BYTES_IN_FLIGHT,
  agentRate: DEFAULT_AGENT_RATE,
  agentBurst: DEFAULT_AGENT_BURST,
  spaceRate: DEFAULT_SPACE_RATE,
  spaceBurst: DEFAULT_SPACE_BURST,
  replayPerSpace: DEFAULT_REPLAY_PER_SPACE,
  replayUncommitted: DEFAULT_REPLAY_UNCOMMITTED,
  revocationsPerScope: DEFAULT_REVOCATIONS_PER_SCOPE,
  revokeRate: DEFAULT_REVOKE_RATE,
  revokeBurst: DEFAULT_REVOKE_BURST,
  clientRate: DEFAULT_CLIENT_RATE,
  clientBurst: DEFAULT_CLIENT_BURST,
  clientConcurrency: DEFAULT_CLIENT_CONCURRENCY,
  authorizeConcurrency: DEFAULT_AUTHORIZE_CONCURRENCY,
  maxQueuedRequests: DEFAULT_MAX_QUEUED_REQUESTS,
  maxQueueWaitMs: 0,
  chargeMemory: DEFAULT_CHARGE_MEMORY,
  refusalDelayMs: DEFAULT_REFUSAL_DELAY_MS,
  attesterDid: '',
  attesterKey: '',
  logLevel: 'info',
  storachaUrl: 'off',
  storachaDid: DEFAULT_STORACHA_DID,
  storachaReceipts: 'auto',
  uploadRetryMaxMs: DEFAULT_UPLOAD_RETRY_MAX_MS,
  uploadConcurrency: DEFAULT_UPLOAD_CONCURRENCY,
  uploadBatchCheckpoints: DEFAULT_UPLOAD_BATCH_CHECKPOINTS,
  uploadBatchBytes: DEFAULT_UPLOAD_BATCH_BYTES,
  uploadBacklogMax: DEFAULT_UPLOAD_BACKLOG_MAX,
  uploadKeepDone: DEFAULT_UPLOAD_KEEP_DONE,
  maxOpenLogs: DEFAULT_MAX_OPEN_LOGS,
  logCreateRate: DEFAULT_LOG_CREATE_RATE,
  logCreateBurst: DEFAULT_LOG_CREATE_BURST,
  maxLogs: DEFAULT_MAX_LOGS,
  tileCacheBytes: DEFAULT_TILE_CACHE_BYTES,
  upperTileCacheBytes: DEFAULT_UPPER_TILE_CACHE_BYTES,
  shardCacheBytes: DEFAULT_SHARD_CACHE_BYTES,
  sqliteCacheBytes: DEFAULT_SQLITE_CACHE_BYTES,
  verifiedUcans: DEFAULT_MAX_VERIFIED_UCANS,
  verifiedUcanBytes: DEFAULT_MAX_VERIFIED_UCAN_BYTES,
  proofBlockCacheBytes: DEFAULT_PROOF_BLOCK_CACHE_BYTES,
  verifyWorkers: DEFAULT_VERIFY_WORKERS,
  requestWorkers: DEFAULT_REQUEST_WORKERS,
  requestWorkerQueue: DEFAULT_REQUEST_WORKER_QUEUE,
  entriesPageMax: DEFAULT_ENTRIES_PAGE_MAX,
  entriesPageBytes: DEFAULT_ENTRIES_PAGE_BYTES,
  lookupMaxResults: DEFAULT_LOOKUP_MAX_RESULTS,
  lookupCatchUpEntries: DEFAULT_LOOKUP_CATCH_UP_ENTRIES,
  historyMaxPoints: DEFAULT_HISTORY_MAX_POINTS,
  databaseUrl: '',
  databasePoolMax: DEFAULT_DATABASE_POOL_MAX,
  databaseTimeoutMs: DEFAULT_DATABASE_TIMEOUT_MS,
  databaseLeaseMs: DEFAULT_LEASE_MS,
  databaseIdleReleaseMs: DEFAULT_IDLE_RELEASE_MS,
  internalUrl: '',
}

/** One row of the knob table: config key, flag, env var, unit, description. */
export interface Knob {
  key: keyof ServiceConfig
  flag: string
  env: string
  unit: string
  description: string
  integer?: { min: number; max: number }
  /** A switch: the flag takes no value; the env var is `true`/`1` or `false`/`0`. */
  boolean?: true
  /** How `serve --help` states the default when the value alone does not say it (e.g. `auto`). */
  defaultText?: string
}

/** The knob table: the CLI options, the env vars and the README's configuration table come from it. */
export const KNOBS: Knob[] = [
  { key: 'port', flag: '--port', env: 'UCANLOG_PORT', unit: 'TCP port', description: 'port to listen on (0 = any free port)', integer: { min: 0, max: 65535 } },
  { key: 'host', flag: '--host', env: 'UCANLOG_HOST', unit: 'address', description: 'address to listen on' },
  { key: 'maxConnections', flag: '--max-connections', env: 'UCANLOG_MAX_CONNECTIONS', unit: 'connections', description: 'concurrent client connections in total, over → closed on arrival; 0 = what the open-file limit leaves after the descriptor reserve (at most 4096); more than that is refused at start', integer: { min: 0, max: 1_000_000 } },
  { key: 'maxConnectionsPerClient', flag: '--max-connections-per-client', env: 'UCANLOG_MAX_CONNECTIONS_PER_CLIENT', unit: 'connections', description: 'concurrent connections per client address (IPv6: per /64), over → that client\'s new connection is closed; 0 = a quarter of --max-connections', integer: { min: 0, max: 1_000_000 } },
  { key: 'headersTimeoutMs', flag: '--headers-timeout', env: 'UCANLOG_HEADERS_TIMEOUT_MS', unit: 'ms', description: 'longest wait for a request\'s headers (then 408 and close)', integer: { min: 100, max: 600_000 } },
  { key: 'requestTimeoutMs', flag: '--request-timeout', env: 'UCANLOG_REQUEST_TIMEOUT_MS', unit: 'ms', description: 'longest wait for a whole request, headers and body (then 408 and close); at least --headers-timeout', integer: { min: 100, max: 3_600_000 } },
  { key: 'keepAliveTimeoutMs', flag: '--keep-alive-timeout', env: 'UCANLOG_KEEP_ALIVE_TIMEOUT_MS', unit: 'ms', description: 'idle keep-alive connections are closed after this', integer: { min: 1, max: 600_000 } },
  { key: 'idleTimeoutMs', flag: '--idle-timeout', env: 'UCANLOG_IDLE_TIMEOUT_MS', unit: 'ms', description: 'a connection with no bytes moving either way for this long is closed; more than --batch-max-age + --witness-timeout', integer: { min: 1000, max: 3_600_000 } },
  { key: 'dataDir', flag: '--data', env: 'UCANLOG_DATA', unit: 'directory', description: 'keys, logs, CARs and witness state' },
  { key: 'witnessPolicyFile', flag: '--witness-policy', env: 'UCANLOG_WITNESS_POLICY', unit: 'file', description: 'witness policy (c2sp.org/tlog-policy)', defaultText: './witness_policy.txt, or the built-in policy (the bundled witness alone) when that file is absent' },
  { key: 'originPrefix', flag: '--origin-prefix', env: 'UCANLOG_ORIGIN_PREFIX', unit: 'string', description: "checkpoint origins are <prefix>/logs/<spaceDID>; a host name you control (e.g. log.example.com); fixed per data directory on first start (<data>/origin-prefix), as a log's origin never changes", defaultText: 'derived from the service key, <key hash>.ucanlog.local (auto)' },
  { key: 'batchMaxSize', flag: '--batch-max-size', env: 'UCANLOG_BATCH_MAX_SIZE', unit: 'entries', description: 'maximum entries per batch', integer: { min: 1, max: 65536 } },
  { key: 'batchMaxAgeMs', flag: '--batch-max-age', env: 'UCANLOG_BATCH_MAX_AGE_MS', unit: 'ms', description: 'minimum interval between two batches (checkpoints) of one log, and so the longest an entry waits for its batch; on a log idle this long an entry waits only 5 ms', integer: { min: 0, max: 60_000 } },
  { key: 'maxLogEntries', flag: '--max-log-entries', env: 'UCANLOG_MAX_LOG_ENTRIES', unit: 'entries', description: "most entries one space's log may hold, its disk bound (entries ≤ 64 KiB each); past it, that space's appends → LogFull", integer: { min: 1, max: 2 ** 48 } },
  { key: 'witnessTimeoutMs', flag: '--witness-timeout', env: 'UCANLOG_WITNESS_TIMEOUT_MS', unit: 'ms', description: 'per-witness request timeout', integer: { min: 1, max: 600_000 } },
  { key: 'witnessGreedy', flag: '--witness-greedy', env: 'UCANLOG_WITNESS_GREEDY', unit: 'boolean', description: 'ask every witness and wait for all (until the timeout) instead of stopping at quorum', boolean: true },
  { key: 'witnessName', flag: '--witness-name', env: 'UCANLOG_WITNESS_NAME', unit: 'key name', description: 'cosignature key name of the bundled witness' },
  { key: 'maxBodyBytes', flag: '--max-body', env: 'UCANLOG_MAX_BODY_BYTES', unit: 'bytes', description: 'maximum RPC request body', integer: { min: 1024, max: 1 << 30 } },
  { key: 'maxInvocationLifetime', flag: '--max-invocation-lifetime', env: 'UCANLOG_MAX_INVOCATION_LIFETIME', unit: 's', description: 'latest accepted invocation expiry, from now', integer: { min: 1, max: 86_400 * 30 } },
  { key: 'maxInvocationsPerRequest', flag: '--max-invocations', env: 'UCANLOG_MAX_INVOCATIONS', unit: 'invocations', description: 'maximum invocations in one RPC request (more → 413)', integer: { min: 1, max: 10_000 } },
  { key: 'agentRate', flag: '--agent-rate', env: 'UCANLOG_AGENT_RATE', unit: 'invocations/s', description: 'sustained rate per agent (verified issuer; each signed invocation charged once, replays free); over → 429 + Retry-After or RateLimited; 0 = unlimited', integer: { min: 0, max: 1_000_000 } },
  { key: 'maxResponseBytes', flag: '--max-response-bytes', env: 'UCANLOG_MAX_RESPONSE_BYTES', unit: 'bytes', description: 'entry bytes (base64) all tlog/reads of one RPC request may return together; reads past it return fewer entries or ResponseTooLarge', integer: { min: 131_072, max: 1 << 30 } },
  { key: 'maxResponseBytesInFlight', flag: '--max-response-bytes-in-flight', env: 'UCANLOG_MAX_RESPONSE_BYTES_IN_FLIGHT', unit: 'bytes', description: 'read-response bytes all requests in flight may hold (each reading request reserves --max-response-bytes); over → 503', integer: { min: 131_072, max: 2 ** 40 } },
  { key: 'agentBurst', flag: '--agent-burst', env: 'UCANLOG_AGENT_BURST', unit: 'invocations', description: 'burst per agent', integer: { min: 1, max: 10_000_000 } },
  { key: 'spaceRate', flag: '--space-rate', env: 'UCANLOG_SPACE_RATE', unit: 'invocations/s', description: 'sustained rate per space of writes a verified chain authorized; over → 429 + Retry-After or RateLimited; 0 = unlimited', integer: { min: 0, max: 1_000_000 } },
  { key: 'spaceBurst', flag: '--space-burst', env: 'UCANLOG_SPACE_BURST', unit: 'invocations', description: 'burst per space', integer: { min: 1, max: 10_000_000 } },
  { key: 'replayPerSpace', flag: '--replay-per-space', env: 'UCANLOG_REPLAY_PER_SPACE', unit: 'invocations', description: "unexpired appends remembered per space by the replay guard (default: space rate × max invocation lifetime + burst); at it, that space's appends → TooManyPendingInvocations until some expire", integer: { min: 1, max: 1_000_000_000 } },
  { key: 'replayUncommitted', flag: '--replay-uncommitted', env: 'UCANLOG_REPLAY_UNCOMMITTED', unit: 'outcomes', description: 'append outcomes the replay guard keeps in memory after their commit failed (full or failing disk), committed again with the next commit so a retry gets its first answer; past it the oldest is dropped (its retry answered as unknown, never run twice)', integer: { min: 0, max: 1_000_000 } },
  { key: 'revocationsPerScope', flag: '--revocations-per-scope', env: 'UCANLOG_REVOCATIONS_PER_SCOPE', unit: 'records', description: "revocation log records per principal (ucan/revoke's with); past it, that principal's new revocations → TooManyRevocations", integer: { min: 1, max: 1_000_000_000 } },
  { key: 'revokeRate', flag: '--revoke-rate', env: 'UCANLOG_REVOKE_RATE', unit: 'revocations/s', description: 'sustained revocations recorded per client address (each is a permanent entry of the revocation log); over → RateLimited / 429; 0 = unlimited', integer: { min: 0, max: 1_000_000 } },
  { key: 'revokeBurst', flag: '--revoke-burst', env: 'UCANLOG_REVOKE_BURST', unit: 'revocations', description: 'burst of revocations recorded per client address', integer: { min: 1, max: 10_000_000 } },
  { key: 'clientRate', flag: '--client-rate', env: 'UCANLOG_CLIENT_RATE', unit: 'invocations/s', description: 'sustained rate per client address, every invocation charged before any work (forged and replayed too); over → 429 + Retry-After; 0 = unlimited', integer: { min: 0, max: 1_000_000 } },
  { key: 'clientBurst', flag: '--client-burst', env: 'UCANLOG_CLIENT_BURST', unit: 'invocations', description: 'burst per client address', integer: { min: 1, max: 10_000_000 } },
  { key: 'clientConcurrency', flag: '--client-concurrency', env: 'UCANLOG_CLIENT_CONCURRENCY', unit: 'requests', description: 'requests and invocations being worked on at once per client address (turns, handed out round-robin across addresses); others wait', integer: { min: 1, max: 10_000 } },
  { key: 'authorizeConcurrency', flag: '--authorize-concurrency', env: 'UCANLOG_AUTHORIZE_CONCURRENCY', unit: 'requests', description: 'requests and invocations being worked on at once in the whole service; freed turns go round-robin across client addresses, so a flooding address delays another by at most one turn', integer: { min: 1, max: 10_000 } },
  { key: 'maxQueuedRequests', flag: '--max-queued-requests', env: 'UCANLOG_MAX_QUEUED_REQUESTS', unit: 'requests', description: 'requests and invocations waiting for a turn, all client addresses together; at it, a newcomer from the address with the most waiting is refused, otherwise that address\'s newest waiting one is shed: 503 ServiceBusy + Retry-After, nothing ran', integer: { min: 1, max: 10_000_000 } },
  { key: 'maxQueueWaitMs', flag: '--max-queue-wait', env: 'UCANLOG_MAX_QUEUE_WAIT_MS', unit: 'ms', description: 'longest wait of a request or invocation for its turn; past it, 503 ServiceBusy + Retry-After, nothing ran; 0 = no limit (the queue is still bounded by --max-queued-requests)', integer: { min: 0, max: 3_600_000 } },
  { key: 'chargeMemory', flag: '--charge-memory', env: 'UCANLOG_CHARGE_MEMORY', unit: 'invocations', description: 'signed invocations remembered as charged to their issuer (~100 B each, a digest, whatever the issuer\'s key), so replays cost only the sender\'s address; oldest forgotten first', integer: { min: 1, max: 10_000_000 } },
  { key: 'refusalDelayMs', flag: '--refusal-delay', env: 'UCANLOG_REFUSAL_DELAY_MS', unit: 'ms', description: 'how long a rate-limited request is held before its 429 is sent (at most its Retry-After), so a client resending at once is slowed to one refusal per connection per delay; 0 = at once', integer: { min: 0, max: 60_000 } },
  { key: 'attesterDid', flag: '--attester-did', env: 'UCANLOG_ATTESTER_DID', unit: 'DID', description: 'trusted ucan/attest issuer for did:mailto chains (none by default; Storacha: did:web:up.storacha.network)' },
  { key: 'attesterKey', flag: '--attester-key', env: 'UCANLOG_ATTESTER_KEY', unit: 'did:key', description: 'the did:key that attester signs with, pinned (never fetched)' },
  { key: 'logLevel', flag: '--log-level', env: 'UCANLOG_LOG_LEVEL', unit: 'level', description: 'pino log level (fatal, error, warn, info, debug)' },
  { key: 'storachaUrl', flag: '--storacha-url', env: 'UCANLOG_STORACHA_URL', unit: 'URL', description: `store every checkpoint's CAR in the log's Storacha space through this upload service (production: ${DEFAULT_STORACHA_URL}); off keeps CARs in the data directory only` },
  { key: 'storachaDid', flag: '--storacha-did', env: 'UCANLOG_STORACHA_DID', unit: 'DID', description: 'DID of the Storacha upload service' },
  { key: 'storachaReceipts', flag: '--storacha-receipts', env: 'UCANLOG_STORACHA_RECEIPTS', unit: 'URL', description: `Storacha receipts endpoint; auto = <storacha-url>/receipt/ (production: ${DEFAULT_RECEIPTS_ENDPOINT})` },
  { key: 'maxOpenLogs', flag: '--max-open-logs', env: 'UCANLOG_MAX_OPEN_LOGS', unit: 'logs', description: 'most logs open at once (2 file descriptors each); the least recently used idle log is closed first; all busy → TooManyOpenLogs', integer: { min: 1, max: 1_000_000 } },
  { key: 'logCreateRate', flag: '--log-create-rate', env: 'UCANLOG_LOG_CREATE_RATE', unit: 'logs/s', description: 'sustained log creations per client address; over → LogCreationLimited; 0 = unlimited', integer: { min: 0, max: 1_000_000 } },
  { key: 'logCreateBurst', flag: '--log-create-burst', env: 'UCANLOG_LOG_CREATE_BURST', unit: 'logs', description: 'burst of log creations per client address', integer: { min: 1, max: 10_000_000 } },
  { key: 'maxLogs', flag: '--max-logs', env: 'UCANLOG_MAX_LOGS', unit: 'logs', description: 'most logs the service holds; a new log beyond it → LogCreationLimited; 0 = unlimited', integer: { min: 0, max: 1_000_000_000 } },
  { key: 'uploadRetryMaxMs', flag: '--upload-retry-max', env: 'UCANLOG_UPLOAD_RETRY_MAX_MS', unit: 'ms', description: 'longest wait between attempts of a failing upload (backoff doubles from 1 s)', integer: { min: 1, max: 86_400_000 } },
  { key: 'uploadConcurrency', flag: '--upload-concurrency', env: 'UCANLOG_UPLOAD_CONCURRENCY', unit: 'logs', description: 'logs whose Storacha uploads are in flight at once, one upload each (memory: up to this × --upload-batch-bytes)', integer: { min: 1, max: 1024 } },
  { key: 'uploadBatchCheckpoints', flag: '--upload-batch-checkpoints', env: 'UCANLOG_UPLOAD_BATCH_CHECKPOINTS', unit: 'checkpoints', description: "most of a log's pending checkpoints stored by one Storacha upload (one CAR shard and its index; every checkpoint's root still registered)", integer: { min: 1, max: 10_000 } },
  { key: 'uploadBatchBytes', flag: '--upload-batch-bytes', env: 'UCANLOG_UPLOAD_BATCH_BYTES', unit: 'bytes', description: 'most bytes of checkpoint CARs stored by one Storacha upload, held in memory while it is sent (a larger single CAR goes alone)', integer: { min: 1, max: 2 ** 32 } },
  { key: 'uploadBacklogMax', flag: '--upload-backlog-max', env: 'UCANLOG_UPLOAD_BACKLOG_MAX', unit: 'checkpoints', description: "most checkpoints of one log waiting for their Storacha upload; at it, that log's appends → UploadBacklogFull (the message says when to retry: its next upload attempt), other logs unaffected", integer: { min: 1, max: 100_000_000 } },
  { key: 'uploadKeepDone', flag: '--upload-keep-done', env: 'UCANLOG_UPLOAD_KEEP_DONE', unit: 'checkpoints', description: "uploaded checkpoints of each log kept in uploads.sqlite (log_upload_jobs with a database; the newest); older rows are deleted", integer: { min: 1, max: 1_000_000 } },
  { key: 'tileCacheBytes', flag: '--tile-cache-bytes', env: 'UCANLOG_TILE_CACHE_BYTES', unit: 'bytes', description: 'level-0 hash tiles (and the hashes inside them) all open logs keep in memory together, least recently used dropped first; misses read the tile file', integer: { min: 0, max: 2 ** 40 } },
  { key: 'upperTileCacheBytes', flag: '--upper-tile-cache-bytes', env: 'UCANLOG_UPPER_TILE_CACHE_BYTES', unit: 'bytes', description: 'hash tiles of levels ≥ 1 all open logs keep in memory together (~16 KiB per 65,536 entries; every proof reads one per level), least recently used dropped first', integer: { min: 0, max: 2 ** 40 } },
  { key: 'shardCacheBytes', flag: '--shard-cache-bytes', env: 'UCANLOG_SHARD_CACHE_BYTES', unit: 'bytes', description: "encoded HAMT shard nodes of the CARs' directories all logs keep in memory together (~1 MiB per log of 1 M entries); misses re-encode the node", integer: { min: 0, max: 2 ** 40 } },
  { key: 'sqliteCacheBytes', flag: '--sqlite-cache-bytes', env: 'UCANLOG_SQLITE_CACHE_BYTES', unit: 'bytes', description: "page cache of each SQLite connection (ucan.db's two, lookup.db, uploads.sqlite, each open log's CAR index): native memory beside the V8 heap, filled as the files grow; the rest is read through the kernel's page cache (better-sqlite3's own default is 16 MB per connection)", integer: { min: 65_536, max: 2 ** 40 } },
  { key: 'verifiedUcans', flag: '--verified-ucans', env: 'UCANLOG_VERIFIED_UCANS', unit: 'UCANs', description: 'UCANs remembered as canonical and validly signed, by CID (three quarters for Space→Agent proofs, a quarter for Agent→Service delegations, so a flood of new delegations cannot push out the proofs); least recently used verified again when next seen', integer: { min: 4, max: 100_000_000 } },
  { key: 'verifiedUcanBytes', flag: '--verified-ucan-bytes', env: 'UCANLOG_VERIFIED_UCAN_BYTES', unit: 'bytes', description: 'bytes the verified-UCAN cache may hold (~250 B a UCAN), split as for --verified-ucans', integer: { min: 4, max: 2 ** 40 } },
  { key: 'proofBlockCacheBytes', flag: '--proof-block-cache-bytes', env: 'UCANLOG_PROOF_BLOCK_CACHE_BYTES', unit: 'bytes', description: "proof blocks (chiefly each agent's Space→Agent) each thread keeps, counted four times their size with their decoding, so a proof sent with every append is decoded once; 0 = none", integer: { min: 0, max: 2 ** 40 } },
  { key: 'verifyWorkers', flag: '--verify-workers', env: 'UCANLOG_VERIFY_WORKERS', unit: 'threads', description: "worker threads that check requests' UCAN signatures and canonical encodings while the main thread does the rest (what they vouch for is re-hashed, never re-trusted blindly; a busy or failed worker means the main thread checks); 0 = every check on the main thread; default two less than the cores (none on 2 cores)", integer: { min: 0, max: 64 } },
  { key: 'requestWorkers', flag: '--request-workers', env: 'UCANLOG_REQUEST_WORKERS', unit: 'threads', description: 'worker threads that decode and check whole append requests (every UCAN check but revocation) and sign their receipts, the main thread keeping HTTP, rate limits, the replay guard, revocation lookups and the log (one writer per log); requests that are not only appends run on the main thread; 0 = none; default one per core, at most 8 (2 on 2 cores, none on one)', integer: { min: 0, max: 64 } },
  { key: 'requestWorkerQueue', flag: '--request-worker-queue', env: 'UCANLOG_REQUEST_WORKER_QUEUE', unit: 'requests', description: 'requests each request worker checks at once at most; when every worker is full a request is refused 503 ServiceBusy with Retry-After', integer: { min: 1, max: 65536 } },
  { key: 'entriesPageMax', flag: '--entries-page-max', env: 'UCANLOG_ENTRIES_PAGE_MAX', unit: 'entries', description: 'most entries one GET /logs/<space>/entries page returns', integer: { min: 1, max: 100_000 } },
  { key: 'entriesPageBytes', flag: '--entries-page-bytes', env: 'UCANLOG_ENTRIES_PAGE_BYTES', unit: 'bytes', description: 'most entry bytes one GET /logs/<space>/entries page returns (the JSON is ~4/3 of it); at least one entry always fits', integer: { min: 65_535, max: 1 << 30 } },
  { key: 'lookupMaxResults', flag: '--lookup-max-results', env: 'UCANLOG_LOOKUP_MAX_RESULTS', unit: 'indexes', description: 'most indexes one GET /logs/<space>/lookup answers (more → truncated: true)', integer: { min: 1, max: 1_000_000 } },
  { key: 'lookupCatchUpEntries', flag: '--lookup-catch-up', env: 'UCANLOG_LOOKUP_CATCH_UP', unit: 'entries', description: 'most entries a lookup adds to the lookup index itself when the index is behind the published tree; past it → 503 + Retry-After while the background catches up', integer: { min: 1, max: 100_000_000 } },
  { key: 'historyMaxPoints', flag: '--history-max', env: 'UCANLOG_HISTORY_MAX', unit: 'points', description: "most checkpoints (size, root hash, publication time) kept per log for GET /logs/<space>/history and the explorer's chart (~60 B each in lookup.db); when full, every other point of the older half is dropped, so the points span the log's whole life", integer: { min: 2, max: 100_000 } },
  { key: 'databaseUrl', flag: '--database-url', env: 'UCANLOG_DATABASE_URL', unit: 'URL', description: 'PostgreSQL holding the logs (postgres://user:password@host:port/database; several instances may share it); schema migrations are applied at start; never logged with its password', defaultText: 'none: the embedded file store in --data' },
  { key: 'databasePoolMax', flag: '--database-pool-max', env: 'UCANLOG_DATABASE_POOL_MAX', unit: 'connections', description: 'most connections this instance opens to the database', integer: { min: 1, max: 1000 } },
  { key: 'databaseTimeoutMs', flag: '--database-timeout', env: 'UCANLOG_DATABASE_TIMEOUT_MS', unit: 'ms', description: 'longest wait for a database connection (then DatabaseUnavailable) and longest statement', integer: { min: 100, max: 600_000 } },
  { key: 'databaseLeaseMs', flag: '--database-lease', env: 'UCANLOG_DATABASE_LEASE_MS', unit: 'ms', description: "a log's write lease: another instance may take the log this long after its holder stops renewing it (renewed every third of it); every write checks the lease's fencing token; also how long an instance's claim on a log's pending Storacha uploads lasts", integer: { min: 100, max: 600_000 } },
  { key: 'databaseIdleReleaseMs', flag: '--database-idle-release', env: 'UCANLOG_DATABASE_IDLE_RELEASE_MS', unit: 'ms', description: "with a database: a log (and the revocation log) idle this long is closed and its write lease let go, so another instance can write it (leases follow use)", integer: { min: 10, max: 600_000 } },
  { key: 'internalUrl', flag: '--internal-url', env: 'UCANLOG_INTERNAL_URL', unit: 'URL', description: 'with a database: the http(s) URL the other instances reach this one at; it is put in the lease rows of the logs this instance writes, and appends for those logs reaching another instance are forwarded there', defaultText: 'the listening URL (http://<host>:<port>)' },
]

/** A flag or environment variable with a value out of range. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Merges environment variables and flags (flags win) over the defaults and validates them.
 * @param flags values keyed by config key, as strings (from the CLI parser).
 * @throws ConfigError naming the flag and env var.
 */
export function resolveConfig(flags: Partial<Record<keyof ServiceConfig, string>>, env: NodeJS.ProcessEnv): ServiceConfig {
  const out: Record<string, unknown> = { ...DEFAULT_CONFIG }
  for (const k of KNOBS) {
    const raw = flags[k.key] ?? env[k.env]
    if (raw === undefined) continue
    if (k.boolean) {
      if (!/^(true|false|1|0)$/.test(raw)) throw new ConfigError(`${k.flag} / ${k.env} must be true, false, 1 or 0, got ${JSON.stringify(raw)}`)
      out[k.key] = raw === 'true' || raw === '1'
    } else if (k.integer) {
      if (!/^[0-9]+$/.test(raw) || Number(raw) < k.integer.min || Number(raw) > k.integer.max) {
        throw new ConfigError(`${k.flag} / ${k.env} must be an integer in ${k.integer.min}..${k.integer.max} (${k.unit}), got ${JSON.stringify(raw)}`)
      }
      out[k.key] = Number(raw)
    } else {
      if (raw === '') throw new ConfigError(`${k.flag} / ${k.env} must not be empty`)
      out[k.key] = raw
    }
  }
  return out as unknown as ServiceConfig
}

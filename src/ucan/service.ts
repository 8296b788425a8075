/**
 * The ucanlog UCAN RPC service (DESIGN.md "UCAN RPC"): a ucanto server implementing `tlog/append`
 * and `tlog/read` over the CAR transport. Mount `server.request({ headers, body })` on an HTTP
 * route; it decodes the agent message, runs every invocation in it, and encodes signed receipts.
 *
 * Both abilities are raw ucanto methods: the server calls them with no audience check and no
 * `access()`, and they do all checking themselves (authorize.ts) so every failure keeps its
 * ucanlog name (errors.ts). Abilities the service does not implement get `InvalidCapability`
 * rather than ucanto's `HandlerNotFound` (whose receipt would carry a server stack trace).
 */
import * as Server from '@ucanto/server'
import * as CAR from '@ucanto/transport/car'
import type { API } from '@ucanto/core'
import { encodeBase64 } from '../tlog/encoding.js'
import {
  DEFAULT_MAX_INVOCATION_LIFETIME,
  authorizeAppend,
  checkInvocation,
  createGrantCache,
  systemNow,
} from './authorize.js'
import { DEFAULT_READ_LIMIT, SpaceDID, TlogReadCaveats } from './capabilities.js'
import {
  type AppendFailure,
  InternalError,
  InvalidCapability,
  type ReadFailure,
  UnknownLog,
  truncate,
} from './errors.js'
import { createFastSigner, createPrincipalParser } from './principal.js'
import { type ReplayGuard, createMemoryReplayGuard } from './replay.js'
import { type RevocationChecker, noRevocations } from './revocation.js'

/** A space DID, which is also a log id. */
export type SpaceKey = `did:key:${string}`

/**
 * The log engine as the RPC layer needs it. Owned here; src/log implements it.
 */
export interface LogService {
  /**
   * Appends one entry to the space's log, creating the log if it has none. Resolves once the
   * entry is durable and, if the witness quorum was met in time, published (`published: true`).
   * A rejection is reported to the client as `InternalError`; the service never retries the same
   * invocation (it may have been sequenced). Called at most once per invocation CID while the
   * invocation is valid; safe to call concurrently, also for the same space.
   * @param entry 1..65535 bytes.
   * @param meta.invocation the invocation's CID (canonical; see delegation.ts).
   * @param meta.delegation the verified Agent→Service delegation to write to the space with.
   */
  append(
    space: SpaceKey,
    entry: Uint8Array,
    meta: { invocation: string; delegation: API.Delegation },
  ): Promise<AppendResult>
  /**
   * Reads up to `limit` entries from index `offset` (0-based). Resolves to `undefined` if the space
   * has no log (nothing is created). `total` is the number of entries in the log; `entries` is
   * empty when `offset ≥ total`.
   * @param offset integer ≥ 0. @param limit integer 1..1000.
   */
  read(space: SpaceKey, offset: number, limit: number): Promise<{ entries: Uint8Array[]; total: number } | undefined>
}

/** The ok result of `tlog/append` (DESIGN.md), also what {@link LogService.append} resolves to. */
export interface AppendResult {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin line, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The entry's position in the log, 0-based. */
  index: number
  /** Size of the tree `checkpoint` commits to, in entries (> index). */
  treeSize: number
  /** Root hash of that tree, standard base64 of 32 bytes. */
  rootHash: string
  /** The (cosigned, when `published`) checkpoint note text (c2sp.org/tlog-checkpoint, signed-note). */
  checkpoint: string
  /** RFC 6962 inclusion proof of the entry in `checkpoint`'s tree, each hash standard base64. */
  inclusionProof: string[]
  /** Whether the checkpoint met the witness policy and was published; if false, the proof comes later. */
  published: boolean
}

/** The ok result of `tlog/read`. */
export interface ReadResult {
  /** Entries from `offset`, each standard padded base64; possibly fewer than `limit`. */
  entries: string[]
  /** Number of entries in the log. */
  total: number
}

/** Where the service reports failures it hides from clients (pino-compatible). */
export interface UcanLogger {
  error(details: Record<string, unknown>, message: string): void
}

/** Largest `tlog/read` page, in bytes of base64 text, by default; at least one entry is always returned. */
export const DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024

/** Options of {@link createUcanService}. */
export interface UcanServiceOptions {
  /**
   * The service identity: its DID is every invocation's and delegation's required audience, and it
   * signs receipts. An Ed25519 ucanto signer is wrapped to sign with node:crypto (same bytes).
   */
  signer: API.Signer
  /** The log engine. */
  log: LogService
  /** Longest accepted invocation lifetime, seconds: `exp` at most this far ahead. Default 3600. */
  maxInvocationLifetime?: number
  /** Clock, Unix seconds. Default the system clock. */
  now?: () => number
  /** Revocation store. Default: nothing is revoked. */
  revocations?: RevocationChecker
  /** Replay guard. Default: an in-memory guard on the same clock. */
  replay?: ReplayGuard
  /** Signature verification. Default: principal.ts's node:crypto parser. */
  principal?: API.PrincipalParser
  /** Default: discard. */
  logger?: UcanLogger
  /** `tlog/read` page bound in bytes of base64; default {@link DEFAULT_MAX_READ_BYTES}. */
  maxReadBytes?: number
}

/** A raw ucanto method of this service. */
type RawMethod<O extends {}, X extends API.Failure> = (invocation: API.Invocation) => Promise<API.Result<O, X>>

/** The service tree handed to ucanto: `tlog/append` → `tlog.append`. */
export interface TlogService {
  tlog: {
    append: RawMethod<AppendResult, AppendFailure>
    read: RawMethod<ReadResult, ReadFailure>
  }
}

/**
 * Creates the ucanto server. Options are validated here (throws `RangeError`/`TypeError`).
 * Failures are receipts with `out.error = { name, message }`; a handler that throws yields
 * `InternalError` and the cause goes to `logger.error`.
 */
export function createUcanService(options: UcanServiceOptions): API.ServerView<TlogService> {
  const maxInvocationLifetime = options.maxInvocationLifetime ?? DEFAULT_MAX_INVOCATION_LIFETIME
  if (!Number.isSafeInteger(maxInvocationLifetime) || maxInvocationLifetime < 1) {
    throw new RangeError('maxInvocationLifetime must be a positive integer (seconds)')
  }
  const maxReadBytes = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES
  if (!Number.isSafeInteger(maxReadBytes) || maxReadBytes < 1) throw new RangeError('maxReadBytes must be a positive integer')
  if (options.log === undefined) throw new TypeError('log is required')
  const signer = fastIfEd25519(options.signer)
  const now = options.now ?? systemNow
  const principal = options.principal ?? createPrincipalParser()
  const revocations = options.revocations ?? noRevocations
  const replay = options.replay ?? createMemoryReplayGuard({ now })
  const logger = options.logger ?? { error() {} }
  const log = options.log
  const grants = createGrantCache()

  const internal = (cause: unknown, invocation: API.Invocation, what: string): { error: InternalError } => {
    logger.error({ err: cause, invocation: invocation.cid.toString(), can: invocation.capabilities[0]?.can }, what)
    return { error: new InternalError() }
  }

  const append: TlogService['tlog']['append'] = async (invocation) => {
    try {
      const authorized = await authorizeAppend(invocation, {
        service: signer,
        principal,
        now,
        maxInvocationLifetime,
        revocations,
        grants,
      })
      if (authorized.error) return authorized
      const { space, entry, delegation } = authorized.ok
      // checkInvocation established that this CID is the canonical address of the signed UCAN.
      const id = invocation.cid.toString()
      return await replay.once(id, invocation.expiration, async (): Promise<API.Result<AppendResult, AppendFailure>> => {
        try {
          const result = await log.append(space, entry, { invocation: id, delegation })
          return { ok: toWire(result) }
        } catch (cause) {
          return internal(cause, invocation, 'tlog/append: log append failed')
        }
      })
    } catch (cause) {
      return internal(cause, invocation, 'tlog/append failed')
    }
  }

  const read: TlogService['tlog']['read'] = async (invocation) => {
    try {
      if (invocation.capabilities.length !== 1) {
        return { error: new InvalidCapability('invocation must carry exactly one capability') }
      }
      const capability = invocation.capabilities[0] as API.Capability
      const space = SpaceDID.read(capability.with)
      if (space.error) return { error: new InvalidCapability(`with must be a did:key space, got ${truncate(capability.with)}`) }
      const nb = TlogReadCaveats.read((capability as { nb?: unknown }).nb ?? {})
      if (nb.error) return { error: new InvalidCapability('nb must be { offset?: integer ≥ 0, limit?: integer 1..1000 }') }
      const checked = await checkInvocation(invocation, { audience: signer.did(), principal, now: now() })
      if (checked.error) return checked
      const page = await log.read(space.ok, nb.ok.offset ?? 0, nb.ok.limit ?? DEFAULT_READ_LIMIT)
      if (page === undefined) return { error: new UnknownLog('no log for this space') }
      const entries: string[] = []
      let bytes = 0
      for (const entry of page.entries) {
        const text = encodeBase64(entry)
        if (entries.length > 0 && bytes + text.length > maxReadBytes) break
        entries.push(text)
        bytes += text.length
      }
      return { ok: { entries, total: page.total } }
    } catch (cause) {
      return internal(cause, invocation, 'tlog/read failed')
    }
  }

  const unknown = async (invocation: API.Invocation): Promise<API.Result<never, InvalidCapability>> => ({
    error: new InvalidCapability(`service does not implement ${truncate(invocation.capabilities[0]?.can)}`),
  })

  const server = Server.create<TlogService>({
    id: signer,
    codec: CAR.inbound,
    service: withFallback({ tlog: { append, read } }, unknown) as unknown as TlogService,
    principal,
    // Raw methods never call access(); revocation is checked in authorizeAppend.
    validateAuthorization: () => ({ ok: {} }),
    catch: (error) => {
      logger.error({ err: error }, 'ucanto handler execution error')
    },
  })
  return withSafeRequest(server, logger)
}

/**
 * `server` whose `request` never rejects: ucanto can throw while encoding the response for a
 * hostile message (e.g. a proof DAG whose block labels form a cycle overflows the stack in
 * `exportSubDAG`). Such a request gets 400, like a message that does not decode.
 */
function withSafeRequest(server: API.ServerView<TlogService>, logger: UcanLogger): API.ServerView<TlogService> {
  const request = server.request.bind(server)
  const safe = Object.create(server) as API.ServerView<TlogService>
  Object.defineProperty(safe, 'request', {
    value: async (req: Parameters<typeof request>[0]) => {
      try {
        return await request(req)
      } catch (cause) {
        logger.error({ err: cause }, 'ucanto request failed')
        return {
          status: 400,
          headers: { 'content-type': 'text/plain' },
          body: new TextEncoder().encode('Bad request: the agent message could not be processed'),
        }
      }
    },
  })
  return safe
}

/** Copies exactly the wire fields, so nothing else the log returns leaks into a receipt. */
function toWire(r: AppendResult): AppendResult {
  return {
    logId: r.logId,
    origin: r.origin,
    index: r.index,
    treeSize: r.treeSize,
    rootHash: r.rootHash,
    checkpoint: r.checkpoint,
    inclusionProof: [...r.inclusionProof],
    published: r.published,
  }
}

/** Wraps an Ed25519 ucanto signer (multicodec 0x1300) to sign with node:crypto; others pass through. */
function fastIfEd25519(signer: API.Signer): API.Signer {
  const s = signer as API.Signer & { code?: number }
  if (s.code === 0x1300 && s.did().startsWith('did:key:')) {
    return createFastSigner(signer as Parameters<typeof createFastSigner>[0])
  }
  return signer
}

/**
 * A two-level service tree in which every `namespace/method` not defined (including inherited
 * names such as `toString` or `constructor`) resolves to `fallback`, since ucanto looks handlers
 * up by plain property access on the `can` path.
 */
function withFallback(
  tree: Record<string, Record<string, (invocation: API.Invocation) => unknown>>,
  fallback: (invocation: API.Invocation) => unknown,
): Record<string, unknown> {
  // Callable (for `can` without a namespace) and indexable to any depth (for deeper paths).
  // Symbol keys (inspection, coercion) behave as on a plain object.
  const lookup = (target: object, key: string | symbol): unknown =>
    typeof key === 'symbol' || Object.hasOwn(target, key) ? Reflect.get(target, key) : leaf
  const leaf: unknown = new Proxy(fallback, { get: (target, key) => (typeof key === 'symbol' ? Reflect.get(target, key) : leaf) })
  const namespace = (methods: Record<string, unknown>): object => new Proxy(methods, { get: lookup })
  const namespaces: Record<string, unknown> = Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, namespace(v)]))
  return new Proxy(namespaces, { get: lookup }) as Record<string, unknown>
}

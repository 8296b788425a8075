/**
 * The plain-HTTP side of a ucanlog service as `ucanlog/client` reads it (docs/wire.md "Routes"):
 * the service DID (`GET /did`), a log's head (`GET /logs/<space>/head`), the witness policy
 * (`GET /info`) and the log's public files (checkpoint, tiles, entry bundles), with every network
 * failure turned into a named error.
 */
import { ServiceRefusedError, ServiceUnreachableError, UnexpectedAnswerError } from './errors.js'
import { MAX_ENTRY_SIZE, TILE_WIDTH } from '../tlog/index.js'
import type { LogFileFetcher } from './verify-append.js'

/** A `fetch` (the global one by default); tests and apps may pass their own. */
export type Fetch = typeof fetch

/** A did:key as `GET /did` answers it. */
const DID_KEY = /^did:key:z[1-9A-HJ-NP-Za-km-z]+$/

/**
 * GETs `path` (resolved against the service base `url`), turning a network failure into
 * {@link ServiceUnreachableError}. Any HTTP status is returned to the caller.
 */
function get(url: string | URL, path: string, fetchImpl: Fetch): Promise<Response> {
  return namedGet(url, fetchImpl)(new URL(path, url))
}

/** Error codes of Node and undici meaning the peer could not be reached (never that it answered). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
])

/**
 * Whether `err` is a failure to reach a peer: `fetch`'s `TypeError('fetch failed')` whose cause
 * has one of the network error codes, such an error itself, or an abort by timeout.
 */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown }
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true
    if (name === 'TimeoutError' || name === 'ConnectTimeoutError') return true
  }
  return false
}

/** The innermost message of an error chain, e.g. `connect ECONNREFUSED 127.0.0.1:8787` under `fetch failed`. */
export function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined
  let msg = String(e?.message ?? e)
  for (let depth = 0; e?.cause && depth < 4; depth++) {
    e = e.cause as { message?: string; cause?: unknown }
    if (e?.message) msg = e.message
  }
  return msg
}

/**
 * The {@link ServiceUnreachableError} for a failed request to the service at `url`, naming the URL,
 * the cause (`connect ECONNREFUSED …`, `getaddrinfo ENOTFOUND …`) and `next`, the step to take.
 */
export function unreachable(url: string | URL, err: unknown, next = 'check the URL'): ServiceUnreachableError {
  return new ServiceUnreachableError(`cannot reach the service at ${String(url)} (${rootCause(err)}); is \`ucanlog serve\` running there? ${next}`, { cause: err, url })
}

/**
 * The service's DID, from `GET <url>/did`: the audience of every invocation and the issuer of
 * every receipt.
 * @throws ServiceUnreachableError; ServiceRefusedError (`HTTPError`) on a non-2xx status;
 *   UnexpectedAnswerError when the answer is not a did:key (or longer than 1 KiB).
 */
export async function fetchServiceDID(url: string | URL, fetchImpl: Fetch = fetch): Promise<`did:key:${string}`> {
  const res = await get(url, '/did', fetchImpl)
  if (!res.ok) throw httpRefusal(res, '/did')
  const did = new TextDecoder().decode(await readBody(res, MAX_DID_ANSWER_BYTES)).trim()
  if (!DID_KEY.test(did)) throw new UnexpectedAnswerError(`${new URL('/did', url).href} did not answer a did:key; is ${String(url)} a ucanlog service?`)
  return did as `did:key:${string}`
}

/** What `GET /logs/<space>/head` tells of a log (docs/wire.md): its origin and log key, and the latest published checkpoint. */
export interface LogHead {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin, `<originPrefix>/logs/<space>`. */
  origin: string
  /** The log's note verifier key (c2sp.org/signed-note vkey, Ed25519 type 0x01). */
  vkey: string
  /** Size of the latest published checkpoint's tree, in entries. */
  treeSize: number
  /** Its root hash, standard base64 of 32 bytes. */
  rootHash: string
  /** The latest published checkpoint note (cosigned). */
  checkpoint: string
}

/**
 * A log's head, from `GET <url>/logs/<space>/head`; undefined when the service has no published log
 * for `space` (404). Trust on first use: the `vkey` here is what the service claims — pin it (as
 * `ucanlog audit` does) and compare later answers against the pinned one.
 * @throws ServiceUnreachableError; ServiceRefusedError on another non-2xx status;
 *   UnexpectedAnswerError for a body that is not a log head, not JSON, or past {@link MAX_JSON_ANSWER_BYTES}.
 */
export async function fetchLogHead(url: string | URL, space: string, fetchImpl: Fetch = fetch): Promise<LogHead | undefined> {
  // Escaped as a path segment, except `:` (a did:key spelled as every other reader spells it: `:` is
  // reserved in URLs, so a static copy of the log need not treat `%3A` as `:`).
  const path = `/logs/${encodeURIComponent(space).replaceAll('%3A', ':')}/head`
  const res = await get(url, path, fetchImpl)
  if (res.status === 404) return undefined
  if (!res.ok) throw httpRefusal(res, path)
  const head = (await readJson(res, path)) as LogHead
  if (typeof head?.origin !== 'string' || typeof head.vkey !== 'string') throw new UnexpectedAnswerError(`${path} is not a log head`)
  return head
}

/**
 * The witness policy text the service runs with (c2sp.org/tlog-policy), from `GET <url>/info`.
 * Trust on first use, like {@link fetchLogHead}'s key: pin it. Parse it with `parsePolicy`.
 * @throws ServiceUnreachableError; ServiceRefusedError on a non-2xx status; UnexpectedAnswerError
 *   without one, for a body that is not JSON or past {@link MAX_JSON_ANSWER_BYTES}.
 */
export async function fetchWitnessPolicy(url: string | URL, fetchImpl: Fetch = fetch): Promise<string> {
  const res = await get(url, '/info', fetchImpl)
  if (!res.ok) throw httpRefusal(res, '/info')
  const info = (await readJson(res, '/info')) as { witnessPolicy?: unknown }
  if (typeof info?.witnessPolicy !== 'string') throw new UnexpectedAnswerError('/info has no witnessPolicy')
  return info.witnessPolicy
}

/** Bound on the answer of `GET /did` (a did:key is ~56 bytes), bytes. */
const MAX_DID_ANSWER_BYTES = 1024

/**
 * Bound on a JSON answer the client reads (`/logs/<space>/head`, `/info`), bytes: 1 MiB, far above
 * a head (a cosigned checkpoint of a few KiB) or the service's witness policy.
 */
export const MAX_JSON_ANSWER_BYTES = 1 << 20

/**
 * Reads a JSON answer of at most {@link MAX_JSON_ANSWER_BYTES} bytes ({@link readBody}).
 * @throws UnexpectedAnswerError past the bound or when the body is not JSON (naming `path`);
 *   ServiceUnreachableError when the body breaks off.
 */
async function readJson(res: Response, path: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readBody(res, MAX_JSON_ANSWER_BYTES))
  try {
    return JSON.parse(text)
  } catch {
    throw new UnexpectedAnswerError(`${path} did not answer JSON`)
  }
}

/**
 * A reader of a log's public files for `auditLog`'s `fetchFile`: `path` is a tlog-tiles path
 * (`checkpoint`, `tile/0/000`, `tile/entries/000`, …) under `<url>/logs/<space>/`; the bytes, or
 * undefined on 404 ({@link httpLogFiles}, with the network failure named and each file bounded).
 * @throws (when called) ServiceUnreachableError; ServiceRefusedError (`HTTPError`) naming the path on
 *   another non-2xx status; UnexpectedAnswerError past {@link MAX_LOG_FILE_BYTES}.
 */
export function logFiles(url: string | URL, space: string, fetchImpl: Fetch = fetch): LogFileFetcher {
  return httpLogFiles(url, space, namedGet(url, fetchImpl))
}

/**
 * The largest public file of a log (c2sp.org/tlog-tiles), in bytes: a full entry bundle, 256
 * entries of at most 65,535 bytes each with its 2-byte length prefix (16,777,472 bytes). Tiles
 * (≤ 8,192 bytes) and checkpoints are far smaller.
 */
export const MAX_LOG_FILE_BYTES = TILE_WIDTH * (MAX_ENTRY_SIZE + 2)

/**
 * A {@link LogFileFetcher} over HTTP: `GET <url>/logs/<space>/<path>`; 404 is undefined. Each body is
 * read up to `maxBytes` ({@link readBody}), so a hostile server cannot make the reader buffer more.
 * @param get performs the GET (default `fetch`); its rejection (service unreachable) propagates as is.
 * @param maxBytes bound on one file, bytes; default {@link MAX_LOG_FILE_BYTES}.
 * @throws (when called) ServiceRefusedError (`HTTPError`, exit 2) naming the path on another non-2xx
 *   status; UnexpectedAnswerError past `maxBytes`.
 */
export function httpLogFiles(
  url: string | URL,
  space: string,
  get: (url: URL) => Promise<Response> = (u) => fetch(u),
  maxBytes = MAX_LOG_FILE_BYTES,
): LogFileFetcher {
  const base = new URL(`/logs/${space}/`, url)
  return async (path) => {
    const res = await get(new URL(path, base))
    if (res.status === 404) {
      await res.body?.cancel()
      return undefined
    }
    if (!res.ok) {
      await res.body?.cancel()
      throw httpRefusal(res, path)
    }
    return readBody(res, maxBytes)
  }
}

/**
 * Reads a response body of at most `maxBytes` bytes: a declared `content-length` past it is refused
 * before reading, and an undeclared body is read chunk by chunk and abandoned (the connection
 * closed) as soon as it passes the bound.
 * @throws UnexpectedAnswerError past `maxBytes`; ServiceUnreachableError when the body breaks off.
 */
export async function readBody(res: Response, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new UnexpectedAnswerError(`GET ${res.url} answered more than ${maxBytes} bytes`)
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
    await res.body?.cancel()
    throw tooLarge()
  }
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for await (const chunk of res.body ?? []) {
      total += chunk.length
      if (total > maxBytes) throw tooLarge()
      chunks.push(chunk)
    }
  } catch (err) {
    await res.body?.cancel().catch(() => {})
    throw err instanceof UnexpectedAnswerError ? err : unreachable(res.url, err)
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks))
}

/**
 * A GET for the verifiers' `get` options (trust-store.ts, verify-session.ts): `fetchImpl(url)`,
 * with a network failure turned into {@link ServiceUnreachableError} naming the service `base` and
 * `next`, the step to take (default: check the URL).
 */
export function namedGet(base: string | URL, fetchImpl: Fetch = fetch, next?: string): (url: URL) => Promise<Response> {
  return async (url) => {
    try {
      return await fetchImpl(url)
    } catch (err) {
      // Already named (a caller's GET that names its service and next step): kept as it is.
      if (err instanceof ServiceUnreachableError) throw err
      throw unreachable(base, err, next)
    }
  }
}

function httpRefusal(res: Response, path: string): ServiceRefusedError {
  return new ServiceRefusedError({ name: 'HTTPError', message: `GET ${path} answered HTTP ${res.status}` }, res.status)
}

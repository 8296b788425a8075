/**
 * The trust store: per log (space DID), what a client pinned — the service URL and DID, the log's
 * origin and vkey, the witness policy, and the last checkpoint it saw — so that `ucanlog append` and
 * `ucanlog audit` hold the service to the same keys and each sees the other's last checkpoint.
 *
 * One JSON file per space, `<stateDir>/<spaceDID>.json`, pretty-printed, created mode 0600 in a
 * directory created 0700, written atomically (a temporary file, fsync, rename, fsync of the
 * directory). The format is the one `ucanlog audit` always wrote (`url`, `space`, `origin`,
 * `logVkey`, `policy`, `size`, `rootHash`, `checkpoint`) plus `serviceDid`.
 *
 * Trust on first use: what is neither given explicitly nor pinned is taken from the service
 * (`/logs/<space>/head` for the log key and origin, `/info` for the witness policy, `/did` for the
 * service DID) and pinned; later a different key at `/head` or `/did` is refused.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { type Hash, decodeHash, encodeBase64 } from '../tlog/index.js'
import { readPrivateFile, writePrivateFileAtomic } from './private-file.js'
import { UcanlogError, UnexpectedAnswerError } from './errors.js'
import { type Fetch, fetchLogHead, fetchServiceDID, fetchWitnessPolicy } from './http.js'
import { LogKeyChangedError, ServiceKeyChangedError } from './verify-errors.js'

/** A checkpoint a client verified and saw: tree size (entries), 32-byte root hash, and the note text. */
export interface SeenCheckpoint {
  size: number
  rootHash: Hash
  note: string
}

/** What a client pinned for one log. */
export interface TrustAnchors {
  /** The log id: the space DID (`did:key:z…`). */
  space: string
  /** The service base URL last used for this log (informational: the keys are what is pinned). */
  url: string
  /** The service DID that must issue (sign) every receipt; absent until a client that needs it (append) pins it. */
  serviceDid?: string
  /** The log's checkpoint origin (c2sp.org/tlog-checkpoint). */
  origin: string
  /** The log's note verifier key (c2sp.org/signed-note vkey, Ed25519 type 0x01). */
  logVkey: string
  /** The witness policy text (c2sp.org/tlog-policy) checkpoints must meet. */
  policy: string
  /** The largest checkpoint seen and verified so far; absent before the first. */
  last?: SeenCheckpoint
}

/** A trust-store file that cannot be read or parsed, or a state directory that cannot be written. CLI exit 1. */
export class TrustStoreError extends UcanlogError {
  override name = 'TrustStoreError'
}

/** The service shows no published log for the space and nothing was pinned (or `createLog` not given). CLI exit 1. */
export class NoPublishedLogError extends UcanlogError {
  override name = 'NoPublishedLog'
}

/** The on-disk shape (see the module comment). */
interface TrustFile {
  url: string
  space: string
  serviceDid?: string
  origin: string
  logVkey: string
  policy: string
  size?: number
  rootHash?: string
  checkpoint?: string
}

/**
 * The state directory: `$UCANLOG_STATE`, else `$UCANLOG_AUDIT_STATE` (its older name, kept
 * working), else `~/.ucanlog/audit`.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.UCANLOG_STATE || env.UCANLOG_AUDIT_STATE || join(homedir(), '.ucanlog', 'audit')
}

/** The trust-store file of `space` in `stateDir`: `<stateDir>/<space>.json`. */
export function trustFilePath(stateDir: string, space: string): string {
  if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(space)) throw new TypeError(`not a did:key space: ${space.slice(0, 80)}`)
  return join(stateDir, `${space}.json`)
}

/**
 * Reads what was pinned for `space`, or undefined when nothing was.
 * @throws TrustStoreError when the file exists but cannot be read or is not a trust-store file (the message names it).
 */
export async function loadTrust(stateDir: string, space: string): Promise<TrustAnchors | undefined> {
  const file = trustFilePath(stateDir, space)
  const text = await readPrivateFile(file, (m) => new TrustStoreError(m))
  if (text === undefined) return undefined
  try {
    return fromFile(JSON.parse(text) as unknown, space)
  } catch (err) {
    throw new TrustStoreError(`${file} is not a ucanlog trust-store file (${(err as Error).message}); move it away to pin the log anew`)
  }
}

/**
 * Writes `anchors` to `<stateDir>/<space>.json` atomically (0600 file, directory created 0700).
 * The last checkpoint never moves back: when the file already holds a larger one (another process
 * saw it meanwhile), that one is kept.
 * @returns the file's path.
 * @throws TrustStoreError when the directory or file cannot be written.
 */
export async function saveTrust(stateDir: string, anchors: TrustAnchors): Promise<string> {
  const file = trustFilePath(stateDir, anchors.space)
  let last = anchors.last
  const current = await loadTrust(stateDir, anchors.space).catch(() => undefined)
  if (current?.last && (!last || current.last.size > last.size)) last = current.last
  const out: TrustFile = {
    url: anchors.url,
    space: anchors.space,
    ...(anchors.serviceDid !== undefined && { serviceDid: anchors.serviceDid }),
    origin: anchors.origin,
    logVkey: anchors.logVkey,
    policy: anchors.policy,
    ...(last && { size: last.size, rootHash: encodeBase64(last.rootHash), checkpoint: last.note }),
  }
  try {
    await writePrivateFileAtomic(file, JSON.stringify(out, null, 2) + '\n')
  } catch (err) {
    throw new TrustStoreError(`cannot write ${file}: ${(err as Error).message}; check that ${stateDir} is writable (--state, UCANLOG_STATE)`)
  }
  return file
}

/** Options of {@link resolveTrust}. */
export interface ResolveTrustOptions {
  /** The service base URL. */
  url: string
  /** The space DID whose log it is. */
  space: string
  /** What was pinned before ({@link loadTrust}), if anything. */
  stored?: TrustAnchors
  /** What the user gave explicitly: it wins over the pin and is pinned (`--log-vkey`, `--witness-policy` file's text, `--service-did`). */
  explicit?: { logVkey?: string; policy?: string; serviceDid?: string }
  /** Whether the service DID is needed (append: yes, to check receipts; audit: no). */
  needServiceDid?: boolean
  /** GETs a URL of the service; rejects when it cannot be reached (the caller's own error). */
  get(url: URL): Promise<Response>
  /**
   * When `/logs/<space>/head` is 404 (no published checkpoint yet, e.g. a new space): creates the
   * log (`tlog/create`) and answers its origin and vkey (from a receipt it checked with
   * {@link import('./verify-append.js').verifyServiceReceipt} against the `serviceDid` it is given, the
   * one resolved here when `needServiceDid`). Without it, a log with no published checkpoint is a
   * {@link NoPublishedLogError}. Note that `tlog/create` publishes no checkpoint: /head stays 404
   * until the first append is published.
   */
  createLog?: (serviceDid: string | undefined) => Promise<{ origin: string; vkey: string }>
  /** How the trust-on-first-use notes name this use, e.g. `first audit`; default `first use`. */
  firstUse?: string
}

/**
 * Decides the anchors for this run: explicit values, else the pinned ones, else what the service
 * shows (trust on first use, each such choice reported in `notes`). Fetches `/did` first when
 * `needServiceDid`, then `/logs/<space>/head` always, and `/info` only when no policy is given or pinned.
 * @throws LogKeyChangedError when /head shows another vkey than the pinned one (and none is given);
 *   ServiceKeyChangedError when /did shows another DID than the pinned one (and none is given);
 *   NoPublishedLogError; ServiceRefusedError (`HTTPError`, exit 2) when a route answers a non-2xx
 *   status; UnexpectedAnswerError when it answers another shape (http.ts).
 */
export async function resolveTrust(o: ResolveTrustOptions): Promise<{ anchors: TrustAnchors; notes: string[] }> {
  const first = o.firstUse ?? 'first use'
  const notes: string[] = []
  // The routes are read by http.ts, through the caller's GET (which names an unreachable service).
  const fetchImpl: Fetch = (input) => o.get(new URL(String(input)))
  let serviceDid = o.explicit?.serviceDid ?? o.stored?.serviceDid
  if (o.needServiceDid) {
    const shown = await fetchServiceDID(o.url, fetchImpl)
    if (!serviceDid) {
      serviceDid = shown
      notes.push(`${first} of this service: trusting the service DID it shows at /did (${shown}); it is pinned from now on`)
    } else if (!o.explicit?.serviceDid && shown !== serviceDid) {
      throw new ServiceKeyChangedError(`the service at ${o.url} now shows DID ${shown}, but ${serviceDid} was pinned`)
    }
  }

  const head = (await fetchLogHead(o.url, o.space, fetchImpl)) ?? (await o.createLog?.(serviceDid))
  if (!head) throw new NoPublishedLogError(`the service has no published log for ${o.space}`)
  if (typeof head.vkey !== 'string' || typeof head.origin !== 'string') throw new UnexpectedAnswerError(`the log ${o.space} was created without an origin and vkey`)

  let logVkey = o.explicit?.logVkey ?? o.stored?.logVkey
  if (!logVkey) {
    logVkey = head.vkey
    notes.push(`${first} of this log: trusting the log key the service shows (${logVkey}); it is pinned from now on`)
  } else if (!o.explicit?.logVkey && head.vkey !== logVkey) {
    throw new LogKeyChangedError(`the service now shows log key ${head.vkey}, but ${logVkey} was pinned`)
  }

  let policy = o.explicit?.policy ?? o.stored?.policy
  if (!policy) {
    policy = await fetchWitnessPolicy(o.url, fetchImpl)
    notes.push(`${first} of this log: using the witness policy the service shows at /info; it is pinned from now on`)
  }

  const anchors: TrustAnchors = {
    space: o.space,
    url: o.url,
    ...(serviceDid !== undefined && { serviceDid }),
    origin: o.stored?.origin ?? head.origin,
    logVkey,
    policy,
    ...(o.stored?.last && { last: o.stored.last }),
  }
  return { anchors, notes }
}

function fromFile(j: unknown, space: string): TrustAnchors {
  const f = j as Partial<TrustFile>
  if (typeof f !== 'object' || f === null) throw new Error('not a JSON object')
  for (const k of ['url', 'space', 'origin', 'logVkey', 'policy'] as const) {
    if (typeof f[k] !== 'string') throw new Error(`"${k}" is not a string`)
  }
  if (f.space !== space) throw new Error(`it is the file of ${f.space}`)
  if (f.serviceDid !== undefined && typeof f.serviceDid !== 'string') throw new Error('"serviceDid" is not a string')
  let last: SeenCheckpoint | undefined
  if (f.size !== undefined) {
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw new Error('"size" is not an entry count')
    if (typeof f.rootHash !== 'string' || typeof f.checkpoint !== 'string') throw new Error('"rootHash" and "checkpoint" must come with "size"')
    last = { size: f.size, rootHash: decodeHash(f.rootHash), note: f.checkpoint }
  }
  return {
    space: f.space,
    url: f.url!,
    ...(f.serviceDid !== undefined && { serviceDid: f.serviceDid }),
    origin: f.origin!,
    logVkey: f.logVkey!,
    policy: f.policy!,
    ...(last && { last }),
  }
}

/**
 * The UCAN RPC on the wire (docs/wire.md): the ok result of each ability as a client finds it in
 * `receipt.out.ok`, the service tree a client connects to, and the one encoding of the engine's
 * append outcome into the wire result (standard padded base64 for hashes, RFC 4648 §4). Failures
 * are errors.ts's.
 */
import type { API } from '@ucanto/core'
import { encodeBase64 } from '../tlog/encoding.js'
import type { AppendFailure, CreateFailure, ReadFailure, RevokeFailure } from './errors.js'
import type { Appended } from './log-service.js'

/**
 * Default cap on an RPC request body (`POST /rpc`), in bytes (1 MiB): the service answers HTTP 413
 * above its `--max-body` (this by default), so clients check their requests against it first.
 */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20

/** The ok result of `tlog/append`. */
export interface AppendResult {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin line, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The entry's position in the log, 0-based. */
  index: number
  /** Size of the tree `checkpoint` commits to, in entries (> index); when not published, the integrated tree's size. */
  treeSize: number
  /** Root hash of that tree, standard base64 of 32 bytes. */
  rootHash: string
  /** The cosigned checkpoint note text (c2sp.org/tlog-checkpoint, signed-note); "" when not published. */
  checkpoint: string
  /** RFC 6962 §2.1.1 inclusion proof of the entry in `checkpoint`'s tree, each hash standard base64; [] when not published. */
  inclusionProof: string[]
  /** Whether the checkpoint met the witness policy and was published; if false, the proof comes later. */
  published: boolean
}

/** The ok result of `tlog/create`, also what {@link import('./log-service.js').LogService.create} resolves to. */
export interface CreateResult {
  /** The log id: the space DID. */
  logId: string
  /** The checkpoint origin, `<originPrefix>/logs/<spaceDID>`. */
  origin: string
  /** The log's note verifier key (c2sp.org/signed-note vkey, Ed25519 type 0x01). */
  vkey: string
  /** Entries integrated so far (0 for a new log). */
  treeSize: number
}

/** The ok result of `tlog/read`. */
export interface ReadResult {
  /** Entries from `offset`, each standard padded base64; possibly fewer than `limit`. */
  entries: string[]
  /** Number of entries in the log. */
  total: number
}

/** The ok result of `ucan/revoke`: storacha's `{ time }` plus where the record is in the revocation log. */
export interface RevokeResult {
  /** When the revocation was (first) recorded, Unix milliseconds (storacha's `time`). */
  time: number
  /** CID of the revoked UCAN. */
  ucan: string
  /** The revoking principal (`with`). */
  scope: string
  /** Entry index in the revocation log (`<prefix>/revocations`), when it has been appended. */
  index?: number
  /** `true` when `scope` had already revoked this UCAN: nothing changed (absent otherwise). */
  alreadyRevoked?: true
}

/** A raw ucanto method of this service. */
type RawMethod<O extends {}, X extends API.Failure> = (invocation: API.Invocation) => Promise<API.Result<O, X>>

/** The service tree handed to ucanto and typed by clients: `tlog/append` → `tlog.append`. */
export interface TlogService {
  tlog: {
    append: RawMethod<AppendResult, AppendFailure>
    read: RawMethod<ReadResult, ReadFailure>
    create: RawMethod<CreateResult, CreateFailure>
  }
  ucan: {
    revoke: RawMethod<RevokeResult, RevokeFailure>
  }
}

/**
 * The wire result of an append: exactly the wire fields (nothing else the engine returns leaks
 * into a receipt), hashes in standard base64; an unpublished entry has `checkpoint: ""` and no proof.
 */
export function appendResultOf(a: Appended): AppendResult {
  return a.published
    ? {
        logId: a.logId,
        origin: a.origin,
        index: a.index,
        treeSize: a.checkpoint.size,
        rootHash: encodeBase64(a.checkpoint.rootHash),
        checkpoint: a.checkpoint.note,
        inclusionProof: a.inclusionProof.map(encodeBase64),
        published: true,
      }
    : {
        logId: a.logId,
        origin: a.origin,
        index: a.index,
        treeSize: a.tree.size,
        rootHash: encodeBase64(a.tree.rootHash),
        checkpoint: '',
        inclusionProof: [],
        published: false,
      }
}

/**
 * Verifying `tlog/append` receipts without trusting the service (docs/wire.md, issue 12 item 2):
 * a receipt is "verified" only when it is signed by the pinned service DID and answers the
 * invocation sent; its checkpoint is signed by the pinned log key under the pinned origin and
 * cosigned as the pinned witness policy requires; its result's origin, size and root are the
 * checkpoint's and its inclusion proof puts the entry at its index; and — at {@link AppendVerifier.settle}
 * — every checkpoint seen in the run is consistent with the last one pinned, with each other, and
 * with the log's current checkpoint.
 *
 * Pure of the server: the log's public files come through an injected `fetchFile`, so it runs over
 * HTTP (http.ts `httpLogFiles`) and in tests alike.
 */
import type * as API from '@ucanto/interface'
import { type Policy, equalBytes, parsePolicy } from '../tlog/index.js'
import { createPrincipalParser } from '../ucan/principal.js'
import type { AppendResult } from '../ucan/wire.js'
import { checkConsistentWith } from './consistency.js'
import { checkAppendResult } from './receipt.js'
import { servedTileReader } from './tiles.js'
import type { SeenCheckpoint, TrustAnchors } from './trust-store.js'
import { type VerifiedCheckpoint, verifyCheckpointNote } from './verify-checkpoint.js'
import {
  InclusionProofError,
  MissingFileError,
  OriginMismatchError,
  ReceiptMismatchError,
  ReceiptSignatureError,
  RollbackError,
  SplitViewError,
  VerificationError,
} from './verify-errors.js'

/** Reads a file of one log by its tlog-tiles path (`checkpoint`, `tile/0/000.p/5`, …); undefined when not served (404). */
export type LogFileFetcher = (path: string) => Promise<Uint8Array | undefined>

/** Options of {@link AppendVerifier}. */
export interface AppendVerifierOptions {
  /** The pinned anchors ({@link resolveTrust}); `serviceDid` is required. */
  trust: TrustAnchors
  /** The log's public files (its `/logs/<space>/` routes), for the consistency proofs and the current checkpoint. */
  fetchFile: LogFileFetcher
  /** The verifier's clock, Unix seconds (cosignatures dated more than 600 s ahead are refused); default the system clock. */
  now?: () => number
}

/** What {@link AppendVerifier.verifyReceipt} found of one authentic receipt. */
export type VerifiedReceipt =
  /** Published: signature, checkpoint (log signature, origin, cosignatures) and inclusion proof verified; consistency is checked by {@link AppendVerifier.settle}. */
  | { status: 'verified'; result: AppendResult }
  /** Signed by the service but `published: false`: durable, sequenced at `result.index`, with no checkpoint to verify yet. Never report it as verified. */
  | { status: 'unpublished'; result: AppendResult }
  /** Signed by the service: the append was refused (`error.name` per docs/wire.md, e.g. `RateLimited`). */
  | { status: 'refused'; error: { name: string; message: string } }

/**
 * Verifies the receipts of one run of appends to one log, then settles the run's checkpoints
 * against the pinned one. Usage: `verifyReceipt` each receipt (any order, concurrently), then
 * `await settle()` once, and only then call the appends verified; save what it returns
 * ({@link saveTrust}). Each distinct checkpoint note is verified once per run.
 */
export class AppendVerifier {
  readonly #trust: TrustAnchors & { serviceDid: string }
  readonly #policy: Policy
  readonly #service: API.Verifier
  readonly #fetchFile: LogFileFetcher
  readonly #now: () => number
  /** Verified checkpoint notes of this run, by note text. */
  readonly #notes = new Map<string, VerifiedCheckpoint>()

  /**
   * @throws TypeError when `trust.serviceDid` is absent; the policy's parse error when `trust.policy` is not a policy.
   */
  constructor(o: AppendVerifierOptions) {
    if (!o.trust.serviceDid) throw new TypeError('AppendVerifier needs trust.serviceDid (resolveTrust with needServiceDid)')
    this.#trust = o.trust as TrustAnchors & { serviceDid: string }
    this.#policy = parsePolicy(o.trust.policy)
    this.#service = createPrincipalParser().parse(o.trust.serviceDid as API.DID)
    this.#fetchFile = o.fetchFile
    this.#now = o.now ?? (() => Math.floor(Date.now() / 1000))
  }

  /**
   * Verifies one receipt of a `tlog/append` of `entry` (its bytes, as sent).
   * @param invocation the link (CID) of the invocation sent; when given, the receipt must answer it.
   * @throws ReceiptSignatureError (ReceiptSignatureInvalid): not issued or not validly signed by the pinned service DID;
   *   ReceiptMismatchError: another invocation's receipt, or not a `tlog/append` result of this log;
   *   OriginMismatchError; LogSignatureError (LogSignatureInvalid); MalformedFileError; CosignatureInvalidError;
   *   WitnessPolicyError (WitnessPolicyNotMet); InvalidReceiptError (InvalidReceipt: the result's origin, size or
   *   root differ from its checkpoint's); InclusionProofError (InclusionProofInvalid). All exit code 3.
   */
  async verifyReceipt(receipt: API.Receipt, entry: Uint8Array, invocation?: API.Link): Promise<VerifiedReceipt> {
    await verifyServiceReceipt(receipt, this.#service, invocation)
    const out = receipt.out as { ok?: unknown; error?: { name?: unknown; message?: unknown } }
    if (out.error !== undefined) {
      return { status: 'refused', error: { name: String(out.error?.name ?? 'Error'), message: String(out.error?.message ?? '') } }
    }
    const r = out.ok
    if (!isAppendResult(r)) throw new ReceiptMismatchError('the receipt\'s result is not a tlog/append result')
    if (r.logId !== this.#trust.space) throw new ReceiptMismatchError(`the receipt is for log ${r.logId}, not ${this.#trust.space}`)
    if (r.origin !== this.#trust.origin) throw new OriginMismatchError(`the receipt's origin ${r.origin} is not the pinned ${this.#trust.origin}`)
    if (!r.published) return { status: 'unpublished', result: r }
    this.#verifyNote(r.checkpoint)
    try {
      checkAppendResult(r, entry)
    } catch (err) {
      if (err instanceof VerificationError) throw err
      throw new InclusionProofError(`the inclusion proof of entry ${r.index} does not verify against its checkpoint (size ${r.treeSize}): ${(err as Error).message}`)
    }
    return { status: 'verified', result: r }
  }

  /**
   * Checks every checkpoint of this run's verified receipts for consistency (RFC 6962 §2.1.2) with
   * the pinned last checkpoint and with each other, through the log's current checkpoint (fetched
   * and verified as a receipt's): none may be larger than it (else LogRolledBack), equal sizes must
   * have equal roots (else SplitView), and each must be a prefix of it, proved from its public tiles
   * (else LogForked). Does nothing (no fetch) when the run verified no checkpoint.
   * @returns the anchors with `last` = the largest checkpoint now verified: save them ({@link saveTrust}).
   * @throws RollbackError, SplitViewError, ForkError, MissingFileError, and the checkpoint errors of {@link verifyReceipt}.
   */
  async settle(): Promise<TrustAnchors> {
    if (this.#notes.size === 0) return this.#trust
    const seen: (SeenCheckpoint & { what: string })[] = [...this.#notes.values()].map((v) => ({ size: v.checkpoint.size, rootHash: v.checkpoint.rootHash, note: v.note, what: `a receipt's checkpoint of size ${v.checkpoint.size}` }))
    const cpBytes = await this.#fetchFile('checkpoint')
    if (!cpBytes) throw new MissingFileError('the log serves no checkpoint, though its receipts carry published ones')
    const current = this.#verifyNote(Buffer.from(cpBytes).toString('utf8'))
    const pinned = this.#trust.last
    if (pinned) seen.push({ ...pinned, what: `the pinned checkpoint of size ${pinned.size}` })
    const cur = current.checkpoint

    const bySize = new Map<number, (typeof seen)[number]>()
    for (const c of seen) {
      const other = bySize.get(c.size)
      if (other && !equalBytes(other.rootHash, c.rootHash)) throw new SplitViewError(`two checkpoints of size ${c.size} with different roots: ${other.what} and ${c.what}`)
      bySize.set(c.size, c)
      if (c.size > cur.size) throw new RollbackError(`the log rolled back: it now publishes size ${cur.size}, but ${c.what} was seen`)
    }
    const reader = servedTileReader(cur.size, cur.rootHash, cached(this.#fetchFile), (path) => new MissingFileError(`tile ${path} is missing`))
    for (const c of [...bySize.values()].sort((a, b) => a.size - b.size)) {
      if (c.size === cur.size && !equalBytes(c.rootHash, cur.rootHash)) throw new SplitViewError(`the current checkpoint of size ${cur.size} has another root than ${c.what}`)
      if (c.size < cur.size) await checkConsistentWith(c, cur, reader, c.what)
    }
    return { ...this.#trust, last: { size: cur.size, rootHash: cur.rootHash, note: current.note } }
  }

  /** Verifies a checkpoint note once per run (log signature, origin, cosignatures per policy). */
  #verifyNote(note: string): VerifiedCheckpoint {
    let v = this.#notes.get(note)
    if (!v) {
      v = verifyCheckpointNote(note, { origin: this.#trust.origin, logVkey: this.#trust.logVkey, policy: this.#policy, now: this.#now() })
      this.#notes.set(note, v)
    }
    return v
  }
}

/**
 * Checks that `receipt` comes from the service: issued (`iss`) by `service` (a DID, or its
 * verifier), its signature verifying with that key, and — when `invocation` (a link) is given —
 * answering that invocation (`ran`). Any ability's receipt (`tlog/append`, `tlog/create`, …); its
 * `out` is not looked at.
 * @throws ReceiptSignatureError (ReceiptSignatureInvalid); ReceiptMismatchError (another invocation's receipt). Exit code 3.
 */
export async function verifyServiceReceipt(receipt: API.Receipt, service: string | API.Verifier, invocation?: API.Link): Promise<void> {
  const verifier = typeof service === 'string' ? createPrincipalParser().parse(service as API.DID) : service
  const did = verifier.did()
  const issuer = receipt.issuer?.did()
  if (issuer !== did) throw new ReceiptSignatureError(`the receipt is issued by ${issuer ?? 'nobody'}, not by the pinned service ${did}`)
  const signed = await receipt.verifySignature(verifier)
  if (signed.error) throw new ReceiptSignatureError(`the receipt's signature does not verify with the pinned service key ${did}`)
  if (invocation) {
    const ran = (receipt.ran as { link(): API.Link }).link()
    if (!ran.equals(invocation)) throw new ReceiptMismatchError(`the receipt answers invocation ${ran}, not ${invocation}`)
  }
}

/** `fetchFile` with each path fetched once (tiles are immutable; settle builds many proofs over the same tiles). */
function cached(fetchFile: LogFileFetcher): LogFileFetcher {
  const memo = new Map<string, Promise<Uint8Array | undefined>>()
  return (path) => {
    let p = memo.get(path)
    if (!p) memo.set(path, (p = fetchFile(path)))
    return p
  }
}

function isAppendResult(r: unknown): r is AppendResult {
  const x = r as Partial<AppendResult> | undefined
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.logId === 'string' &&
    typeof x.origin === 'string' &&
    Number.isSafeInteger(x.index) &&
    Number.isSafeInteger(x.treeSize) &&
    typeof x.rootHash === 'string' &&
    typeof x.checkpoint === 'string' &&
    Array.isArray(x.inclusionProof) &&
    x.inclusionProof.every((h) => typeof h === 'string') &&
    typeof x.published === 'boolean'
  )
}

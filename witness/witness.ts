/**
 * The witness core: c2sp.org/tlog-witness v1 `add-checkpoint` as a function over request bytes,
 * answering like litewitness (torchwood internal/witness) except where noted. It knows nothing
 * about HTTP; witness/http.ts maps its result to a Response.
 *
 * Request body:
 *
 *     old <size>\n
 *     <base64 consistency proof hash>\n     (0..63 lines, RFC 6962 §2.1.2, old → new)
 *     \n
 *     <checkpoint note signed by the log>
 *
 * On success the checkpoint is recorded (compare-and-swap on the old size, durable first) and the
 * answer is the witness's cosignature line (c2sp.org/tlog-cosignature cosignature/v1).
 *
 * Where this differs from litewitness, it follows the spec (main) and the project's issue:
 * unknown or disabled logs are 404 (litewitness: 403); a malformed note or non-canonical
 * checkpoint is 400 (litewitness: 500); `old` must be canonical decimal (litewitness accepts
 * `+5`, `05`); with old 0 a non-empty proof is 422 (litewitness ignores it) and a size-0
 * checkpoint must carry SHA-256("") (422 otherwise). The full log-signed note is stored, not only
 * size and root (torchwood#72).
 */
import { MalformedCheckpointError, parseCheckpoint } from '../src/tlog/checkpoint.js'
import type { Checkpoint } from '../src/tlog/checkpoint.js'
import { ed25519Cosigner } from '../src/tlog/cosignature.js'
import type { Cosigner } from '../src/tlog/cosignature.js'
import { decodeHash } from '../src/tlog/encoding.js'
import { EMPTY_ROOT, equalBytes } from '../src/tlog/hash.js'
import {
  ed25519Verifier,
  formatSignatureLine,
  InvalidSignatureError,
  isValidKeyName,
  MalformedKeyError,
  MalformedNoteError,
  openNote,
  UnverifiedNoteError,
} from '../src/tlog/note.js'
import { checkTree, InvalidProofError } from '../src/tlog/proof.js'
import type { WitnessLog, WitnessStore } from './store.js'

/** Largest accepted add-checkpoint body, in bytes (10 KiB, litewitness's http.MaxBytesHandler). */
export const MAX_ADD_CHECKPOINT_BODY = 10 * 1024
/** Most consistency-proof lines a request may carry (c2sp.org/tlog-witness). */
export const MAX_PROOF_LINES = 63
/** Content-Type of a 409 whose body is the witness's tree size (c2sp.org/tlog-witness). */
export const TLOG_SIZE_CONTENT_TYPE = 'text/x.tlog.size'

const TEXT = 'text/plain; charset=utf-8'
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * The outcome of an add-checkpoint request, ready to send: HTTP status, Content-Type and body.
 * - 200 `text/plain`: the cosignature line(s) only.
 * - 400 malformed request (or old size > checkpoint size); 403 no valid log signature (or a known
 *   key's signature is invalid); 404 unknown or disabled log; 409 `text/x.tlog.size` with body
 *   `"<size>\n"`: the old size is not the witness's size; 413 body over 10 KiB; 422 the checkpoint
 *   is not consistent with what the witness cosigned before.
 */
export interface WitnessResponse {
  status: number
  contentType?: string
  body: string
}

/** Options for {@link Witness}. */
export interface WitnessOptions {
  /** The witness's key name, e.g. "witness.example.com"; a valid signed-note key name. */
  name: string
  /** The 32-byte Ed25519 seed of the cosigning key (RFC 8032). */
  seed: Uint8Array
  /** Where log state and keys live; see WitnessStore for the guarantees relied on. */
  store: WitnessStore
  /** The clock for cosignature timestamps, in Unix seconds. Default: the system clock. */
  now?: () => number
}

/**
 * A c2sp.org/tlog-witness v1 witness with one Ed25519 cosignature/v1 key.
 * `vkey` is its verifier key, type 0x04, as published for policies and the witness network.
 */
export class Witness {
  readonly name: string
  readonly vkey: string
  readonly #cosigner: Cosigner
  readonly #store: WitnessStore
  readonly #now: () => number

  /** @throws MalformedKeyError if the name is not a valid key name or the seed is not 32 bytes. */
  constructor(opts: WitnessOptions) {
    if (!isValidKeyName(opts.name)) throw new MalformedKeyError(`invalid witness name ${JSON.stringify(opts.name)}`)
    this.#cosigner = ed25519Cosigner(opts.name, opts.seed)
    this.name = opts.name
    this.vkey = this.#cosigner.vkey
    this.#store = opts.store
    this.#now = opts.now ?? (() => Date.now() / 1000)
  }

  /** The logs the witness knows, for status pages. */
  async logs(): Promise<WitnessLog[]> {
    return this.#store.listLogs()
  }

  /**
   * Handles one add-checkpoint request body (c2sp.org/tlog-witness §add-checkpoint). Checks, in
   * litewitness's order: size cap; `old N` line (canonical decimal), ≤ 63 canonical base64 proof
   * hashes and the blank line; the origin is known and has keys; the note is well formed and a log
   * key verified it; the checkpoint is canonical; old ≤ size; old = the stored size; then either
   * trust on first use (old 0: no proof allowed, a size-0 tree must have the empty root) or the
   * consistency proof; then compare-and-swap, and only then cosign.
   * Store errors reject the promise (the HTTP layer answers 500).
   */
  async addCheckpoint(body: Uint8Array): Promise<WitnessResponse> {
    if (body.length > MAX_ADD_CHECKPOINT_BODY) return text(413, 'request body too large')
    const req = parseRequest(body)
    if (typeof req === 'string') return text(400, req)
    const { oldSize, proof, note } = req

    const origin = note.slice(0, Math.max(0, note.indexOf('\n')))
    const log = await this.#store.getLog(origin)
    if (log === undefined || log.keys.length === 0) return text(404, 'unknown log')

    let checkpoint: Checkpoint
    let cpText: string
    try {
      cpText = openNote(note, log.keys.map((k) => ed25519Verifier(k))).text
      checkpoint = parseCheckpoint(cpText)
    } catch (e) {
      if (e instanceof UnverifiedNoteError || e instanceof InvalidSignatureError) return text(403, 'invalid signature')
      if (e instanceof MalformedNoteError) return text(400, 'invalid input: malformed note')
      if (e instanceof MalformedCheckpointError) return text(400, 'invalid input: malformed checkpoint')
      throw e
    }

    if (oldSize > checkpoint.size) return text(400, 'invalid input: old size is larger than the checkpoint size')
    if (oldSize !== log.treeSize) return conflict(log.treeSize)
    if (oldSize === 0) {
      // Trust on first use. Spec main (and Sunlight, transparency-dev) reject a proof here;
      // litewitness ignores it. Rejecting keeps a log from believing a bogus proof was checked.
      if (proof.length > 0) return text(422, 'bad consistency proof: old size 0 takes no proof')
      if (checkpoint.size === 0 && !equalBytes(checkpoint.rootHash, EMPTY_ROOT)) return text(422, 'bad consistency proof: empty tree with a non-empty root')
    } else {
      try {
        checkTree(proof, checkpoint.size, checkpoint.rootHash, oldSize, log.rootHash) // same size: roots must match
      } catch (e) {
        if (e instanceof InvalidProofError) return text(422, 'bad consistency proof')
        throw e
      }
    }

    // Read the clock first, so a broken clock fails before any state changes.
    const timestamp = Math.floor(this.#now())
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new RangeError(`witness clock returned ${timestamp}`)

    // Compare-and-swap, durable before we answer: if another request moved the log since getLog,
    // our old size is stale and accepting would roll the log back. Report the winner's size.
    if (!(await this.#store.compareAndSwap(origin, oldSize, checkpoint.size, checkpoint.rootHash, note))) {
      const now = await this.#store.getLog(origin)
      if (now === undefined) return text(404, 'unknown log')
      return conflict(now.treeSize)
    }

    // Cosign the text exactly as received (parseCheckpoint accepted only canonical text).
    const sig = this.#cosigner.cosign(cpText, timestamp)
    return { status: 200, contentType: TEXT, body: formatSignatureLine(sig) }
  }
}

/** Splits and checks the request framing; returns an error message for a 400 instead of throwing. */
function parseRequest(body: Uint8Array): { oldSize: number; proof: Uint8Array[]; note: string } | string {
  const split = indexOfBlankLine(body)
  if (split < 0) return 'invalid input: no blank line'
  let head: string
  let note: string
  try {
    head = utf8.decode(body.subarray(0, split))
    note = utf8.decode(body.subarray(split + 2))
  } catch {
    return 'invalid input: not UTF-8'
  }
  const lines = head.split('\n')
  const m = /^old (0|[1-9][0-9]{0,15})$/.exec(lines[0]!)
  if (m === null || !Number.isSafeInteger(Number(m[1]))) return 'invalid input: bad "old" line'
  if (lines.length - 1 > MAX_PROOF_LINES) return `invalid input: more than ${MAX_PROOF_LINES} proof lines`
  const proof: Uint8Array[] = []
  for (const line of lines.slice(1)) {
    try {
      proof.push(decodeHash(line))
    } catch {
      return 'invalid input: bad proof hash'
    }
  }
  return { oldSize: Number(m[1]), proof, note }
}

function indexOfBlankLine(b: Uint8Array): number {
  for (let i = 0; i + 1 < b.length; i++) if (b[i] === 0x0a && b[i + 1] === 0x0a) return i
  return -1
}

function text(status: number, message: string): WitnessResponse {
  return { status, contentType: TEXT, body: message + '\n' }
}

function conflict(size: number): WitnessResponse {
  return { status: 409, contentType: TLOG_SIZE_CONTENT_TYPE, body: `${size}\n` }
}


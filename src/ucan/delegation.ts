/**
 * The string form of a UCAN delegation carried in `tlog/append`'s `nb.delegation`
 * (docs/wire.md).
 *
 * Wire format, as `storacha delegation create --base64` prints it and `@storacha/client/proof`
 * parses it: multibase base64 (`m` prefix, RFC 4648 §4 alphabet, no padding) of a CIDv1 whose codec
 * is CAR (0x0202) and whose multihash is identity (0x00) over the delegation archive. The archive is
 * a CARv1 whose single root is a dag-cbor block `{ "ucan@0.9.1": <delegation CID> }` followed by the
 * delegation's blocks and its proofs' blocks (ucanto `Delegation.archive`). Plain standard padded
 * base64 of the archive is accepted too, and so is the legacy plain CAR of UCAN blocks whose last
 * block is the delegation.
 *
 * Parsing is bounded: the string, the number of UCANs, the proof depth and the work a validator
 * may spend exploring the chain are capped, so a hostile chain cannot make authorization slow.
 */
import { base64 } from 'multiformats/bases/base64'
import { identity } from 'multiformats/hashes/identity'
import * as Link from 'multiformats/link'
import { CAR, Delegation, isDelegation } from '@ucanto/core'
import type { API } from '@ucanto/core'
import { decodeBase64, encodeBase64 } from '../tlog/encoding.js'
import { InvalidDelegation, type ProofGraphFailure, ProofGraphTooLarge, truncate } from './errors.js'
import { type ProofGraphBudget, checkProofGraph } from './proof-graph.js'
import { audienceOf, issuerOf } from './signed-payload.js'
import { isCanonicalUcan } from './canonical-ucan.js'
import { reuseProofBlocks } from './proof-blocks.js'
import { type VerifiedUcanCache, isPreverified, markCanonical, sameBytes } from './verified-ucans.js'

/** Longest accepted `nb.delegation` string, in characters (about 48 KiB of archive). */
export const MAX_DELEGATION_LENGTH = 65_536

/** Most UCANs (the delegation and all proofs it embeds) one delegation may carry. */
export const MAX_CHAIN_UCANS = 32

/** Deepest proof nesting accepted: Space→Agent→Service is depth 2. */
export const MAX_CHAIN_DEPTH = 8

/** Most proof links, over all UCANs of one delegation (each UCAN's `prf` list counted once). */
export const MAX_CHAIN_LINKS = 128

/**
 * Most root-to-UCAN paths in one delegation: how many UCANs a walk following every proof link
 * (ucanto's export, its validator) visits. An honest chain is a tree: as many paths as UCANs.
 */
export const MAX_CHAIN_PATHS = 256

/** The proof-graph budget of `nb.delegation` (proof-graph.ts). */
export const DELEGATION_GRAPH_BUDGET: Readonly<ProofGraphBudget> = Object.freeze({
  blocks: MAX_CHAIN_UCANS,
  links: MAX_CHAIN_LINKS,
  paths: MAX_CHAIN_PATHS,
  depth: MAX_CHAIN_DEPTH,
})

/**
 * Most validator work a chain may cost, counted as Σ over paths of capabilities examined:
 * `work(u) = max(1, |capabilities(u)|) × (1 + Σ work(p) for p in proofs(u))`. An honest
 * Space→Alice→Agent→Service chain with three capabilities each costs 39.
 */
export const MAX_CHAIN_WORK = 4096

/** Multicodec of a CAR file (the CID codec of the Storacha string form). */
const CAR_CODE = 0x0202
/** Multicodec of dag-cbor, the only UCAN block encoding accepted here. */
const DAG_CBOR_CODE = 0x71
/** Multicodec of sha2-256. */
const SHA256_CODE = 0x12

/**
 * Parses `nb.delegation` (either string form above) into a ucanto Delegation whose embedded proofs
 * are materialised. Does not verify signatures, time bounds or content addressing — see
 * {@link checkContentAddressed} and the authorizer for that.
 * @returns `InvalidDelegation` if the string is empty or longer than {@link MAX_DELEGATION_LENGTH},
 *   is not base64 of either form, or is not a CAR holding a UCAN; `DuplicateProof`, `ProofCycle`
 *   or `ProofGraphTooLarge` if its proof graph fails {@link DELEGATION_GRAPH_BUDGET} or costs more
 *   than {@link MAX_CHAIN_WORK}.
 */
export async function parseDelegation(s: string): Promise<API.Result<API.Delegation, InvalidDelegation | ProofGraphFailure>> {
  if (typeof s !== 'string' || s.length === 0) return invalid('empty delegation')
  if (s.length > MAX_DELEGATION_LENGTH) return invalid(`delegation longer than ${MAX_DELEGATION_LENGTH} characters`)

  let archive: Uint8Array | undefined
  if (s.startsWith('m')) {
    let cid: Link.UnknownLink | undefined
    // The canonical spelling (what formatDelegation writes) is decoded by node's base64, which
    // is much faster than multiformats'; any other string takes multiformats' path (same outcome,
    // same errors: both decode a canonical string to the same bytes and CID).
    const fast = canonicalBase64Bytes(s)
    try {
      cid = fast !== undefined ? Link.decode(fast) : Link.parse(s, base64)
    } catch {
      // Not a CID: fall through to plain base64 (which cannot start with 'm' for a CAR, but try).
    }
    if (cid !== undefined) {
      // multiformats' decoder tolerates padding (and CID.toString returns the parsed string), so
      // re-encode the bytes: only the one canonical spelling is accepted. On the fast path `s` is
      // already 'm' + the canonical base64 of `fast`, so that is `cid.bytes` (the CID re-encoded)
      // being `fast` byte for byte: compared without encoding base64 again.
      if (fast !== undefined ? Buffer.compare(fast, cid.bytes) !== 0 : base64.encode(cid.bytes) !== s) {
        return invalid('delegation CID is not canonical unpadded base64')
      }
      if (cid.version !== 1 || cid.code !== CAR_CODE) return invalid(`not a CAR CID (codec 0x${cid.code.toString(16)})`)
      if (cid.multihash.code !== identity.code) return invalid('CAR CID multihash is not identity')
      archive = cid.multihash.digest
    }
  }
  if (archive === undefined) {
    try {
      archive = decodeBase64(s)
    } catch {
      return invalid('delegation is neither a base64 CAR CID nor standard base64')
    }
  }

  const decoded = await decodeArchive(archive)
  if (decoded.error) return decoded
  return checkBounds(decoded.ok)
}

/**
 * Parses a delegation as a file, a paste or an environment variable holds it: {@link parseDelegation}
 * of `text` without its surrounding whitespace (a trailing newline or CRLF, as `ucanlog delegate
 * --out` and `storacha delegation create --base64 > file` leave it, leading or trailing spaces and
 * tabs). Neither string form contains whitespace, so nothing of the delegation is dropped; whitespace
 * inside the string is still refused. `nb.delegation` on the wire is parsed strictly, by
 * {@link parseDelegation}: a client sends the canonical string {@link formatDelegation} writes.
 * @returns as {@link parseDelegation}; an empty or all-whitespace text is `InvalidDelegation`.
 */
export function parseDelegationText(text: string): Promise<API.Result<API.Delegation, InvalidDelegation | ProofGraphFailure>> {
  return parseDelegation(typeof text === 'string' ? text.trim() : text)
}

/**
 * Formats a delegation as `storacha delegation create --base64` does: multibase base64 of a
 * CAR-codec identity CID over `Delegation.archive(delegation)`.
 * @throws if the delegation cannot be archived (a ucanto encoding error).
 */
export async function formatDelegation(delegation: API.Delegation): Promise<string> {
  const archived = await Delegation.archive(delegation)
  if (archived.error) throw archived.error
  return Link.create(CAR_CODE, identity.digest(archived.ok)).toString(base64)
}

/**
 * Formats a delegation as plain standard padded base64 (RFC 4648 §4) of its archive, the second
 * form `parseDelegation` accepts.
 */
export async function formatDelegationBase64(delegation: API.Delegation): Promise<string> {
  const archived = await Delegation.archive(delegation)
  if (archived.error) throw archived.error
  return encodeBase64(archived.ok)
}

/**
 * Checks that `ucan` and every proof embedded in it are content addressed canonically: each is a
 * dag-cbor (0x71) UCAN block whose sha2-256 CID is the CID of the canonical encoding of what it
 * decodes to. CAR readers do not hash blocks, so without this a client could present a revoked
 * or replayed UCAN under another CID, or wrap it as JWT or with reordered map keys (all of which
 * still verify, since the signature covers the decoded payload).
 * With `{ proofs: false }` only `ucan` itself is checked (an invocation's own proofs do not
 * authorize a `tlog/append`). With `ucans`, a UCAN that cache holds (and whose bytes hash to its
 * CID) is not checked again. Otherwise its bytes must hash to its CID, written canonically
 * (verified-ucans.ts `sameBytes`), and be canonical (canonical-ucan.ts `isCanonicalUcan`: a
 * one-pass proof, else dag-ucan's re-encoding plus an exact signature and principals). When all
 * pass, each checked Delegation object is marked canonical (verified-ucans.ts `markCanonical`),
 * which lets the chain check cache it.
 * @returns false on any mismatch, on a UCAN that does not decode, or past {@link MAX_CHAIN_UCANS}.
 */
export async function checkContentAddressed(ucan: API.Delegation, options: { proofs?: boolean; ucans?: VerifiedUcanCache | undefined } = {}): Promise<boolean> {
  const deep = options.proofs ?? true
  const checked: API.Delegation[] = []
  const seen = new Set<string>()
  const stack: API.Delegation[] = [ucan]
  while (stack.length > 0) {
    const d = stack.pop() as API.Delegation
    const id = d.cid.toString()
    if (seen.has(id)) continue
    seen.add(id)
    if (seen.size > MAX_CHAIN_UCANS) return false
    try {
      if (d.cid.code !== DAG_CBOR_CODE || d.cid.multihash.code !== SHA256_CODE) return false
      if ((d.data as { jwt?: unknown }).jwt !== undefined) return false
      // A cached UCAN whose bytes hash to its CID was found canonical before (here, or by the
      // pre-verification thread for these bytes): no need to re-encode.
      if (!isPreverified(d) && options.ucans?.has(d) !== true && !(sameBytes(d) && isCanonicalUcan(d))) return false
      checked.push(d)
      if (deep) for (const proof of d.proofs) if (isDelegation(proof)) stack.push(proof)
    } catch {
      return false
    }
  }
  for (const d of checked) markCanonical(d)
  return true
}

/** Every embedded UCAN of `delegation` (itself first), each once; links to absent proofs are skipped. */
export function embeddedUCANs(delegation: API.Delegation): API.Delegation[] {
  const out: API.Delegation[] = []
  const seen = new Set<string>()
  const visit = (d: API.Delegation, depth: number): void => {
    const id = d.cid.toString()
    if (seen.has(id) || depth > MAX_CHAIN_DEPTH) return
    seen.add(id)
    out.push(d)
    for (const proof of d.proofs) if (isDelegation(proof)) visit(proof, depth + 1)
  }
  visit(delegation, 0)
  return out
}

/**
 * The bytes of `s` when `s` is `m` followed by their canonical unpadded standard base64 (RFC 4648
 * §4, as multiformats' `base64` writes it); undefined otherwise (node's decoder is lenient: it
 * skips stray characters and takes base64url, so the bytes are re-encoded and compared).
 */
function canonicalBase64Bytes(s: string): Uint8Array | undefined {
  const bytes = Buffer.from(s.slice(1), 'base64')
  let text = bytes.toString('base64')
  while (text.endsWith('=')) text = text.slice(0, -1)
  if (s.length !== text.length + 1 || !s.endsWith(text)) return undefined
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function invalid(message: string): { error: InvalidDelegation } {
  return { error: new InvalidDelegation(truncate(message)) }
}

/** Decodes a ucanto archive, or else a legacy CAR whose last block is the delegation. */
async function decodeArchive(bytes: Uint8Array): Promise<API.Result<API.Delegation, InvalidDelegation>> {
  let delegation: API.Delegation
  try {
    const extracted = await Delegation.extract(bytes)
    if (extracted.ok) {
      delegation = extracted.ok
    } else {
      // Before `archive()` existed, delegations were exported as a plain CAR of their blocks.
      const { blocks } = CAR.decode(bytes)
      delegation = Delegation.importDAG(blocks.values() as Iterable<API.Block>)
    }
    // Proofs seen before (chiefly the agent's Space→Agent) are decoded once per thread.
    reuseProofBlocks(delegation)
    // Materialise the fields every later check reads, so a malformed UCAN fails here (formatted
    // once: signed-payload.ts keeps the DIDs for the checks that read them again).
    issuerOf(delegation)
    audienceOf(delegation)
    if (!Array.isArray(delegation.capabilities)) throw new TypeError('capabilities is not an array')
  } catch (cause) {
    return invalid(`not a UCAN delegation archive: ${(cause as Error).message}`)
  }
  return { ok: delegation }
}

/**
 * Rejects chains past the graph bounds ({@link DELEGATION_GRAPH_BUDGET}: duplicate proof links,
 * cycles, UCANs, links, paths, depth), then past the validator work bound.
 */
function checkBounds(delegation: API.Delegation): API.Result<API.Delegation, InvalidDelegation | ProofGraphFailure> {
  const graph = checkProofGraph(delegation, DELEGATION_GRAPH_BUDGET)
  if (graph.error) return graph
  // The graph is small now (a DAG of ≤ MAX_CHAIN_UCANS, ≤ MAX_CHAIN_PATHS paths), so this memoized
  // walk is cheap. A UCAN with no capabilities still costs the validator a visit: it weighs 1.
  const work = new Map<string, number>()
  const measure = (d: API.Delegation): number => {
    const id = d.cid.toString()
    const known = work.get(id)
    if (known !== undefined) return known
    let below = 1
    for (const proof of d.proofs) if (isDelegation(proof)) below += measure(proof)
    const w = Math.max(1, d.capabilities.length) * below
    work.set(id, w)
    if (w > MAX_CHAIN_WORK) throw new ProofGraphTooLarge('delegation chain too complex')
    return w
  }
  try {
    measure(delegation)
  } catch (cause) {
    if (cause instanceof ProofGraphTooLarge) return { error: cause }
    return invalid(`not a UCAN delegation: ${(cause as Error).message}`)
  }
  return { ok: delegation }
}

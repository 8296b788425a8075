// UnixFS (https://specs.ipfs.tech/unixfs/) over dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/):
// how the log's files and directories become content-addressed blocks, and how to read them back.
// Encoding goes through ipfs-unixfs and @ipld/dag-pb; hashes are sha2-256 via multiformats. The
// CIDs equal those of Storacha's uploader for files and for directories of up to 1000 entries
// (it HAMT-shards larger directories; this module never shards).

import * as dagPB from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { checkRelativePath, InvalidPathError } from './file-store.js'

/** Multicodec code of raw bytes blocks (file leaves). */
export const RAW_CODE = 0x55
/** Multicodec code of dag-pb blocks (UnixFS file and directory nodes). */
export const DAG_PB_CODE = 0x70
/** Multihash code of sha2-256, the only hash this module writes or accepts. */
export const SHA2_256_CODE = 0x12
/**
 * Chunk size in bytes: a file of at most this many bytes is a single raw block; a larger file is
 * split into raw leaves of exactly this size (the last one shorter).
 */
export const CHUNK_SIZE = 1_048_576
/**
 * Most links in one UnixFS file node (balanced layout width). 1024, as in Storacha's uploader
 * (@storacha/upload-client over @ipld/unixfs: 1 MiB fixed chunks, raw leaves, balanced width 1024),
 * so a file's CID here equals the one `storacha up` computes; a file of more than
 * CHUNK_SIZE × 1024 bytes gets further levels of file nodes.
 */
export const MAX_FILE_LINKS = 1024
/** Default bound, in bytes, on the size of a file readFile will assemble. */
export const DEFAULT_MAX_READ_SIZE = 256 * 1_048_576

/** A content-addressed block: `cid` is CIDv1 over sha2-256 of `bytes`. */
export interface Block {
  cid: CID
  bytes: Uint8Array
}

/** A file encoded as UnixFS. */
export interface EncodedFile {
  /** Root of the file DAG: a raw block (≤ CHUNK_SIZE bytes) or a dag-pb UnixFS `file` node. */
  cid: CID
  /** File size in bytes. */
  size: number
  /** Cumulative size in bytes of every block in the DAG: the Tsize of a link to it. */
  tsize: number
  /** Distinct blocks of the DAG in depth-first pre-order, root first. */
  blocks: Block[]
}

/** One link of a UnixFS directory. */
export interface DirectoryEntry {
  /** Link name: one path segment (non-empty, no `/`). */
  name: string
  cid: CID
  /** Cumulative size in bytes of the DAG under `cid` (the link's Tsize). */
  tsize: number
}

/** A UnixFS directory node. */
export interface EncodedDirectory {
  block: Block
  cid: CID
  /** The block's length plus the Tsize of every link, in bytes: the Tsize of a link to it. */
  tsize: number
}

/** A block's bytes do not hash to its CID, or it is not a well-formed block of a kind this module reads. */
export class InvalidBlockError extends Error {
  constructor(readonly cid: CID, reason: string) {
    super(`invalid block ${cid}: ${reason}`)
    this.name = 'InvalidBlockError'
  }
}

/** A block needed to read a file was not available from the block source. */
export class MissingBlockError extends Error {
  constructor(readonly cid: CID) {
    super(`missing block ${cid}`)
    this.name = 'MissingBlockError'
  }
}

/** Builds a block: CIDv1 with the given codec over the sha2-256 digest of `bytes`. */
export async function createBlock(code: number, bytes: Uint8Array): Promise<Block> {
  return { cid: CID.createV1(code, await sha256.digest(bytes)), bytes }
}

/**
 * Checks that `bytes` is the block `cid` names: codec raw or dag-pb, multihash sha2-256 equal to
 * the digest of `bytes`. Throws InvalidBlockError otherwise.
 */
export async function verifyBlock(cid: CID, bytes: Uint8Array): Promise<void> {
  if (cid.code !== RAW_CODE && cid.code !== DAG_PB_CODE) throw new InvalidBlockError(cid, `unsupported codec 0x${cid.code.toString(16)}`)
  if (cid.multihash.code !== SHA2_256_CODE) throw new InvalidBlockError(cid, `unsupported multihash 0x${cid.multihash.code.toString(16)}`)
  const digest = (await sha256.digest(bytes)).digest
  if (!equalBytes(digest, cid.multihash.digest)) throw new InvalidBlockError(cid, 'bytes do not match the CID')
}

interface Subtree {
  cid: CID
  size: number
  tsize: number
  blocks: Block[]
}

/**
 * Encodes a file as UnixFS with raw leaves: a file of at most CHUNK_SIZE bytes (including an empty
 * one) is one raw block, CID = CIDv1(raw 0x55, sha2-256(data)); a larger one is CHUNK_SIZE raw
 * leaves under dag-pb UnixFS `file` nodes (blocksizes = each child's file size in bytes, links
 * named "" with Tsize), at most MAX_FILE_LINKS per node, built level by level (balanced layout, no
 * mode or mtime).
 */
export async function encodeFile(data: Uint8Array): Promise<EncodedFile> {
  let level: Subtree[] = []
  for (let off = 0; off === 0 || off < data.length; off += CHUNK_SIZE) {
    const chunk = data.subarray(off, Math.min(off + CHUNK_SIZE, data.length))
    const block = await createBlock(RAW_CODE, chunk)
    level.push({ cid: block.cid, size: chunk.length, tsize: chunk.length, blocks: [block] })
  }
  while (level.length > 1) {
    const next: Subtree[] = []
    for (let i = 0; i < level.length; i += MAX_FILE_LINKS) next.push(await fileNode(level.slice(i, i + MAX_FILE_LINKS)))
    level = next
  }
  const root = level[0]!
  return { cid: root.cid, size: root.size, tsize: root.tsize, blocks: dedupe(root.blocks) }
}

async function fileNode(children: Subtree[]): Promise<Subtree> {
  const unixfs = new UnixFS({ type: 'file', blockSizes: children.map((c) => BigInt(c.size)) })
  // prepare() converts our CIDs to dag-pb's multiformats copy and fixes the canonical link order.
  const node = dagPB.prepare({ Data: unixfs.marshal(), Links: children.map((c) => ({ Name: '', Tsize: c.tsize, Hash: c.cid })) })
  const block = await createBlock(DAG_PB_CODE, dagPB.encode(node))
  let size = 0
  let tsize = block.bytes.length
  const blocks = [block]
  for (const c of children) {
    size += c.size
    tsize += c.tsize
    blocks.push(...c.blocks)
  }
  return { cid: block.cid, size, tsize, blocks }
}

/**
 * Encodes a UnixFS `directory` node (dag-pb, no mode or mtime) linking each entry under its name.
 * Links are sorted by the UTF-8 bytes of their names by dag-pb's prepare(), so the encoding —
 * and the CID — depends only on the set of entries. Throws InvalidPathError for an empty name,
 * one containing `/` or NUL, or a duplicate name.
 *
 * The node is not sharded (no HAMT): callers keep the fan-out such that the block stays well under
 * 1 MiB (about 45 bytes per link with 3–5 byte names).
 */
export async function encodeDirectory(entries: Iterable<DirectoryEntry>): Promise<EncodedDirectory> {
  const names = new Set<string>()
  const links: { Name: string; Tsize: number; Hash: CID }[] = []
  let tsize = 0
  for (const e of entries) {
    if (e.name === '' || e.name.includes('/') || e.name.includes('\0')) throw new InvalidPathError(e.name, 'not a directory entry name')
    if (names.has(e.name)) throw new InvalidPathError(e.name, 'duplicate directory entry')
    if (!Number.isSafeInteger(e.tsize) || e.tsize < 0) throw new RangeError(`tsize of ${e.name} must be a non-negative safe integer`)
    names.add(e.name)
    links.push({ Name: e.name, Tsize: e.tsize, Hash: e.cid })
    tsize += e.tsize
  }
  const node = dagPB.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links })
  const block = await createBlock(DAG_PB_CODE, dagPB.encode(node))
  return { block, cid: block.cid, tsize: tsize + block.bytes.length }
}

/** Where readFile gets blocks: the bytes of `cid`, or undefined if not available. */
export type BlockGetter = (cid: CID) => Promise<Uint8Array | undefined>

/** Options of readFile. */
export interface ReadFileOptions {
  /** Largest file to assemble, in bytes (default DEFAULT_MAX_READ_SIZE); larger throws RangeError. */
  maxSize?: number
}

interface Decoded {
  cid: CID
  /** Raw leaf bytes, for a raw block. */
  raw?: Uint8Array
  pb?: dagPB.PBNode
  unixfs?: UnixFS
}

// Deepest file DAG readFile follows; the balanced layout reaches 4 levels only past 1 PiB.
const MAX_FILE_DEPTH = 8

/**
 * Reads the file at `path` (a store path, see checkRelativePath) under the UnixFS directory
 * `root`, fetching blocks with `get` and verifying each against its CID before use.
 *
 * Resolves `undefined` when the DAG has no file there: a name is missing, or a path segment or the
 * target is not of the right kind (a file where a directory is needed, or a directory at the end).
 * Throws MissingBlockError when `get` lacks a needed block, InvalidBlockError for a block that fails
 * verification or is malformed (including HAMT-sharded directories, which this log never writes,
 * and file nodes whose blocksizes disagree with their children), RangeError for a file larger than
 * `maxSize`, and InvalidPathError for a refused path.
 */
export async function readFile(get: BlockGetter, root: CID, path: string, options: ReadFileOptions = {}): Promise<Uint8Array | undefined> {
  const maxSize = options.maxSize ?? DEFAULT_MAX_READ_SIZE
  let node = await load(get, root)
  for (const segment of checkRelativePath(path).split('/')) {
    if (node.unixfs?.type !== 'directory') {
      if (node.unixfs?.type === 'hamt-sharded-directory') throw new InvalidBlockError(node.cid, 'HAMT-sharded directories are not supported')
      return undefined
    }
    const link = node.pb!.Links.find((l) => l.Name === segment)
    if (link === undefined) return undefined
    node = await load(get, CID.decode(link.Hash.bytes))
  }
  if (node.raw === undefined && node.unixfs?.type !== 'file' && node.unixfs?.type !== 'raw') return undefined
  const parts: Uint8Array[] = []
  await readFileNode(get, node, parts, { left: maxSize }, 0)
  return concat(parts)
}

async function readFileNode(get: BlockGetter, node: Decoded, out: Uint8Array[], budget: { left: number }, depth: number): Promise<number> {
  if (node.raw !== undefined) return take(node, node.raw, out, budget)
  const unixfs = node.unixfs
  if (unixfs === undefined || (unixfs.type !== 'file' && unixfs.type !== 'raw')) throw new InvalidBlockError(node.cid, 'not a file node')
  if (depth >= MAX_FILE_DEPTH) throw new InvalidBlockError(node.cid, 'file DAG too deep')
  const links = node.pb!.Links
  if (unixfs.blockSizes.length !== links.length) throw new InvalidBlockError(node.cid, 'blocksizes and links differ in number')
  const declared = unixfs.fileSize()
  if (declared > BigInt(budget.left)) throw new RangeError(`file ${node.cid} is larger than ${budget.left} bytes`)
  let size = unixfs.data !== undefined ? take(node, unixfs.data, out, budget) : 0
  for (let i = 0; i < links.length; i++) {
    const child = await load(get, CID.decode(links[i]!.Hash.bytes))
    const got = await readFileNode(get, child, out, budget, depth + 1)
    if (BigInt(got) !== unixfs.blockSizes[i]) throw new InvalidBlockError(node.cid, `child ${i} holds ${got} bytes, blocksizes says ${unixfs.blockSizes[i]}`)
    size += got
  }
  return size
}

function take(node: Decoded, bytes: Uint8Array, out: Uint8Array[], budget: { left: number }): number {
  if (bytes.length > budget.left) throw new RangeError(`file under ${node.cid} is larger than the read limit`)
  budget.left -= bytes.length
  if (bytes.length > 0) out.push(bytes)
  return bytes.length
}

async function load(get: BlockGetter, cid: CID): Promise<Decoded> {
  const bytes = await get(cid)
  if (bytes === undefined) throw new MissingBlockError(cid)
  await verifyBlock(cid, bytes)
  if (cid.code === RAW_CODE) return { cid, raw: bytes }
  let pb: dagPB.PBNode
  let unixfs: UnixFS
  try {
    pb = dagPB.decode(bytes)
    if (pb.Data === undefined) throw new Error('no Data')
    unixfs = UnixFS.unmarshal(pb.Data)
  } catch (err) {
    throw new InvalidBlockError(cid, `not a UnixFS dag-pb node (${(err as Error).message})`)
  }
  return { cid, pb, unixfs }
}

function dedupe(blocks: Block[]): Block[] {
  const seen = new Set<string>()
  return blocks.filter((b) => {
    const key = b.cid.toString()
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const total = parts.reduce((n, p) => n + p.length, 0)
  const out = new Uint8Array(total)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** One entry of a UnixFS directory met by walkDirectory. */
export interface WalkedEntry {
  /** The directory holding it: '' for the root, else a store path (`tile/0`). */
  dir: string
  /** Its name in that directory (one path segment). */
  name: string
  /** True for a UnixFS directory, false for a file. */
  isDir: boolean
  cid: CID
  /** The link's Tsize in bytes. */
  tsize: number
}

/**
 * Walks the UnixFS directory DAG under `root` depth first, yielding every entry of every
 * directory (parents before children), fetching and verifying each node with `get`. Files are not
 * read (only their root block, to tell files from directories). Throws MissingBlockError,
 * InvalidBlockError (including for HAMT-sharded directories, which this module never writes, and
 * a root that is not a directory), and InvalidPathError for an entry name that is not a valid path
 * segment (empty, `.`/`..`, containing `/` or NUL).
 */
export async function* walkDirectory(get: BlockGetter, root: CID): AsyncGenerator<WalkedEntry> {
  const top = await load(get, root)
  if (top.unixfs?.type !== 'directory') throw new InvalidBlockError(root, 'not a UnixFS directory')
  const stack: { dir: string; node: Decoded }[] = [{ dir: '', node: top }]
  while (stack.length > 0) {
    const { dir, node } = stack.pop()!
    for (const link of node.pb!.Links) {
      const name = link.Name ?? ''
      if (name.includes('/')) throw new InvalidPathError(name, 'not a directory entry name')
      const path = dir === '' ? name : `${dir}/${name}`
      checkRelativePath(path)
      const cid = CID.decode(link.Hash.bytes)
      const child = await load(get, cid)
      if (child.unixfs?.type === 'hamt-sharded-directory') throw new InvalidBlockError(cid, 'HAMT-sharded directories are not supported')
      const isDir = child.unixfs?.type === 'directory'
      yield { dir, name, isDir, cid, tsize: link.Tsize ?? 0 }
      if (isDir) stack.push({ dir: path, node: child })
    }
  }
}

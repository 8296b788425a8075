// UnixFS (https://specs.ipfs.tech/unixfs/) over dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/):
// how the log's files and directories become content-addressed blocks, and how to read them back.
// Encoding goes through ipfs-unixfs and @ipld/dag-pb; hashes are sha2-256 via multiformats. The
// CIDs equal those of Storacha's uploader (@storacha/upload-client over @ipld/unixfs) for files
// and directories: both HAMT-shard a directory of more than SHARD_THRESHOLD entries (fanout 256,
// murmur3-x64-64, the UnixFS spec's "hamt-sharded-directory", laid out as @perma/map does).

import * as dagPB from '@ipld/dag-pb'
import { murmur364 } from '@multiformats/murmur3'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { ByteLru } from './byte-lru.js'
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
/**
 * A directory of more than this many entries is encoded as a HAMT (UnixFS
 * `hamt-sharded-directory`), like Storacha's uploader does; at most this many it is one plain
 * `directory` node (about 45 bytes per link for tlog-tiles names, so ≤ ~45 KB).
 */
export const SHARD_THRESHOLD = 1000
/** Fanout (buckets per node) of HAMT-sharded directories: 256, one hash byte per level. */
export const HAMT_FANOUT = 256
/** Multihash code of murmur3-x64-64, the UnixFS HAMT hash (UnixFS `hashType`). */
export const MURMUR3_X64_64_CODE = 0x22
/** Default bound, in bytes, on the size of a file readUnixfsFile will assemble. */
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

/** A UnixFS directory: one `directory` node, or the nodes of a HAMT-sharded directory. */
export interface EncodedDirectory {
  /** The root node. */
  block: Block
  cid: CID
  /** Every node, root first (just `block` for a plain directory). */
  blocks: Block[]
  /** Cumulative size in bytes of the directory's DAG (root block plus every link's Tsize): the Tsize of a link to it. */
  tsize: number
  /** True when HAMT-sharded. */
  sharded: boolean
  /**
   * For a sharded directory encoded with `changed` names: CIDs of the shard nodes whose subtree
   * holds a changed name. Every other node is identical in the directory without those changes.
   */
  dirty?: Set<string>
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
 * Encodes a UnixFS directory linking each entry under its name (dag-pb, no mode or mtime): up to
 * SHARD_THRESHOLD entries one `directory` node, whose links dag-pb's prepare() sorts by the UTF-8
 * bytes of their names; more entries a HAMT (`hamt-sharded-directory` nodes, fanout HAMT_FANOUT,
 * hashType murmur3-x64-64, link names = 2 upper-case hex digits of the bucket, followed by the
 * entry name for an entry, alone for a sub-shard), built with @perma/map as @ipld/unixfs does. Either
 * way the encoding — and the CID — depends only on the set of entries. `changed` (names added or
 * replaced since an earlier version) fills `dirty` for a sharded result; `cache` memoizes shard
 * nodes across calls (see ShardCache). Throws InvalidPathError
 * for an empty name, one containing `/` or NUL, or a duplicate name.
 */
export async function encodeDirectory(entries: Iterable<DirectoryEntry>, changed?: ReadonlySet<string>, cache?: ShardCache): Promise<EncodedDirectory> {
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
  if (links.length > SHARD_THRESHOLD) return encodeSharded(links, changed, cache)
  const node = dagPB.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links })
  const block = await createBlock(DAG_PB_CODE, dagPB.encode(node))
  return { block, cid: block.cid, blocks: [block], tsize: tsize + block.bytes.length, sharded: false }
}

type Link = { Name: string; Tsize: number; Hash: CID }

/**
 * Memo of encoded HAMT shard nodes, keyed by their links, to pass to encodeDirectory across calls
 * (a sharded directory changes in a few nodes per version), bounded by bytes (the key's characters
 * plus the block's bytes, twice for the CID and object headers). A node is a pure function of its
 * links, so one cache may serve every log of a process: see {@link sharedShardCache}.
 */
export type ShardCache = ByteLru<string, Block>
/**
 * What a memoized node's CID keeps alive besides the bytes counted for it, in bytes: the CID
 * object, its digest and their byte views, and multiformats' memo of its string forms (a WeakMap
 * entry holding a Map of strings, each built one character at a time, so a chain of ~30 string
 * pieces): ~2.7 KiB measured (test/storage/unixfs.test.ts). Before it was counted, heap snapshots
 * of a soak showed the memo holding about twice its knob (BENCHMARKS.md, 2026-12-01).
 */
export const CID_HEAP_BYTES = 3072

/**
 * Default bytes of the process-wide shard cache (`--shard-cache-bytes`): 32 MiB. One log's working
 * set is its sharded directories' nodes, about 2 KiB per directory entry (~1 MiB for a log of
 * 1 M entries: `tile/entries` and `tile/0` hold ~3,900 names each); past the bound, packs re-encode
 * the nodes they miss (slower, same bytes).
 */
export const DEFAULT_SHARD_CACHE_BYTES = 32 * 2 ** 20

let shared: ShardCache | undefined
/**
 * The process-wide shard cache, created on first use with `maxBytes` (default
 * {@link DEFAULT_SHARD_CACHE_BYTES}); a later call with a different `maxBytes` replaces it (the
 * service sets it once at start from its knob).
 * @param maxBytes integer ≥ 0 (0 disables the memo).
 */
export function sharedShardCache(maxBytes?: number): ShardCache {
  if (shared === undefined || (maxBytes !== undefined && maxBytes !== shared.maxBytes)) shared = new ByteLru(maxBytes ?? DEFAULT_SHARD_CACHE_BYTES)
  return shared
}

/** murmur3-x64-64 (the first 8 bytes of murmur3-x64-128), synchronous in @multiformats/murmur3. */
function hash64(bytes: Uint8Array): Uint8Array {
  return murmur364.encode(bytes) as Uint8Array
}

// The pure-JS murmur3 costs ~25 µs a call, and a log's directories reuse the same few thousand
// names (`000`…`999`, `000.p`…, `x001`…): memoize frame 0 per name, bounded.
const FRAME0_CACHE_MAX = 20_000
const frame0Cache = new Map<string, Uint8Array>()
function frame0Of(name: string, key: Uint8Array): Uint8Array {
  let h = frame0Cache.get(name)
  if (h === undefined) {
    if (frame0Cache.size >= FRAME0_CACHE_MAX) frame0Cache.clear()
    frame0Cache.set(name, (h = hash64(key)))
  }
  return h
}

/**
 * The bucket (0..255) of `key` (UTF-8 name bytes) at `depth` of a UnixFS HAMT: byte `depth` of
 * the "infinite" murmur3-x64-64 hash — frame 0 is the 8-byte hash of the key, frame n ≥ 1 the hash
 * of the key followed by the byte n (@perma/map's InfiniteUint8Array path).
 */
function bucketAt(key: Uint8Array, depth: number, frame0: Uint8Array = hash64(key)): number {
  const frame = Math.floor(depth / 8)
  const bytes = frame === 0 ? frame0 : hash64(concat([key, new Uint8Array([frame & 0xff])]))
  return bytes[depth % 8]!
}

/**
 * Encodes a canonical HAMT: at each node, names are grouped by their bucket at that depth; a
 * bucket with one name links the entry (`<XX><name>`), a bucket with more a sub-shard (`<XX>`).
 * `changed` (optional) marks the nodes whose subtree holds a changed name: `dirty` in the result.
 */
async function encodeSharded(links: Link[], changed?: ReadonlySet<string>, cache?: ShardCache): Promise<EncodedDirectory & { dirty: Set<string> }> {
  const blocks: Block[] = []
  const dirty = new Set<string>()
  const utf8 = new TextEncoder()
  const keyed = links.map((l) => {
    const key = utf8.encode(l.Name)
    return { link: l, key, frame0: frame0Of(l.Name, key) }
  })
  const encodeNode = async (items: typeof keyed, depth: number): Promise<{ block: Block; tsize: number; dirty: boolean }> => {
    if (depth > 64) throw new RangeError('HAMT too deep')
    const buckets = new Map<number, typeof keyed>()
    for (const it of items) {
      const b = bucketAt(it.key, depth, it.frame0)
      const list = buckets.get(b)
      if (list) list.push(it)
      else buckets.set(b, [it])
    }
    const bitfield = new Uint8Array(HAMT_FANOUT / 8)
    const out: Link[] = []
    let isDirty = false
    for (const b of [...buckets.keys()].sort((x, y) => x - y)) {
      const list = buckets.get(b)!
      const prefix = b.toString(16).toUpperCase().padStart(2, '0')
      bitfield[bitfield.length - 1 - (b >> 3)]! |= 1 << (b & 7)
      if (list.length === 1) {
        const l = list[0]!.link
        out.push({ Name: prefix + l.Name, Tsize: l.Tsize, Hash: l.Hash })
        if (changed?.has(l.Name)) isDirty = true
      } else {
        const child = await encodeNode(list, depth + 1)
        out.push({ Name: prefix, Tsize: child.tsize, Hash: child.block.cid })
        if (child.dirty) isDirty = true
      }
    }
    // The node is a function of its links (the bitfield follows from their names). A node over a
    // changed name is a new version nothing has asked for yet: it is memoized when next encoded
    // unchanged, not now. Memoizing every version filled the memo with superseded ones (a sharded
    // root, ~30 KiB with its key, at every checkpoint), pushing out the nodes that are reused.
    const memo = cache !== undefined && !isDirty ? cache : undefined
    const signature = memo ? out.map((l) => `${l.Name}\0${Buffer.from(l.Hash.bytes).toString('latin1')}\0${l.Tsize}`).join('\n') : ''
    let block = memo?.get(signature)
    if (block === undefined) {
      let first = 0
      while (first < bitfield.length && bitfield[first] === 0) first++
      const data = new UnixFS({ type: 'hamt-sharded-directory', data: bitfield.subarray(first), fanout: BigInt(HAMT_FANOUT), hashType: BigInt(MURMUR3_X64_64_CODE) })
      block = await createBlock(DAG_PB_CODE, dagPB.encode(dagPB.prepare({ Data: data.marshal(), Links: out })))
      memo?.set(signature, block, signature.length + 2 * block.bytes.length + CID_HEAP_BYTES)
    }
    blocks.push(block)
    if (isDirty) dirty.add(block.cid.toString())
    return { block, tsize: out.reduce((n, l) => n + l.Tsize, block.bytes.length), dirty: isDirty }
  }
  const root = await encodeNode(keyed, 0)
  blocks.reverse() // children were pushed before their parents: root first
  return { block: root.block, cid: root.block.cid, blocks, tsize: root.tsize, sharded: true, dirty }
}

/**
 * Finds `name` in a HAMT-sharded directory node: the link to the entry, or undefined. Each level
 * consumes one byte of the name's hash (see bucketAt); sub-shards are fetched with `get`.
 */
async function findInShard(get: BlockGetter, node: Decoded, name: string): Promise<dagPB.PBLink | undefined> {
  const key = new TextEncoder().encode(name)
  const frame0 = frame0Of(name, key)
  for (let depth = 0; ; depth++) {
    checkShard(node)
    const prefix = bucketAt(key, depth, frame0).toString(16).toUpperCase().padStart(2, '0')
    const link = node.pb!.Links.find((l) => (l.Name ?? '').startsWith(prefix))
    if (link === undefined) return undefined
    if (link.Name === prefix) {
      if (depth >= 64) throw new InvalidBlockError(node.cid, 'HAMT too deep')
      node = await load(get, CID.decode(link.Hash.bytes))
      continue
    }
    return link.Name === prefix + name ? link : undefined
  }
}

function checkShard(node: Decoded): void {
  const u = node.unixfs
  if (u?.type !== 'hamt-sharded-directory') throw new InvalidBlockError(node.cid, 'not a HAMT shard node')
  // ipfs-unixfs 13's unmarshal drops hashType: read field 5 of the UnixFS Data message directly.
  const hashType = protobufVarintField(node.pb!.Data!, 5)
  if (u.fanout !== BigInt(HAMT_FANOUT) || hashType !== BigInt(MURMUR3_X64_64_CODE)) {
    throw new InvalidBlockError(node.cid, `unsupported HAMT (fanout ${u.fanout}, hashType ${hashType})`)
  }
}

/** The last value of varint field `field` in a protobuf message, or undefined. Throws RangeError on malformed input. */
function protobufVarintField(msg: Uint8Array, field: number): bigint | undefined {
  let off = 0
  const varint = (): bigint => {
    let v = 0n
    for (let shift = 0n; ; shift += 7n) {
      if (off >= msg.length || shift > 63n) throw new RangeError('malformed protobuf varint')
      const b = msg[off++]!
      v |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return v
    }
  }
  let found: bigint | undefined
  while (off < msg.length) {
    const tag = varint()
    const wire = Number(tag & 7n)
    if (wire === 0) {
      const v = varint()
      if (Number(tag >> 3n) === field) found = v
    } else if (wire === 2) {
      const len = Number(varint())
      off += len
    }
    else if (wire === 1) off += 8
    else if (wire === 5) off += 4
    else throw new RangeError('malformed protobuf wire type')
  }
  if (off > msg.length) throw new RangeError('truncated protobuf')
  return found
}

/** Every (name, link) of a directory node, plain or HAMT-sharded (sub-shards fetched with `get`). */
async function* directoryLinks(get: BlockGetter, node: Decoded): AsyncGenerator<{ name: string; link: dagPB.PBLink }> {
  if (node.unixfs?.type === 'directory') {
    for (const link of node.pb!.Links) yield { name: link.Name ?? '', link }
    return
  }
  checkShard(node)
  for (const link of node.pb!.Links) {
    const n = link.Name ?? ''
    if (n.length < 2 || !/^[0-9A-F]{2}/.test(n)) throw new InvalidBlockError(node.cid, `bad HAMT link name ${JSON.stringify(n.slice(0, 40))}`)
    if (n.length === 2) yield* directoryLinks(get, await load(get, CID.decode(link.Hash.bytes)))
    else yield { name: n.slice(2), link }
  }
}

/** Where readUnixfsFile gets blocks: the bytes of `cid`, or undefined if not available. */
export type BlockGetter = (cid: CID) => Promise<Uint8Array | undefined>

/** Options of readUnixfsFile. */
export interface ReadUnixfsFileOptions {
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

// Deepest file DAG readUnixfsFile follows; the balanced layout reaches 4 levels only past 1 PiB.
const MAX_FILE_DEPTH = 8

/**
 * Reads the file at `path` (a store path, see checkRelativePath) under the UnixFS directory
 * `root`, fetching blocks with `get` and verifying each against its CID before use.
 *
 * Resolves `undefined` when the DAG has no file there: a name is missing, or a path segment or the
 * target is not of the right kind (a file where a directory is needed, or a directory at the end).
 * Directories may be plain or HAMT-sharded (fanout 256, murmur3-x64-64).
 * Throws MissingBlockError when `get` lacks a needed block, InvalidBlockError for a block that fails
 * verification or is malformed (including a HAMT of another fanout or hash, and file nodes whose
 * blocksizes disagree with their children), RangeError for a file larger than
 * `maxSize`, and InvalidPathError for a refused path.
 */
export async function readUnixfsFile(get: BlockGetter, root: CID, path: string, options: ReadUnixfsFileOptions = {}): Promise<Uint8Array | undefined> {
  const maxSize = options.maxSize ?? DEFAULT_MAX_READ_SIZE
  let node = await load(get, root)
  for (const segment of checkRelativePath(path).split('/')) {
    let link: dagPB.PBLink | undefined
    if (node.unixfs?.type === 'directory') link = node.pb!.Links.find((l) => l.Name === segment)
    else if (node.unixfs?.type === 'hamt-sharded-directory') link = await findInShard(get, node, segment)
    else return undefined
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
 * read (only their root block, to tell files from directories). Directories may be plain or
 * HAMT-sharded; a HAMT's internal shard nodes are not entries. Throws MissingBlockError,
 * InvalidBlockError (including for a root that is not a directory), and InvalidPathError for an entry name that is not a valid path
 * segment (empty, `.`/`..`, containing `/` or NUL).
 */
export async function* walkDirectory(get: BlockGetter, root: CID): AsyncGenerator<WalkedEntry> {
  const top = await load(get, root)
  if (!isDirectory(top)) throw new InvalidBlockError(root, 'not a UnixFS directory')
  const stack: { dir: string; node: Decoded }[] = [{ dir: '', node: top }]
  while (stack.length > 0) {
    const { dir, node } = stack.pop()!
    for await (const { name, link } of directoryLinks(get, node)) {
      if (name.includes('/')) throw new InvalidPathError(name, 'not a directory entry name')
      const path = dir === '' ? name : `${dir}/${name}`
      checkRelativePath(path)
      const cid = CID.decode(link.Hash.bytes)
      const child = await load(get, cid)
      const isDir = isDirectory(child)
      yield { dir, name, isDir, cid, tsize: link.Tsize ?? 0 }
      if (isDir) stack.push({ dir: path, node: child })
    }
  }
}

function isDirectory(node: Decoded): boolean {
  return node.unixfs?.type === 'directory' || node.unixfs?.type === 'hamt-sharded-directory'
}

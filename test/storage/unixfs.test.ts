import * as dagPB from '@ipld/dag-pb'
import { UnixFS as StorachaUnixFS } from '@storacha/upload-client'
import fc from 'fast-check'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { identity } from 'multiformats/hashes/identity'
import { createHash } from 'node:crypto'
import { runInNewContext } from 'node:vm'
import v8 from 'node:v8'
import { describe, expect, it } from 'vitest'
import {
  type Block,
  CHUNK_SIZE,
  createBlock,
  DAG_PB_CODE,
  encodeDirectory,
  walkDirectory,
  encodeFile,
  InvalidBlockError,
  InvalidPathError,
  MissingBlockError,
  RAW_CODE,
  readUnixfsFile,
  sharedShardCache,
} from '../../src/storage/index.js'
import { ByteLru } from '../../src/storage/byte-lru.js'
import { CID_HEAP_BYTES } from '../../src/storage/unixfs.js'
import { expectBytes, pseudoRandomBytes } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)

/** Reference CID computed without multiformats' hashers: CIDv1(codec, sha2-256 via node:crypto). */
function referenceCid(code: number, bytes: Uint8Array): CID {
  return CID.createV1(code, Digest.create(0x12, createHash('sha256').update(bytes).digest()))
}

function blockMap(blocks: Iterable<Block>): Map<string, Uint8Array> {
  return new Map([...blocks].map((b) => [b.cid.toString(), b.bytes]))
}

function getter(blocks: Map<string, Uint8Array>) {
  return async (cid: CID) => blocks.get(cid.toString())
}

describe('encodeFile', () => {
  it('makes a file of at most 1 MiB one raw block, CIDv1(raw, sha2-256(bytes))', async () => {
    for (const size of [0, 1, 11, 8192, CHUNK_SIZE]) {
      const data = pseudoRandomBytes(size, size + 1)
      const f = await encodeFile(data)
      expect(f.cid.equals(referenceCid(RAW_CODE, data))).toBe(true)
      expect(f.cid.code).toBe(0x55)
      expect(f.blocks).toHaveLength(1)
      expectBytes(f.blocks[0]!.bytes, data)
      expect(f.size).toBe(size)
      expect(f.tsize).toBe(size)
    }
  })

  it('matches well-known CIDs', async () => {
    // sha2-256("") as a CIDv1 raw block, as `ipfs add --cid-version=1 --raw-leaves` of an empty file.
    expect((await encodeFile(new Uint8Array(0))).cid.toString()).toBe('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
    // sha2-256("hello world") = b94d27b9…e9.
    expect((await encodeFile(text('hello world'))).cid.toString()).toBe('bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e')
  })

  it('splits a larger file into 1 MiB raw leaves under a dag-pb UnixFS file node', async () => {
    const data = pseudoRandomBytes(2 * CHUNK_SIZE + 5, 42)
    const f = await encodeFile(data)
    expect(f.cid.code).toBe(DAG_PB_CODE)
    expect(f.size).toBe(data.length)
    expect(f.blocks).toHaveLength(4)
    const [root, ...leaves] = f.blocks
    const node = dagPB.decode(root!.bytes)
    const unixfs = UnixFS.unmarshal(node.Data!)
    expect(unixfs.type).toBe('file')
    expect(unixfs.blockSizes).toEqual([BigInt(CHUNK_SIZE), BigInt(CHUNK_SIZE), 5n])
    expect(unixfs.fileSize()).toBe(BigInt(data.length))
    expect(node.Links.map((l) => [l.Name, l.Tsize])).toEqual([
      ['', CHUNK_SIZE],
      ['', CHUNK_SIZE],
      ['', 5],
    ])
    expect(leaves.map((l) => l.cid.toString())).toEqual([
      referenceCid(RAW_CODE, data.subarray(0, CHUNK_SIZE)).toString(),
      referenceCid(RAW_CODE, data.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE)).toString(),
      referenceCid(RAW_CODE, data.subarray(2 * CHUNK_SIZE)).toString(),
    ])
    expect(node.Links.map((l) => l.Hash.toString())).toEqual(leaves.map((l) => l.cid.toString()))
    expect(f.cid.equals(referenceCid(DAG_PB_CODE, root!.bytes))).toBe(true)
    expect(f.tsize).toBe(root!.bytes.length + data.length)
  })

  it('lists each distinct block once', async () => {
    const data = new Uint8Array(3 * CHUNK_SIZE).fill(1) // three identical leaves
    const f = await encodeFile(data)
    expect(f.blocks).toHaveLength(2)
    expect(f.tsize).toBe(f.blocks[0]!.bytes.length + data.length)
    expectBytes(await readUnixfsFile(getter(blockMap(await dirWith('f', f))), (await encodeDirectory([{ name: 'f', ...f }])).cid, 'f'), data)
  })

  it("gives the same CIDs as Storacha's uploader (@storacha/upload-client UnixFS.encodeFile)", async () => {
    for (const size of [0, 7, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 12345]) {
      const data = pseudoRandomBytes(size, 7 * size + 3)
      const ref = await StorachaUnixFS.encodeFile(new Blob([data]))
      const ours = await encodeFile(data)
      expect(ours.cid.toString(), `size ${size}`).toBe(ref.cid.toString())
      expect(new Set(ours.blocks.map((b) => b.cid.toString()))).toEqual(new Set(ref.blocks.map((b) => b.cid.toString())))
    }
  })
})

async function dirWith(name: string, f: { cid: CID; tsize: number; blocks: Block[] }): Promise<Block[]> {
  const d = await encodeDirectory([{ name, cid: f.cid, tsize: f.tsize }])
  return [d.block, ...f.blocks]
}

describe('encodeDirectory', () => {
  it('encodes the empty UnixFS directory with its well-known CID', async () => {
    const d = await encodeDirectory([])
    expect(d.cid.toString()).toBe('bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354')
    expect(d.block.bytes).toEqual(new Uint8Array([0x0a, 0x02, 0x08, 0x01]))
  })

  it('sorts links by name, whatever the input order, with cumulative Tsize', async () => {
    const files = await Promise.all(['b', 'a', '000.p', '001', 'x001', 'entries'].map(async (n) => ({ name: n, ...(await encodeFile(text(n))) })))
    const d1 = await encodeDirectory(files)
    const d2 = await encodeDirectory([...files].reverse())
    expect(d1.cid.equals(d2.cid)).toBe(true)
    const node = dagPB.decode(d1.block.bytes)
    expect(UnixFS.unmarshal(node.Data!).type).toBe('directory')
    expect(node.Links.map((l) => l.Name)).toEqual(['000.p', '001', 'a', 'b', 'entries', 'x001'])
    for (const l of node.Links) {
      const f = files.find((x) => x.name === l.Name)!
      expect(l.Hash.toString()).toBe(f.cid.toString())
      expect(l.Tsize).toBe(f.tsize)
    }
    expect(d1.tsize).toBe(d1.block.bytes.length + files.reduce((n, f) => n + f.tsize, 0))
    expect(d1.cid.equals(referenceCid(DAG_PB_CODE, d1.block.bytes))).toBe(true)
  })

  it('refuses empty, slashed and duplicate names', async () => {
    const f = await encodeFile(text('x'))
    for (const name of ['', 'a/b', 'a\0']) {
      await expect(encodeDirectory([{ name, ...f }])).rejects.toBeInstanceOf(InvalidPathError)
    }
    await expect(encodeDirectory([{ name: 'a', ...f }, { name: 'a', ...f }])).rejects.toBeInstanceOf(InvalidPathError)
    await expect(encodeDirectory([{ name: 'a', cid: f.cid, tsize: -1 }])).rejects.toBeInstanceOf(RangeError)
  })

  it("HAMT-shards a directory of more than 1000 entries exactly as Storacha's uploader does, and reads through it", async () => {
    const names = Array.from({ length: 1500 }, (_, i) => (i % 2 ? `${String(i >> 1).padStart(3, '0')}.p` : String(i >> 1).padStart(3, '0')))
    const contents = names.map((n) => new TextEncoder().encode(`file ${n}`))
    const ref = await StorachaUnixFS.encodeDirectory(names.map((name, i) => Object.assign(new Blob([contents[i]!]), { name })))
    const files = await Promise.all(contents.map((c) => encodeFile(c)))
    const d = await encodeDirectory(names.map((name, i) => ({ name, cid: files[i]!.cid, tsize: files[i]!.tsize })))
    expect(d.sharded).toBe(true)
    expect(d.cid.toString()).toBe(ref.cid.toString())
    expect(d.blocks.map((b) => b.cid.toString()).sort()).toEqual(ref.blocks.filter((b) => b.cid.code === 0x70).map((b) => b.cid.toString()).sort())
    const blocks = blockMap([...d.blocks, ...files.flatMap((f) => f.blocks)])
    for (const i of [0, 1, 777, 1499]) expectBytes(await readUnixfsFile(getter(blocks), d.cid, `${names[i]}`), contents[i]!)
    expect(await readUnixfsFile(getter(blocks), d.cid, 'nope')).toBeUndefined()
    // walkDirectory lists the entries, not the shard nodes.
    const walked = []
    for await (const e of walkDirectory(getter(blocks), d.cid)) walked.push(e)
    expect(walked.map((e) => e.name).sort()).toEqual([...names].sort())
    expect(walked.every((e) => e.dir === '' && !e.isDir)).toBe(true)
    expect(walked.find((e) => e.name === names[777])!.cid.toString()).toBe(files[777]!.cid.toString())
    // 1000 entries stay one plain node.
    expect((await encodeDirectory(names.slice(0, 1000).map((name, i) => ({ name, cid: files[i]!.cid, tsize: files[i]!.tsize })))).sharded).toBe(false)
  })

  it("gives the same root CID as Storacha's uploader for a small tlog-tiles tree", async () => {
    const files: [string, string][] = [
      ['checkpoint', 'example.com/log\n3\n'],
      ['tile/0/000.p/3', 'abc'],
      ['tile/0/001', 'q'],
      ['tile/entries/000.p/3', 'xyz'],
    ]
    const ref = await StorachaUnixFS.encodeDirectory(files.map(([name, c]) => Object.assign(new Blob([c]), { name })))
    const f = async (c: string) => encodeFile(text(c))
    const t0 = await encodeDirectory([
      { name: '000.p', ...(await encodeDirectory([{ name: '3', ...(await f('abc')) }])) },
      { name: '001', ...(await f('q')) },
    ])
    const te = await encodeDirectory([{ name: '000.p', ...(await encodeDirectory([{ name: '3', ...(await f('xyz')) }])) }])
    const tile = await encodeDirectory([
      { name: '0', ...t0 },
      { name: 'entries', ...te },
    ])
    const root = await encodeDirectory([
      { name: 'checkpoint', ...(await f('example.com/log\n3\n')) },
      { name: 'tile', ...tile },
    ])
    expect(root.cid.toString()).toBe(ref.cid.toString())
  })
})

describe('readUnixfsFile', () => {
  async function fixture() {
    const big = pseudoRandomBytes(CHUNK_SIZE + 100, 9)
    const files = {
      checkpoint: await encodeFile(text('cp')),
      partial: await encodeFile(text('partial')),
      bundle: await encodeFile(big),
    }
    const p = await encodeDirectory([{ name: '3', ...files.partial }])
    const entries = await encodeDirectory([
      { name: '000', ...files.bundle },
      { name: '000.p', ...p },
    ])
    const tile = await encodeDirectory([{ name: 'entries', ...entries }])
    const root = await encodeDirectory([
      { name: 'checkpoint', ...files.checkpoint },
      { name: 'tile', ...tile },
    ])
    const blocks = blockMap([root.block, tile.block, entries.block, p.block, ...Object.values(files).flatMap((f) => f.blocks)])
    return { root: root.cid, blocks, big, files }
  }

  it('reads files through nested directories, and multi-block files whole', async () => {
    const { root, blocks, big } = await fixture()
    const get = getter(blocks)
    expect(await readUnixfsFile(get, root, 'checkpoint')).toEqual(text('cp'))
    expect(await readUnixfsFile(get, root, 'tile/entries/000.p/3')).toEqual(text('partial'))
    expectBytes(await readUnixfsFile(get, root, 'tile/entries/000'), big)
  })

  it('resolves undefined where there is no file', async () => {
    const { root, blocks } = await fixture()
    const get = getter(blocks)
    for (const p of ['nope', 'tile/0/000', 'tile', 'tile/entries', 'tile/entries/000.p', 'checkpoint/x', 'tile/entries/000/x']) {
      expect(await readUnixfsFile(get, root, p), p).toBeUndefined()
    }
  })

  it('throws MissingBlockError for a block the source lacks', async () => {
    const { root, blocks, files } = await fixture()
    blocks.delete(files.bundle.blocks[2]!.cid.toString())
    await expect(readUnixfsFile(getter(blocks), root, 'tile/entries/000')).rejects.toBeInstanceOf(MissingBlockError)
    blocks.delete(root.toString())
    await expect(readUnixfsFile(getter(blocks), root, 'checkpoint')).rejects.toBeInstanceOf(MissingBlockError)
  })

  it('throws InvalidBlockError for any block whose bytes do not match its CID', async () => {
    const { root, blocks } = await fixture()
    for (const [key, bytes] of blocks) {
      const tampered = new Map(blocks)
      const copy = bytes.length === 0 ? new Uint8Array([0]) : bytes.slice()
      copy[copy.length - 1]! ^= 1
      tampered.set(key, copy)
      const reads = ['checkpoint', 'tile/entries/000', 'tile/entries/000.p/3'].map((p) => readUnixfsFile(getter(tampered), root, p))
      const results = await Promise.allSettled(reads)
      const rejected = results.filter((r) => r.status === 'rejected')
      expect(rejected.length, key).toBeGreaterThan(0)
      for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(InvalidBlockError)
    }
  })

  it('refuses hostile paths, non-sha2-256 CIDs, inconsistent file nodes, HAMTs of another fanout and oversize files', async () => {
    const { root, blocks, big } = await fixture()
    const get = getter(blocks)
    await expect(readUnixfsFile(get, root, '../x')).rejects.toBeInstanceOf(InvalidPathError)
    await expect(readUnixfsFile(get, root, '')).rejects.toBeInstanceOf(InvalidPathError)

    const idCid = CID.createV1(RAW_CODE, identity.digest(text('hi')))
    await expect(readUnixfsFile(async () => text('hi'), idCid, 'x')).rejects.toBeInstanceOf(InvalidBlockError)

    // A file node whose blocksizes lie about its leaf.
    const leaf = await createBlock(RAW_CODE, text('abc'))
    const liar = await createBlock(
      DAG_PB_CODE,
      dagPB.encode(dagPB.prepare({ Data: new UnixFS({ type: 'file', blockSizes: [4n] }).marshal(), Links: [{ Name: '', Tsize: 3, Hash: leaf.cid }] })),
    )
    const dir = await encodeDirectory([{ name: 'f', cid: liar.cid, tsize: 10 }])
    const bad = blockMap([dir.block, liar, leaf])
    await expect(readUnixfsFile(getter(bad), dir.cid, 'f')).rejects.toBeInstanceOf(InvalidBlockError)

    const hamt = await createBlock(DAG_PB_CODE, dagPB.encode(dagPB.prepare({ Data: new UnixFS({ type: 'hamt-sharded-directory', fanout: 16n, hashType: 0x22n }).marshal(), Links: [] })))
    await expect(readUnixfsFile(getter(blockMap([hamt])), hamt.cid, 'x')).rejects.toBeInstanceOf(InvalidBlockError)

    const notUnixfs = await createBlock(DAG_PB_CODE, dagPB.encode(dagPB.prepare({ Data: new Uint8Array([0xff, 0xff]) })))
    await expect(readUnixfsFile(getter(blockMap([notUnixfs])), notUnixfs.cid, 'x')).rejects.toBeInstanceOf(InvalidBlockError)

    await expect(readUnixfsFile(get, root, 'tile/entries/000', { maxSize: big.length - 1 })).rejects.toBeInstanceOf(RangeError)
    expectBytes(await readUnixfsFile(get, root, 'tile/entries/000', { maxSize: big.length }), big)
  })

  it('round-trips arbitrary trees of files (property)', async () => {
    const name = fc.stringMatching(/^[a-z0-9][a-z0-9.]{0,5}$/)
    const tree = fc.uniqueArray(fc.tuple(fc.array(name, { minLength: 1, maxLength: 4 }), fc.uint8Array({ maxLength: 300 })), {
      minLength: 1,
      maxLength: 12,
      selector: ([segs]) => segs.join('/'),
    })
    await fc.assert(
      fc.asyncProperty(tree, async (entries) => {
        // Drop entries that would need a file and a directory at one path.
        const files = new Map<string, Uint8Array>()
        for (const [segs, data] of entries) {
          const p = segs.join('/')
          const clash = [...files.keys()].some((q) => q.startsWith(`${p}/`) || p.startsWith(`${q}/`))
          if (!clash) files.set(p, data)
        }
        const blocks: Block[] = []
        const build = async (prefix: string): Promise<{ cid: CID; tsize: number }> => {
          const names = new Set<string>()
          for (const p of files.keys()) if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]!)
          const links = []
          for (const n of names) {
            const data = files.get(prefix + n)
            if (data !== undefined) {
              const f = await encodeFile(data)
              blocks.push(...f.blocks)
              links.push({ name: n, cid: f.cid, tsize: f.tsize })
            } else {
              links.push({ name: n, ...(await build(`${prefix}${n}/`)) })
            }
          }
          const d = await encodeDirectory(links)
          blocks.push(d.block)
          return d
        }
        const root = await build('')
        const get = getter(blockMap(blocks))
        for (const [p, data] of files) expect(await readUnixfsFile(get, root.cid, p)).toEqual(data)
      }),
      { numRuns: 60 },
    )
  })
})

describe('the shard-node memo (ShardCache)', () => {
  it('changes no CID: a HAMT-sharded directory encodes the same with no memo, a full one, one too small to hold a node, or the shared one, version after version', async () => {
    const f = await encodeFile(new Uint8Array([1, 2, 3]))
    const g = await encodeFile(new Uint8Array([4, 5]))
    const names = Array.from({ length: 1500 }, (_, i) => String(i).padStart(4, '0'))
    const caches = [undefined, new ByteLru<string, Block>(64 * 2 ** 20), new ByteLru<string, Block>(200), sharedShardCache()]
    for (let version = 0; version < 3; version++) {
      const entries = names.map((name, i) => ({ name, ...(i % 3 === version ? g : f) }))
      const changed = new Set(names.filter((_, i) => i % 3 === version))
      const cids = await Promise.all(caches.map(async (c) => (await encodeDirectory(entries, changed, c)).cid.toString()))
      expect(new Set(cids).size).toBe(1)
    }
    expect(caches[1]!.size).toBeGreaterThan(0)
    expect(caches[1]!.bytes).toBeLessThanOrEqual(caches[1]!.maxBytes)
    expect(caches[2]!.size).toBe(0) // every node is larger than its bound: nothing kept
    expect(sharedShardCache()).toBe(sharedShardCache()) // one per process
  })

  it("counts what a memoized node's CID keeps alive: a CID with its string form costs no more heap than CID_HEAP_BYTES", async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const n = 2000
    const kept: unknown[] = []
    gc()
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < n; i++) {
      const block = await createBlock(0x70, new Uint8Array([i & 0xff, i >> 8, 7]))
      block.cid.toString() // as the packer and the upload queue do: multiformats keeps the string with the CID
      kept.push(block.cid)
    }
    gc()
    const perCid = (process.memoryUsage().heapUsed - before) / n
    expect(kept.length).toBe(n)
    expect(perCid).toBeGreaterThan(200) // the measure sees the CIDs at all
    expect(perCid).toBeLessThanOrEqual(CID_HEAP_BYTES)
  })

  it('keeps no superseded version: a sharded directory growing by one name per version (as a log gains tiles) holds its memo to the nodes that are reused', async () => {
    const f = await encodeFile(new Uint8Array([1, 2, 3]))
    const names = Array.from({ length: 1500 }, (_, i) => String(i).padStart(4, '0'))
    const cache = new ByteLru<string, Block>(64 * 2 ** 20)
    const plain = new ByteLru<string, Block>(64 * 2 ** 20)
    const sizes: number[] = []
    for (let version = 0; version <= 40; version++) {
      const added = `n${String(version).padStart(4, '0')}`
      names.push(added)
      const entries = names.map((name) => ({ name, ...f }))
      const a = await encodeDirectory(entries, new Set([added]), cache)
      // The same CID as with a memo that never saw the changed set (every node memoized).
      expect(a.cid.toString()).toBe((await encodeDirectory(entries, undefined, plain)).cid.toString())
      // Without what each node's CID is counted for (CID_HEAP_BYTES), as this bound was first set.
      sizes.push(cache.bytes - cache.size * CID_HEAP_BYTES)
    }
    // A superseded root alone is > 20 KiB (256 links): memoizing each version grew the memo by at
    // least that much per version (36.8 KB measured). Now only the small nodes beside each change
    // are (re)memoized.
    const perVersion = (sizes[40]! - sizes[10]!) / 30
    expect(perVersion).toBeLessThan(4096)
    expect(cache.size).toBeGreaterThan(0)
  })
})

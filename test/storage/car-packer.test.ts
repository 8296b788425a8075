import { CarReader } from '@ipld/car'
import * as dagPB from '@ipld/dag-pb'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { readdir, readFile as fsReadFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  CAR_CODE,
  carFileName,
  CarPacker,
  type CarPackerOptions,
  encodeFile,
  InvalidPathError,
  type PackFaultPoint,
  PackerClosedError,
  type PackResult,
  readUnixfsFile,
  StaleTreeSizeError,
} from '../../src/storage/index.js'
import { expectBytes, pseudoRandomBytes, tempDir } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)

/** Bytes standing in for a hash tile of `width` hashes (32 bytes each), distinct per `seed`. */
const tile = (width: number, seed: number) => pseudoRandomBytes(32 * width, seed)
const checkpoint = (size: number) => text(`example.com/log\n${size}\nroot${size}=\n\n— example.com/log sig${size}\n`)

/** Everything the CARs of one log hold, and the latest bytes of every path, to check packs against. */
class LogModel {
  readonly blocks = new Map<string, Uint8Array>() // CID string → bytes, over all CARs
  readonly latest = new Map<string, Uint8Array>()
  readonly carBlocks: Set<string>[] = []

  /** Checks one pack's CAR completely, then adds its blocks and files to the model. */
  async check(result: PackResult, files: ReadonlyMap<string, Uint8Array>, dir: string): Promise<void> {
    const car = new Uint8Array(await fsReadFile(result.file))
    expect(result.file).toBe(join(dir, carFileName(result.treeSize, result.carCid)))
    expect(basename(result.file)).toMatch(/^\d{16}-bag[a-z2-7]+\.car$/)
    expect(result.bytes).toBe(car.length)
    expect(result.carCid.code).toBe(CAR_CODE)
    expect(result.carCid.equals(CID.createV1(CAR_CODE, await sha256.digest(car)))).toBe(true)

    const reader = await CarReader.fromBytes(car)
    expect(reader.version).toBe(1)
    const roots = await reader.getRoots()
    expect(roots.map(String)).toEqual([result.root.toString()])
    const inCar = new Map<string, Uint8Array>()
    let count = 0
    for await (const b of reader.blocks()) {
      count++
      inCar.set(b.cid.toString(), b.bytes)
      expect(CID.decode(b.cid.bytes).equals(CID.createV1(b.cid.code, await sha256.digest(b.bytes)))).toBe(true)
    }
    expect(count).toBe(result.blocks)
    expect(inCar.size).toBe(count) // no block twice
    const [first] = inCar.keys()
    expect(first).toBe(result.root.toString()) // root first: the CAR streams top-down

    for (const [k, v] of inCar) this.blocks.set(k, v)
    for (const [p, v] of files) this.latest.set(p, v)

    // Exactly: every block of every given file, plus the directory node on every changed path.
    const expected = new Set<string>()
    for (const [path, bytes] of files) {
      for (const b of (await encodeFile(bytes)).blocks) expected.add(b.cid.toString())
      const segments = path.split('/')
      for (let i = 0; i < segments.length; i++) expected.add(this.dirCid(result.root, segments.slice(0, i)).toString())
    }
    expect(new Set(inCar.keys())).toEqual(expected)
    this.carBlocks.push(new Set(inCar.keys()))

    // The newest root is the whole log: every file ever packed reads back with its latest bytes.
    for (const [path, bytes] of this.latest) expectBytes(await readUnixfsFile(this.get, result.root, path), bytes, path)
  }

  readonly get = async (cid: CID) => this.blocks.get(cid.toString())

  /** CID of the directory at `segments` under `root`, walking the blocks seen so far. */
  dirCid(root: CID, segments: string[]): CID {
    let cid = root
    for (const s of segments) {
      const node = dagPB.decode(this.blocks.get(cid.toString())!)
      const link = node.Links.find((l) => l.Name === s)
      expect(link, `directory ${segments.join('/')}`).toBeDefined()
      cid = CID.decode(link!.Hash.bytes)
    }
    return cid
  }

  async cidOf(root: CID, path: string): Promise<CID> {
    const segments = path.split('/')
    const parent = this.dirCid(root, segments.slice(0, -1))
    const link = dagPB.decode(this.blocks.get(parent.toString())!).Links.find((l) => l.Name === segments.at(-1))
    return CID.decode(link!.Hash.bytes)
  }
}

/** A full entry bundle of 256 entries, larger than 1 MiB, so it is a multi-block UnixFS file. */
const bigBundle = pseudoRandomBytes(256 * (2 + 4200), 77)

/** Checkpoints as the log engine would pack them (files from tlog-tiles newTiles for each size). */
const STEPS: [number, Map<string, Uint8Array>][] = [
  [
    3,
    new Map([
      ['checkpoint', checkpoint(3)],
      ['tile/0/000.p/3', tile(3, 1)],
      ['tile/entries/000.p/3', pseudoRandomBytes(40, 2)],
    ]),
  ],
  [
    300,
    new Map([
      ['checkpoint', checkpoint(300)],
      ['tile/0/000', tile(256, 3)],
      ['tile/0/001.p/44', tile(44, 4)],
      ['tile/entries/000', bigBundle],
      ['tile/entries/001.p/44', pseudoRandomBytes(900, 5)],
      ['tile/1/000.p/1', tile(1, 6)],
    ]),
  ],
  [
    600,
    new Map([
      ['checkpoint', checkpoint(600)],
      ['tile/0/001', tile(256, 7)],
      ['tile/0/002.p/88', tile(88, 8)],
      ['tile/entries/001', pseudoRandomBytes(5000, 9)],
      ['tile/entries/002.p/88', pseudoRandomBytes(1800, 10)],
      ['tile/1/000.p/2', tile(2, 11)],
    ]),
  ],
]

/** A later checkpoint past tile index 1000 (the tiles in between are left out: the packer does no tree math). */
const STEP_X001: [number, Map<string, Uint8Array>] = [
  256_005,
  new Map([
    ['checkpoint', checkpoint(256_005)],
    ['tile/0/x001/000.p/5', tile(5, 12)],
    ['tile/entries/x001/000.p/5', pseudoRandomBytes(100, 13)],
    ['tile/1/003.p/232', tile(232, 14)],
    ['tile/2/000.p/3', tile(3, 15)],
  ]),
]

async function withPacker<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir('ucanlog-cars-')
  try {
    return await fn(join(dir, 'cars', 'did:key:z6Mktest'))
  } finally {
    await cleanup()
  }
}

async function carFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !n.startsWith('index.sqlite')).sort()
}

describe('CarPacker', () => {
  it('starts empty', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      expect(p.lastTreeSize).toBe(0)
      expect(p.lastRoot).toBeUndefined()
      expect(p.list()).toEqual([])
      await p.close()
    }))

  it('packs a growing log: each CAR holds only what changed, the newest root holds everything', () =>
    withPacker(async (dir) => {
      const model = new LogModel()
      const p = await CarPacker.open(dir)
      const results: PackResult[] = []
      for (const [size, files] of STEPS) {
        const r = await p.pack(size, files)
        expect(r.treeSize).toBe(size)
        expect(p.lastTreeSize).toBe(size)
        expect(p.lastRoot!.equals(r.root)).toBe(true)
        await model.check(r, files, p.dir)
        results.push(r)
      }
      // Size 300: 8 directories ('', tile, tile/0, tile/0/001.p, tile/1, tile/1/000.p, tile/entries,
      // tile/entries/001.p) + 5 single-block files + the bundle (a file node and 2 leaves).
      expect(results[1]!.blocks).toBe(8 + 5 + 3)
      // The partial tile of size 3 and its directory were not rewritten at 300, yet are still there.
      const partial3 = await model.cidOf(results[1]!.root, 'tile/0/000.p/3')
      expect(partial3.equals((await encodeFile(STEPS[0]![1].get('tile/0/000.p/3')!)).cid)).toBe(true)
      expect(model.carBlocks[0]!.has(partial3.toString())).toBe(true)
      expect(model.carBlocks[1]!.has(partial3.toString())).toBe(false)
      expect(model.carBlocks[1]!.has(model.dirCid(results[1]!.root, ['tile', '0', '000.p']).toString())).toBe(false)
      // The bundle packed at 300 is referenced, not repeated, at 600.
      const bundle = await model.cidOf(results[2]!.root, 'tile/entries/000')
      expect(model.carBlocks[2]!.has(bundle.toString())).toBe(false)
      expectBytes(await readUnixfsFile(model.get, results[2]!.root, 'tile/entries/000'), bigBundle)
      expectBytes(await readUnixfsFile(model.get, results[2]!.root, 'tile/0/000.p/3'), STEPS[0]![1].get('tile/0/000.p/3')!)

      expect(p.list()).toEqual(results)
      expect(await carFiles(p.dir)).toEqual(results.map((r) => basename(r.file)))
      await p.close()
    }))

  it('reopens with the same state and continues', () =>
    withPacker(async (dir) => {
      const model = new LogModel()
      let p = await CarPacker.open(dir)
      for (const [size, files] of STEPS.slice(0, 2)) await model.check(await p.pack(size, files), files, p.dir)
      const before = p.list()
      await p.close()
      await p.close() // idempotent
      await expect(p.pack(1000, new Map([['checkpoint', text('x')]]))).rejects.toBeInstanceOf(PackerClosedError)

      p = await CarPacker.open(dir)
      expect(p.lastTreeSize).toBe(300)
      expect(p.lastRoot!.equals(before.at(-1)!.root)).toBe(true)
      expect(p.list()).toEqual(before)
      for (const [size, files] of [STEPS[2]!, STEP_X001]) await model.check(await p.pack(size, files), files, p.dir)
      expectBytes(await readUnixfsFile(model.get, p.lastRoot!, 'tile/entries/x001/000.p/5'), STEP_X001[1].get('tile/entries/x001/000.p/5')!)
      await p.close()
    }))

  it('is deterministic: the same packs give the same roots, CAR CIDs and CAR bytes', async () => {
    const runs: { results: PackResult[]; cars: Uint8Array[] }[] = []
    for (let i = 0; i < 2; i++) {
      runs.push(
        await withPacker(async (dir) => {
          const p = await CarPacker.open(dir)
          const results = []
          for (const [size, files] of [...STEPS, STEP_X001]) results.push(await p.pack(size, files))
          const cars = await Promise.all(results.map(async (r) => new Uint8Array(await fsReadFile(r.file))))
          await p.close()
          return { results, cars }
        }),
      )
    }
    const [a, b] = runs
    expect(a!.results.map((r) => [r.root.toString(), r.carCid.toString(), r.bytes, r.blocks])).toEqual(
      b!.results.map((r) => [r.root.toString(), r.carCid.toString(), r.bytes, r.blocks]),
    )
    a!.cars.forEach((car, i) => expectBytes(car, b!.cars[i]!))
  })

  it('stores a block shared by two changed files once', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      const same = tile(5, 99)
      const model = new LogModel()
      const files = new Map([
        ['tile/0/000.p/5', same],
        ['tile/entries/000.p/6', same],
        ['checkpoint', checkpoint(6)],
      ])
      const r = await p.pack(6, files)
      await model.check(r, files, p.dir)
      // '', tile, tile/0, tile/0/000.p, tile/entries, tile/entries/000.p + 2 distinct file blocks.
      expect(r.blocks).toBe(6 + 2)
      // Identical directories are one block too: tile/0 and tile/entries below are the same node.
      const twins = new Map([
        ['tile/0/001.p/1', same],
        ['tile/entries/001.p/1', same],
        ['checkpoint', checkpoint(7)],
      ])
      const q = await CarPacker.open(join(dir, 'twins'))
      const r2 = await q.pack(7, twins)
      await new LogModel().check(r2, twins, q.dir)
      expect(r2.blocks).toBe(4 + 2) // '', tile, tile/0 = tile/entries, 001.p (both) + 2 file blocks
      await q.close()
      await p.close()
    }))

  it('rejects a stale tree size with StaleTreeSizeError, writing nothing, and stays usable', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      await p.pack(300, STEPS[1]![1])
      const files = await carFiles(p.dir)
      for (const size of [300, 299, 3]) {
        const err = await p.pack(size, STEPS[0]![1]).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(StaleTreeSizeError)
        expect(err).toMatchObject({ name: 'StaleTreeSizeError', treeSize: size, lastTreeSize: 300 })
      }
      expect(await carFiles(p.dir)).toEqual(files)
      expect(p.lastTreeSize).toBe(300)
      await p.pack(600, STEPS[2]![1])
      expect(p.lastTreeSize).toBe(600)
      await p.close()
    }))

  it('rejects bad paths, path conflicts, empty packs and bad tree sizes, writing nothing', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      await p.pack(3, STEPS[0]![1])
      const files = await carFiles(p.dir)
      const one = (path: string) => new Map([[path, text('x')]])
      const bad: [number, Map<string, Uint8Array>, new (...args: never[]) => Error][] = [
        [10, one('../checkpoint'), InvalidPathError],
        [10, one('/checkpoint'), InvalidPathError],
        [10, one('tile//0'), InvalidPathError],
        [10, one('checkpoint/x'), InvalidPathError], // checkpoint is a file in the log
        [10, one('tile'), InvalidPathError], // tile is a directory in the log
        [10, one('tile/0/000.p'), InvalidPathError],
        [10, new Map([['a/b', text('1')], ['a/b/c', text('2')]]), InvalidPathError],
        [10, new Map([['a/b/c', text('1')], ['a/b', text('2')]]), InvalidPathError],
        [10, new Map(), RangeError],
        [1.5, one('checkpoint'), RangeError],
        [Number.NaN, one('checkpoint'), RangeError],
        [-1, one('checkpoint'), RangeError],
        [2 ** 53, one('checkpoint'), RangeError],
      ]
      for (const [size, f, type] of bad) await expect(p.pack(size, f), [...f.keys()].join()).rejects.toBeInstanceOf(type)
      expect(await carFiles(p.dir)).toEqual(files)
      expect(p.lastTreeSize).toBe(3)
      const model = new LogModel()
      await model.check(p.list()[0]!, STEPS[0]![1], p.dir)
      await model.check(await p.pack(300, STEPS[1]![1]), STEPS[1]![1], p.dir)
      await p.close()
    }))

  it('serializes concurrent packs in call order', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      const [a, b, c] = await Promise.allSettled([p.pack(3, STEPS[0]![1]), p.pack(300, STEPS[1]![1]), p.pack(250, STEPS[1]![1])])
      expect(a.status).toBe('fulfilled')
      expect(b.status).toBe('fulfilled')
      expect((c as PromiseRejectedResult).reason).toBeInstanceOf(StaleTreeSizeError)
      expect(p.list().map((r) => r.treeSize)).toEqual([3, 300])
      await p.close()
    }))

  it('allows one packer per directory', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      await expect(CarPacker.open(dir)).rejects.toThrow(/locked/)
      await p.pack(3, STEPS[0]![1])
      await p.close()
      const q = await CarPacker.open(dir)
      expect(q.lastTreeSize).toBe(3)
      await q.close()
    }))

  describe('crash safety (fault injection)', () => {
    const points: PackFaultPoint[] = ['intent-recorded', 'car-written', 'car-renamed']
    for (const point of points) {
      it(`recovers from a crash at '${point}' on reopen`, () =>
        withPacker(async (dir) => {
          let crashAt: PackFaultPoint | undefined
          const options: CarPackerOptions = {
            faultHook: (at) => {
              if (at === crashAt) throw new Error(`crash at ${at}`)
            },
          }
          let p = await CarPacker.open(dir, options)
          const model = new LogModel()
          await model.check(await p.pack(3, STEPS[0]![1]), STEPS[0]![1], p.dir)
          const committed = await carFiles(p.dir)

          crashAt = point
          await expect(p.pack(300, STEPS[1]![1])).rejects.toThrow(`crash at ${point}`)
          // Like a dead process: the packer is unusable and the disk keeps what the crash left.
          await expect(p.pack(301, STEPS[1]![1])).rejects.toBeInstanceOf(PackerClosedError)
          expect(() => p.list()).toThrow(PackerClosedError)
          const left = await carFiles(p.dir)
          if (point === 'car-written') expect(left.some((n) => n.startsWith('.tmp-'))).toBe(true)
          if (point === 'car-renamed') expect(left.filter((n) => n.endsWith('.car'))).toHaveLength(2)

          crashAt = undefined
          p = await CarPacker.open(dir, options)
          expect(p.lastTreeSize).toBe(3)
          expect(await carFiles(p.dir)).toEqual(committed) // the orphan CAR or temp file is gone
          expect(p.list()).toHaveLength(1)
          // The log engine packs the same checkpoint again; the index never saw the crashed pack.
          await model.check(await p.pack(300, STEPS[1]![1]), STEPS[1]![1], p.dir)
          await model.check(await p.pack(600, STEPS[2]![1]), STEPS[2]![1], p.dir)
          expect(await carFiles(p.dir)).toEqual(p.list().map((r) => basename(r.file)))
          await p.close()
        }))
    }
  })

  it('keeps every CAR exact and the newest root complete over random histories (property)', async () => {
    const universe = [
      'checkpoint',
      'tile/0/000',
      'tile/0/000.p/1',
      'tile/0/001.p/7',
      'tile/0/x001/000.p/5',
      'tile/1/000.p/2',
      'tile/entries/000',
      'tile/entries/000.p/1',
      'tile/entries/x001/000',
    ]
    const step = fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.subarray(universe, { minLength: 1 }), fc.integer())
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 5 }), async (steps) =>
        withPacker(async (dir) => {
          const model = new LogModel()
          let p = await CarPacker.open(dir)
          let size = 0
          for (const [i, [grow, paths, seed]] of steps.entries()) {
            size += grow
            const files = new Map(paths.map((path, j) => [path, pseudoRandomBytes((seed + j) & 0xff, seed + j)]))
            await model.check(await p.pack(size, files), files, p.dir)
            if (i === 2) {
              await p.close()
              p = await CarPacker.open(dir)
            }
          }
          await p.close()
        }),
      ),
      { numRuns: 25 },
    )
  })

  /*
   * Directory overhead at about 1M entries. The log holds 3905 full level-0 tiles and entry
   * bundles, one old partial (`<N>.p/<W>`) of each (a checkpoint lands inside nearly every tile), 15
   * level-1 tiles; then one batch of 256 entries takes it to 1,000,000. That pack rewrites 10
   * directories: '', tile, tile/0 (1000 tiles + 1000 .p + x001..x003), tile/0/x003 (905 + 906),
   * tile/0/x003/906.p, the same three under tile/entries, tile/1, tile/1/015.p. Measured when
   * written: 377,162 bytes of directory nodes per pack (7,658 links, ≈ 49 bytes per link) against
   * 32,901 bytes of changed files, plus 669 bytes of CAR framing — the cost of unsharded
   * directories. It grows with directory fan-out (at most ~3,000 links per directory in this
   * layout: 1000 tiles + 1000 `.p` + 999 `x` groups), not with the log.
   */
  it('measures the directory overhead of one pack at ~1M entries', () =>
    withPacker(async (dir) => {
      const p = await CarPacker.open(dir)
      const n = (i: number) => {
        const groups = []
        for (let x = i; ; x = Math.floor(x / 1000)) {
          groups.unshift(String(x % 1000).padStart(3, '0'))
          if (x < 1000) break
        }
        return groups.map((g, j) => (j < groups.length - 1 ? `x${g}` : g)).join('/')
      }
      const bulk = new Map<string, Uint8Array>()
      const full0 = Math.floor(999_744 / 256) // 3905
      // Real sizes, so link Tsize varints are as long as in a real log: tiles 8192 bytes, bundles
      // 16 KiB (any bundle of 16 KiB–2 MiB has a 3-byte Tsize), partials a few KB.
      const tileBytes = new Uint8Array(8192)
      const bundleBytes = new Uint8Array(16384)
      const distinct = (base: Uint8Array, i: number) => {
        const b = base.slice()
        new DataView(b.buffer).setUint32(0, i)
        return b
      }
      for (let i = 0; i < full0; i++) {
        bulk.set(`tile/0/${n(i)}`, distinct(tileBytes, i))
        bulk.set(`tile/entries/${n(i)}`, distinct(bundleBytes, i))
        const w = 1 + (i % 255)
        bulk.set(`tile/0/${n(i)}.p/${w}`, distinct(new Uint8Array(32 * w), i))
        bulk.set(`tile/entries/${n(i)}.p/${w}`, distinct(new Uint8Array(64 * w), i))
      }
      bulk.set(`tile/0/${n(full0)}.p/64`, distinct(new Uint8Array(32 * 64), 1))
      bulk.set(`tile/entries/${n(full0)}.p/64`, distinct(new Uint8Array(64 * 64), 1))
      for (let i = 0; i < 15; i++) bulk.set(`tile/1/${n(i)}`, distinct(tileBytes, 100_000 + i))
      bulk.set('tile/1/015.p/65', distinct(new Uint8Array(32 * 65), 2))
      bulk.set('tile/2/000.p/15', distinct(new Uint8Array(32 * 15), 3))
      bulk.set('checkpoint', checkpoint(999_744))
      await p.pack(999_744, bulk)

      const batch = new Map([
        ['checkpoint', checkpoint(1_000_000)],
        [`tile/0/${n(3905)}`, distinct(tileBytes, 3905)],
        [`tile/0/${n(3906)}.p/64`, distinct(new Uint8Array(32 * 64), 4)],
        [`tile/entries/${n(3905)}`, distinct(bundleBytes, 3905)],
        [`tile/entries/${n(3906)}.p/64`, distinct(new Uint8Array(64 * 64), 4)],
        ['tile/1/015.p/66', distinct(new Uint8Array(32 * 66), 5)],
      ])
      const t0 = performance.now()
      const r = await p.pack(1_000_000, batch)
      const ms = performance.now() - t0
      // Bounded: the tile directories hold ~2000 entries each, HAMT-sharded, so only the shard
      // nodes on changed names' paths are new (a plain directory node would be ~90 KB each).
      
      const fileBytes = [...batch.values()].reduce((s, b) => s + b.length, 0)
      const car = await CarReader.fromBytes(new Uint8Array(await fsReadFile(r.file)))
      let dirBytes = 0
      let dirs = 0
      let links = 0
      for await (const b of car.blocks()) {
        if (b.cid.code === dagPB.code) {
          const node = dagPB.decode(b.bytes)
          dirs++
          links += node.Links.length
          dirBytes += b.bytes.length
        }
      }
      expect(r.blocks).toBe(dirs + batch.size)
      expect(dirBytes).toBeLessThan(64 * 1024)
      // The newest root reads back through the HAMTs.
      const all = new Map<string, Uint8Array>()
      for (const f of (await readdir(dir)).filter((x) => x.endsWith('.car'))) {
        for await (const b of (await CarReader.fromBytes(new Uint8Array(await fsReadFile(join(dir, f))))).blocks()) all.set(b.cid.toString(), b.bytes)
      }
      const get = async (c: { toString(): string }) => all.get(c.toString())
      for (const [path, bytes] of [...batch, ['tile/0/x001/234', distinct(tileBytes, 1234)] as const, ['tile/entries/x003/060.p/1', distinct(new Uint8Array(64), 3060)] as const]) {
        expect(await readUnixfsFile(get as never, r.root, path), path).toEqual(bytes)
      }
      console.log(
        `pack at 1,000,000 entries: CAR ${r.bytes} bytes = ${fileBytes} bytes of ${batch.size} changed files + ` +
          `${dirBytes} bytes of ${dirs} directory nodes (${links} links, ${(dirBytes / links).toFixed(1)} bytes/link) + ` +
          `${r.bytes - fileBytes - dirBytes} bytes of CAR framing; pack took ${ms.toFixed(0)} ms`,
      )
      await p.close()
    }))
})

/**
 * Interop with the reference Go implementation, golang.org/x/mod/sumdb/tlog and sumdb/note
 * (Debian's x/mod 0.7.0, go1.19), through test/interop/go/tlogtool:
 *  - the committed Go vectors are what Go prints today, and Go's fresh proofs check with our code;
 *  - our inclusion and consistency proofs pass tlog.CheckRecord / tlog.CheckTree, and tampered ones fail;
 *  - tiles and entry bundles we write (MemoryHashStore → newTiles/readTileData, formatEntryBundle)
 *    are recomputed by Go's TileHashReader and TreeHash at every published size;
 *  - tlogtool's signed-note commands reproduce the litewitness checkpoint signature.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { formatEntryBundle } from '../../src/tlog/bundle.js'
import { decodeHash, encodeBase64 } from '../../src/tlog/encoding.js'
import { type Hash, leafHash, treeHash } from '../../src/tlog/hash.js'
import { checkRecord, checkTree, proveRecord, proveTree } from '../../src/tlog/proof.js'
import { TILE_WIDTH, type Tile, type TileReader, entryBundlePath, newTiles, readTileData, tileHashReader, tilePath } from '../../src/tlog/tile.js'
import { entry, flip, hex, storeOf } from '../tlog/fixtures.js'
import { GO_VECTORS_PATH, type GoVectors } from '../tlog/go-vectors.js'
import { goTool } from './go.js'

const b64 = encodeBase64

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

interface InclusionInput { size: number; index: number; root: string; leaf: string; proof: string[] }
interface ConsistencyInput { new: number; newRoot: string; old: number; oldRoot: string; proof: string[] }
interface CheckOutput { inclusion: { ok: boolean; error?: string }[]; consistency: { ok: boolean; error?: string }[] }

async function goCheck(inclusion: InclusionInput[], consistency: ConsistencyInput[]): Promise<{ code: number; out: CheckOutput; stderr: string }> {
  const r = await goTool(['check-proofs'], JSON.stringify({ inclusion, consistency }))
  expect(r.code === 0 || r.code === 1, r.stderr).toBe(true)
  return { code: r.code, out: JSON.parse(r.stdout) as CheckOutput, stderr: r.stderr }
}

describe('Go x/mod sumdb/tlog interop', () => {
  const N = 70000
  const store = storeOf(N)
  const roots = new Map<number, Hash>()
  const root = async (size: number): Promise<Hash> => {
    let r = roots.get(size)
    if (r === undefined) roots.set(size, (r = await treeHash(size, store)))
    return r
  }

  it('test/vectors/go-tlog.json is exactly what `tlogtool vectors 513` prints', async () => {
    const r = await goTool(['vectors', '513'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout === (await readFile(GO_VECTORS_PATH, 'utf8'))).toBe(true)
  })

  it("Go's proofs for a 600-entry tree check with our code and equal ours", async () => {
    const r = await goTool(['vectors', '600'])
    expect(r.code, r.stderr).toBe(0)
    const v = JSON.parse(r.stdout) as GoVectors
    const rs = v.roots.map(decodeHash)
    expect(rs.map(hex)).toEqual(await Promise.all(rs.map(async (_, i) => hex(await root(i + 1)))))
    for (const x of v.inclusion) {
      checkRecord(x.proof.map(decodeHash), x.size, rs[x.size - 1]!, x.index, leafHash(entry(x.index)))
      expect((await proveRecord(x.size, x.index, store)).map(b64)).toEqual(x.proof)
    }
    for (const x of v.consistency) {
      checkTree(x.proof.map(decodeHash), x.new, rs[x.new - 1]!, x.old, rs[x.old - 1]!)
      expect((await proveTree(x.new, x.old, store)).map(b64)).toEqual(x.proof)
    }
    expect(v.inclusion.length + v.consistency.length).toBeGreaterThan(1000)
  })

  describe('our proofs, checked by tlog.CheckRecord and tlog.CheckTree', () => {
    const inclusion: InclusionInput[] = []
    const consistency: ConsistencyInput[] = []
    beforeAll(async () => {
      const pairs: [number, number][] = []
      for (let size = 1; size <= 64; size++) for (let i = 0; i < size; i++) pairs.push([size, i])
      const rand = rng(6962)
      for (const size of [255, 256, 257, 65535, 65536, 65537, N]) pairs.push([size, 0], [size, size - 1], [size, rand(size)])
      for (let k = 0; k < 400; k++) {
        const size = 1 + rand(N)
        pairs.push([size, rand(size)])
      }
      for (const [size, i] of pairs) {
        inclusion.push({ size, index: i, root: b64(await root(size)), leaf: b64(leafHash(entry(i))), proof: (await proveRecord(size, i, store)).map(b64) })
        consistency.push({ new: size, newRoot: b64(await root(size)), old: i + 1, oldRoot: b64(await root(i + 1)), proof: (await proveTree(size, i + 1, store)).map(b64) })
      }
    })

    it('all pass', async () => {
      const { code, out, stderr } = await goCheck(inclusion, consistency)
      expect(stderr).toBe('')
      expect(code).toBe(0)
      expect(out.inclusion).toHaveLength(inclusion.length)
      expect(out.consistency).toHaveLength(consistency.length)
      expect(out.inclusion.every((r) => r.ok) && out.consistency.every((r) => r.ok)).toBe(true)
      expect(inclusion.length).toBeGreaterThan(2500)
    })

    it('every tampered one fails', async () => {
      const rand = rng(42)
      const tamper = (proof: string[], rootB64: string): [string[], string] => {
        if (proof.length === 0) return [proof, b64(flip(decodeHash(rootB64)))]
        const p = proof.slice()
        const k = rand(p.length)
        p[k] = b64(flip(decodeHash(p[k]!), rand(32), rand(8)))
        return [p, rootB64]
      }
      const badInclusion = inclusion.map((x) => {
        const [proof, r] = tamper(x.proof, x.root)
        return { ...x, proof, root: r }
      })
      const badConsistency = consistency.map((x) => {
        const [proof, r] = tamper(x.proof, x.newRoot)
        return { ...x, proof, newRoot: r }
      })
      // Wrong index / wrong old size with an untouched proof.
      badInclusion.push({ ...inclusion[100]!, index: (inclusion[100]!.index + 1) % inclusion[100]!.size })
      badConsistency.push({ ...consistency[200]!, old: consistency[200]!.old - 1, oldRoot: b64(await root(consistency[200]!.old - 1)) })
      const { code, out } = await goCheck(badInclusion, badConsistency)
      expect(code).toBe(1)
      expect(out.inclusion.filter((r) => r.ok)).toEqual([])
      expect(out.consistency.filter((r) => r.ok)).toEqual([])
      expect(out.inclusion).toHaveLength(badInclusion.length)
    })
  })

  describe('tiles and entry bundles we write, recomputed by Go', () => {
    // Each test writes its own directory (dir, written: fresh in beforeEach), so none relies on another's files.
    let dir: string
    const steps = [1, 5, 256, 300, 513, 4097, N]
    let written: { tiles: Set<string>; bundles: Set<string> }

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ucanlog-tiles-'))
      written = { tiles: new Set<string>(), bundles: new Set<string>() }
    })
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true })
    })

    async function put(path: string, data: Uint8Array): Promise<void> {
      await mkdir(dirname(join(dir, path)), { recursive: true })
      await writeFile(join(dir, path), data)
    }

    /** Publishes every step, as a log growing to N would (stale partial tiles included). */
    async function publishAll(): Promise<void> {
      let old = 0
      for (const size of steps) {
        await publish(old, size)
        old = size
      }
    }

    /** Publishes the tree growing from oldSize to newSize, as a log would. */
    async function publish(oldSize: number, newSize: number): Promise<void> {
      for (const t of newTiles(oldSize, newSize)) {
        await put(tilePath(t), await readTileData(t, store))
        written.tiles.add(tilePath(t))
        if (t.level === 0) {
          const entries = Array.from({ length: t.width }, (_, k) => entry(t.index * TILE_WIDTH + k))
          await put(entryBundlePath(t.index, t.width), formatEntryBundle(entries))
          written.bundles.add(entryBundlePath(t.index, t.width))
        }
      }
    }

    async function verify(size: number, rootHash: Hash): Promise<{ code: number; stdout: string; stderr: string }> {
      return goTool(['verify-tiles', dir, String(size), b64(rootHash)])
    }

    it('at every published size', async () => {
      let old = 0
      for (const size of steps) {
        await publish(old, size)
        old = size
        const r = await verify(size, await root(size))
        expect(r.stderr + r.stdout).toBe(`tiles ${written.tiles.size} bundles ${written.bundles.size} entries ${[...written.bundles].reduce((n, p) => n + (p.includes('.p/') ? Number(p.split('/').at(-1)) : 256), 0)}\nok ${size} ${b64(await root(size))}\n`)
      }
      expect(written.tiles.has('tile/2/000.p/1')).toBe(true)
      expect(written.tiles.has('tile/0/000.p/5')).toBe(true) // a stale partial, checked as a prefix
    })

    it('our tileHashReader over the same files serves the same proofs', async () => {
      await publishAll()
      const reader: TileReader = {
        readTiles: (tiles: readonly Tile[]) =>
          Promise.all(
            tiles.map(async (t) => {
              try {
                return new Uint8Array(await readFile(join(dir, tilePath(t))))
              } catch {
                // c2sp.org/tlog-tiles: a client may fall back to the full tile's prefix.
                const full = await readFile(join(dir, tilePath({ ...t, width: TILE_WIDTH })))
                return new Uint8Array(full.subarray(0, t.width * 32))
              }
            }),
          ),
      }
      for (const size of steps) {
        const thr = tileHashReader(size, await root(size), reader)
        for (const index of [0, Math.floor(size / 2), size - 1]) {
          expect((await proveRecord(size, index, thr)).map(hex)).toEqual((await proveRecord(size, index, store)).map(hex))
          expect((await proveTree(size, index + 1, thr)).map(hex)).toEqual((await proveTree(size, index + 1, store)).map(hex))
        }
      }
    })

    it('Go rejects a wrong root and any corrupted tile, stale partial, bundle or stray file', async () => {
      await publishAll()
      const good = await root(N)
      expect((await verify(N, flip(good))).code).toBe(1)
      expect((await verify(N - 1, good)).code).toBe(1)
      for (const path of ['tile/0/000', 'tile/0/137', 'tile/0/273.p/112', 'tile/1/001.p/17', 'tile/2/000.p/1', 'tile/0/000.p/5', 'tile/entries/005', 'tile/entries/273.p/112', 'tile/entries/000.p/5']) {
        const data = new Uint8Array(await readFile(join(dir, path)))
        await writeFile(join(dir, path), flip(data, data.length - 1))
        const r = await verify(N, good)
        expect(r.code, `${path}: ${r.stderr}`).toBe(1)
        expect(r.stdout).toBe('')
        await writeFile(join(dir, path), data)
      }
      for (const stray of ['tile/0/274', 'tile/0/000.p/0', 'tile/0/00', 'tile/entries/274.p/1', 'tile/9/000']) {
        await put(stray, new Uint8Array(32))
        const r = await verify(N, good)
        expect(r.code, stray).toBe(1)
        await rm(join(dir, stray))
      }
      expect((await verify(N, good)).code).toBe(0)
    })
  })
})

describe('Go x/mod sumdb/note interop (tlogtool sign-note / verify-note)', () => {
  // The litewitness test log: skey derived from the gentest seed, vkey from the upstream README.
  const origin = 'sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562'
  const skey = `PRIVATE+KEY+${origin}+5202289b+AbUwqoudx4pVGxg9I6KsRMujEWLLzCMFb/8dBis64Unv`
  const vkey = `${origin}+5202289b+Af/cLU2Y5BJNP+r3iMDC+av9eWCD0fBJVDfzAux5zxAP`
  const text = `${origin}\n5\nQrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=\n`
  const signed = `${text}\n— ${origin} UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww=\n`

  it('sign-note reproduces the litewitness size-5 checkpoint signature', async () => {
    const r = await goTool(['sign-note', skey], text)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(signed)
  })

  it('verify-note opens it, and rejects a flipped signature bit', async () => {
    const ok = await goTool(['verify-note', vkey], signed)
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toBe(text)
    const bad = await goTool(['verify-note', vkey], signed.replace('Wi0i1FQ', 'Wi0i1FR'))
    expect(bad.code).toBe(1)
    expect(bad.stdout).toBe('')
  })

  it('Go ignores non-zero trailing base64 bits in signatures (a parser differential: Go decodes base64 leniently)', async () => {
    // 'w' → 'x' changes only the 2 unused bits of the last group; Go's StdEncoding accepts it.
    // Our decodeBase64 must not (see src/tlog/encoding.ts), which is why C2SP parsers here are strict.
    const r = await goTool(['verify-note', vkey], signed.replace('sDww=', 'sDwx='))
    expect(r.code).toBe(0)
  })
})

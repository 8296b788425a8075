import { mkdir, readFile as fsReadFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkRelativePath, FileStore, InvalidPathError } from '../../src/storage/index.js'
import { listTree, tempDir } from './helpers.js'
import { describeStore, HOSTILE_PATHS } from './store-conformance.js'

describeStore('FileStore', async () => {
  const { dir, cleanup } = await tempDir()
  return { store: await FileStore.create(join(dir, 'logs', 'did:key:z6Mktest')), cleanup }
})

describe('checkRelativePath', () => {
  it('returns valid tlog-tiles paths unchanged', () => {
    for (const p of ['checkpoint', 'tile/0/000', 'tile/0/x001/x234/067.p/5', 'tile/entries/000.p/255', 'a.b', '.state/tree', '...', '.tmp', 'é/ü', 'x'.repeat(255)]) {
      expect(checkRelativePath(p)).toBe(p)
    }
  })

  it('throws InvalidPathError, naming the path, for every hostile path', () => {
    for (const p of HOSTILE_PATHS) {
      let caught: unknown
      try {
        checkRelativePath(p)
      } catch (err) {
        caught = err
      }
      expect(caught, JSON.stringify(p)).toBeInstanceOf(InvalidPathError)
      expect((caught as InvalidPathError).name).toBe('InvalidPathError')
      expect((caught as InvalidPathError).path).toBe(p)
    }
  })
})

describe('FileStore', () => {
  it('creates its root and parents (mode 0755 whatever the umask) and exposes its real path', async () => {
    const { dir, cleanup } = await tempDir()
    const old = process.umask(0o077)
    try {
      const store = await FileStore.create(join(dir, 'a', 'b'))
      expect(store.root).toBe(join(dir, 'a', 'b'))
      expect((await stat(store.root)).isDirectory()).toBe(true)
      expect((await stat(store.root)).mode & 0o777).toBe(0o755)
      expect((await stat(join(dir, 'a'))).mode & 0o777).toBe(0o755)
      expect((await FileStore.create(join(dir, 'a', 'b'))).root).toBe(store.root) // opening again is fine
    } finally {
      process.umask(old)
      await cleanup()
    }
  })

  it('creates files 0644 and directories 0755, and leaves no temporary files', async () => {
    const { dir, cleanup } = await tempDir()
    const old = process.umask(0o077) // modes must not depend on the umask
    try {
      const store = await FileStore.create(dir)
      await store.write([
        ['checkpoint', new Uint8Array([1])],
        ['tile/0/x001/067.p/5', new Uint8Array(160)],
        ['tile/entries/000', new Uint8Array(10)],
      ])
      await store.write([['checkpoint', new Uint8Array([2])]])
      expect(await listTree(dir)).toEqual([
        'checkpoint',
        'tile',
        'tile/0',
        'tile/0/x001',
        'tile/0/x001/067.p',
        'tile/0/x001/067.p/5',
        'tile/entries',
        'tile/entries/000',
      ])
      expect((await stat(join(dir, 'checkpoint'))).mode & 0o777).toBe(0o644)
      expect((await stat(join(dir, 'tile/0/x001/067.p/5'))).mode & 0o777).toBe(0o644)
      expect((await stat(join(dir, 'tile/0/x001/067.p'))).mode & 0o777).toBe(0o755)
      expect((await stat(join(dir, 'tile'))).mode & 0o777).toBe(0o755)
    } finally {
      process.umask(old)
      await cleanup()
    }
  })

  it('never shows a reader a partial file while a large file is overwritten', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const store = await FileStore.create(dir)
      const size = 4 * 1024 * 1024
      const versions = [0xaa, 0xbb, 0xcc].map((b) => new Uint8Array(size).fill(b))
      await store.write([['tile/entries/000', versions[0]!]])
      let writing = true
      const writer = (async () => {
        for (let i = 1; i <= 12; i++) await store.write([['tile/entries/000', versions[i % 3]!]])
        writing = false
      })()
      let reads = 0
      while (writing) {
        const got = (await store.read('tile/entries/000'))!
        expect(got.length).toBe(size)
        const first = got[0]
        expect([0xaa, 0xbb, 0xcc]).toContain(first)
        expect(got.every((b) => b === first)).toBe(true)
        reads++
      }
      await writer
      expect(reads).toBeGreaterThan(0)
      expect(await listTree(dir)).toEqual(['tile', 'tile/entries', 'tile/entries/000'])
    } finally {
      await cleanup()
    }
  })

  it('creates nothing on disk for hostile paths', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const store = await FileStore.create(join(dir, 'root'))
      for (const p of HOSTILE_PATHS) {
        await expect(store.write([[p, new Uint8Array([1])]])).rejects.toBeInstanceOf(InvalidPathError)
        await expect(store.read(p)).rejects.toBeInstanceOf(InvalidPathError)
      }
      expect(await listTree(dir)).toEqual(['root'])
    } finally {
      await cleanup()
    }
  })

  it('refuses symbolic links that lead outside the root, creating nothing outside', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const outside = join(dir, 'outside')
      await mkdir(outside)
      await writeFile(join(outside, 'secret'), 'secret')
      const store = await FileStore.create(join(dir, 'root'))
      await symlink(outside, join(store.root, 'tile'))
      await symlink(join(outside, 'secret'), join(store.root, 'checkpoint'))
      await symlink('../outside', join(store.root, 'rel'))

      await expect(store.read('tile/secret')).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.exists('tile/secret')).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.read('checkpoint')).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.read('rel/secret')).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.write([['tile/0/000', new Uint8Array([1])]])).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.write([['tile/new', new Uint8Array([1])]])).rejects.toBeInstanceOf(InvalidPathError)
      await expect(store.write([['rel/x/y', new Uint8Array([1])]])).rejects.toBeInstanceOf(InvalidPathError)
      expect(await listTree(outside)).toEqual(['secret'])
      expect(await fsReadFile(join(outside, 'secret'), 'utf8')).toBe('secret')
    } finally {
      await cleanup()
    }
  })

  it('follows symbolic links that stay inside the root', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const store = await FileStore.create(dir)
      await store.write([['tile/0/000', new Uint8Array([5])]])
      await symlink('tile', join(dir, 'alias'))
      expect(await store.read('alias/0/000')).toEqual(new Uint8Array([5]))
      await store.write([['alias/1/000', new Uint8Array([6])]])
      expect(await store.read('tile/1/000')).toEqual(new Uint8Array([6]))
    } finally {
      await cleanup()
    }
  })

  it('rejects a write below an existing file with the filesystem error', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const store = await FileStore.create(dir)
      await store.write([['checkpoint', new Uint8Array([1])]])
      await expect(store.write([['checkpoint/x', new Uint8Array([1])]])).rejects.toMatchObject({ code: 'ENOTDIR' })
      expect(await listTree(dir)).toEqual(['checkpoint'])
    } finally {
      await cleanup()
    }
  })
})

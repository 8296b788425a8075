// One conformance suite for every store of log files (FileStore, the MemoryFiles fake, and any
// later backend): the contract of FileStore's doc comment, checked through its public surface.

import { describe, expect, it } from 'vitest'

/** The surface the suite exercises: FileStore's. */
export interface StoreUnderTest {
  read(path: string): Promise<Uint8Array | undefined>
  write(files: Iterable<[string, Uint8Array]>): Promise<void>
  exists(path: string): Promise<boolean>
}

/** A fresh, empty store, and how to dispose of it. */
export type StoreFactory = () => Promise<{ store: StoreUnderTest; cleanup?: () => Promise<void> }>

/** Paths every store must refuse with InvalidPathError (before touching anything). */
export const HOSTILE_PATHS: readonly string[] = [
  '',
  '/',
  '/etc/passwd',
  '/checkpoint',
  'a//b',
  'tile/',
  '.',
  '..',
  './checkpoint',
  '../checkpoint',
  'tile/../../x',
  'tile/./0',
  'tile/..',
  '.tmp-0123456789abcdef01234567',
  'tile/.tmp-x',
  '.tmp-',
  'a\\b',
  '..\\..\\x',
  'C:\\Windows',
  'a\0b',
  '\0',
  'a\nb',
  'a\rb',
  'a\tb',
  '\x1b[31m',
  'a\x7fb',
  'a\u0085b',
  'a\uD800b',
  'a\uDC00',
  'x'.repeat(256),
  `${'abc/'.repeat(300)}x`,
]

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values)
}

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/** Registers the conformance tests for the store `factory` makes, under `describe(name)`. */
export function describeStore(name: string, factory: StoreFactory): void {
  describe(`${name} (store conformance)`, () => {
    async function withStore(fn: (store: StoreUnderTest) => Promise<void>): Promise<void> {
      const { store, cleanup } = await factory()
      try {
        await fn(store)
      } finally {
        await cleanup?.()
      }
    }

    it('reads undefined and exists false for a path never written', () =>
      withStore(async (s) => {
        expect(await s.read('checkpoint')).toBeUndefined()
        expect(await s.read('tile/0/000')).toBeUndefined()
        expect(await s.exists('tile/0/000')).toBe(false)
      }))

    it('round-trips files at nested tlog-tiles paths', () =>
      withStore(async (s) => {
        const files = new Map<string, Uint8Array>([
          ['checkpoint', text('example.com/log\n3\nabc=\n')],
          ['tile/0/000.p/3', new Uint8Array(96).fill(7)],
          ['tile/0/x001/x234/067.p/5', new Uint8Array(160).fill(9)],
          ['tile/entries/000.p/3', bytes(0, 1, 0x61, 0, 2, 0x62, 0x63)],
          ['.state/tree', text('engine-private state')],
        ])
        await s.write(files)
        for (const [path, want] of files) {
          expect(await s.read(path)).toEqual(want)
          expect(await s.exists(path)).toBe(true)
        }
      }))

    it('round-trips an empty file and every byte value', () =>
      withStore(async (s) => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i)
        await s.write([
          ['empty', new Uint8Array(0)],
          ['all', all],
        ])
        expect(await s.read('empty')).toEqual(new Uint8Array(0))
        expect(await s.exists('empty')).toBe(true)
        expect(await s.read('all')).toEqual(all)
      }))

    it('overwrites: the second write wins', () =>
      withStore(async (s) => {
        await s.write([['checkpoint', text('one')]])
        await s.write([['checkpoint', text('two, longer')]])
        expect(await s.read('checkpoint')).toEqual(text('two, longer'))
        await s.write([['checkpoint', text('3')]])
        expect(await s.read('checkpoint')).toEqual(text('3'))
      }))

    it('keeps the last bytes when a path repeats in one write', () =>
      withStore(async (s) => {
        await s.write([
          ['checkpoint', text('first')],
          ['checkpoint', text('last')],
        ])
        expect(await s.read('checkpoint')).toEqual(text('last'))
      }))

    it('is not affected by later changes to written or returned buffers', () =>
      withStore(async (s) => {
        const data = bytes(1, 2, 3)
        await s.write([['tile/0/000.p/1', data]])
        data[0] = 99
        const got = (await s.read('tile/0/000.p/1'))!
        expect(got).toEqual(bytes(1, 2, 3))
        got[1] = 99
        expect(await s.read('tile/0/000.p/1')).toEqual(bytes(1, 2, 3))
      }))

    it('treats a directory, and a path through a file, as not found', () =>
      withStore(async (s) => {
        await s.write([
          ['tile/0/000', bytes(1)],
          ['checkpoint', bytes(2)],
        ])
        expect(await s.read('tile')).toBeUndefined()
        expect(await s.read('tile/0')).toBeUndefined()
        expect(await s.exists('tile/0')).toBe(false)
        expect(await s.read('checkpoint/x')).toBeUndefined()
        expect(await s.exists('checkpoint/x')).toBe(false)
        expect(await s.read('tile/0/000/x')).toBeUndefined()
      }))

    it('runs concurrent writes of different paths independently', () =>
      withStore(async (s) => {
        const paths = Array.from({ length: 64 }, (_, i) => `tile/${i % 4}/${String(i).padStart(3, '0')}`)
        await Promise.all(paths.map((p, i) => s.write([[p, new Uint8Array(100 + i).fill(i)]])))
        await Promise.all(paths.map(async (p, i) => expect(await s.read(p)).toEqual(new Uint8Array(100 + i).fill(i))))
      }))

    it('leaves exactly one of the values after concurrent writes of one path', () =>
      withStore(async (s) => {
        const values = Array.from({ length: 16 }, (_, i) => new Uint8Array(1000 + i).fill(i))
        await Promise.all(values.map((v) => s.write([['checkpoint', v]])))
        const got = (await s.read('checkpoint'))!
        expect(values.some((v) => v.length === got.length && v.every((b, i) => got[i] === b))).toBe(true)
      }))

    it('refuses every hostile path with InvalidPathError, writing nothing', () =>
      withStore(async (s) => {
        for (const path of HOSTILE_PATHS) {
          await expect(s.read(path), JSON.stringify(path)).rejects.toMatchObject({ name: 'InvalidPathError' })
          await expect(s.exists(path), JSON.stringify(path)).rejects.toMatchObject({ name: 'InvalidPathError' })
          await expect(s.write([[path, bytes(1)]]), JSON.stringify(path)).rejects.toMatchObject({ name: 'InvalidPathError' })
          // A hostile path anywhere in a batch stops the whole batch before anything is written.
          await expect(s.write([['ok', bytes(1)], [path, bytes(1)]])).rejects.toMatchObject({ name: 'InvalidPathError' })
        }
        await expect(s.read(42 as unknown as string)).rejects.toMatchObject({ name: 'InvalidPathError' })
        expect(await s.exists('ok')).toBe(false)
      }))
  })
}

import { expect } from 'vitest'
// Shared helpers of the storage tests.

import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(prefix = 'ucanlog-storage-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** Every entry under `dir` (files, directories, links), as sorted paths relative to `dir`. */
export async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.map((e) => relative(dir, join(e.parentPath, e.name))).sort()
}

/** Deterministic pseudo-random bytes (xorshift32), so fixtures need no randomness. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/**
 * Asserts `actual` holds exactly the bytes of `expected`. Compares with Buffer.equals: vitest's
 * toEqual walks typed arrays element by element and takes seconds on a few MiB.
 */
export function expectBytes(actual: Uint8Array | undefined, expected: Uint8Array, message?: string): void {
  expect(actual, message).toBeInstanceOf(Uint8Array)
  const same = Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  )
  if (!same && actual!.length <= 4096 && expected.length <= 4096) expect(actual, message).toEqual(expected)
  expect(same, `${message ?? 'bytes'}: ${actual!.length} bytes differ from expected ${expected.length} bytes`).toBe(true)
}

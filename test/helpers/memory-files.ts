/**
 * The one in-memory store of log files for tests: {@link LogFiles} (what the log engine needs) plus
 * FileStore's `exists`, with FileStore's contract (test/storage/memory-files.test.ts runs the store
 * conformance suite, test/storage/store-conformance.ts, against it). Like sunlight's memory backend
 * it asserts the engine's storage invariants while tests run, recording each broken one in
 * `violations` (tests assert it stays empty):
 * - `.state/tree` (the commit point) never shrinks;
 * - a full tile or full entry bundle that was committed (at or below the committed size) is never
 *   rewritten with different bytes;
 * - `.state/tree` and `checkpoint` are never removed.
 * Faults on demand: `failNext(persist)` makes the next write fail, either before anything is stored
 * or after the files were stored (the "fail but persist" case of a write whose acknowledgement was
 * lost). Paths are checked as FileStore checks them (InvalidPathError), and a file and a directory
 * may not share a path (ENOTDIR), as on a filesystem.
 */
import type { LogFiles } from '../../src/log/storage.js'
import { checkRelativePath } from '../../src/storage/index.js'

/** Thrown by a write into which {@link MemoryFiles.failNext} injected a fault. */
export class InjectedFaultError extends Error {
  constructor(readonly persisted: boolean) {
    super(`injected write failure (${persisted ? 'persisted' : 'not persisted'})`)
    this.name = 'InjectedFaultError'
  }
}

export class MemoryFiles implements LogFiles {
  /** The stored files by path (tests may read or tamper with them directly). */
  readonly files = new Map<string, Uint8Array>()
  /** Every broken invariant, in order. */
  readonly violations: string[] = []
  /** Writes that stored their files (including a "fail but persist" one). */
  writes = 0
  private faults: { persist: boolean }[] = []

  /** Makes the next write fail: after storing its files when `persist`, else before storing anything. */
  failNext(persist = false): void {
    this.faults.push({ persist })
  }

  async read(path: string): Promise<Uint8Array | undefined> {
    checkRelativePath(path)
    const b = this.files.get(path)
    return b && new Uint8Array(b)
  }

  async exists(path: string): Promise<boolean> {
    checkRelativePath(path)
    return this.files.has(path)
  }

  async write(files: Iterable<[string, Uint8Array]>): Promise<void> {
    const batch = new Map<string, Uint8Array>()
    for (const [path, bytes] of files) batch.set(checkRelativePath(path), new Uint8Array(bytes))
    await Promise.resolve() // writes are asynchronous, as on disk
    for (const path of batch.keys()) this.checkShape(path)
    const fault = this.faults.shift()
    if (fault && !fault.persist) throw new InjectedFaultError(false)
    for (const [path, bytes] of batch) this.check(path, bytes)
    for (const [path, bytes] of batch) this.files.set(path, bytes)
    this.writes++
    if (fault) throw new InjectedFaultError(true)
  }

  async remove(paths: Iterable<string>): Promise<void> {
    for (const p of paths) {
      checkRelativePath(p)
      if (p === '.state/tree' || p === 'checkpoint') this.violations.push(`removed ${p}`)
      this.files.delete(p)
    }
  }

  /** The size recorded at the commit point `.state/tree` (0 before the first commit, or when it holds no engine state). */
  committedSize(): number {
    const s = this.files.get('.state/tree')
    return (s && treeSize(s)) ?? 0
  }

  private check(path: string, bytes: Uint8Array): void {
    const old = this.files.get(path)
    if (path === '.state/tree') {
      const size = treeSize(bytes)
      if (size !== undefined && size < this.committedSize()) this.violations.push(`tree shrank from ${this.committedSize()} to ${size}`)
      return
    }
    if (!old || Buffer.from(old).equals(Buffer.from(bytes)) || path === 'checkpoint' || path.includes('.p/')) return
    // A full tile/bundle below the committed size is immutable.
    const committed = this.committedSize()
    const m = /^tile\/(entries|\d+)\/(.+)$/.exec(path)
    if (!m) return
    const index = Number(m[2]!.replace(/x/g, '').replace(/\//g, ''))
    const level = m[1] === 'entries' ? 0 : Number(m[1])
    const end = (index + 1) * 256 ** (level + 1)
    if (end <= committed) this.violations.push(`committed immutable file ${path} rewritten with different bytes`)
  }

  /** A file and a directory may not share a path, as on a filesystem. */
  private checkShape(path: string): void {
    for (const other of this.files.keys()) {
      if (other.startsWith(`${path}/`) || path.startsWith(`${other}/`)) {
        throw Object.assign(new Error(`${path} conflicts with ${other}`), { code: 'ENOTDIR' })
      }
    }
  }
}

/** The `size` of the engine's `.state/tree` JSON; undefined for other bytes (a store holds any bytes). */
function treeSize(bytes: Uint8Array): number | undefined {
  try {
    const size = (JSON.parse(Buffer.from(bytes).toString()) as { size?: unknown }).size
    return typeof size === 'number' ? size : undefined
  } catch {
    return undefined
  }
}

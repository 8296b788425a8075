// An in-memory fake of FileStore for tests of the code above storage. Like sunlight's memory
// backend it asserts invariants while tests run and injects faults on demand.

import { checkRelativePath } from '../../src/storage/index.js'

/** Which failure the next write injects (sunlight's two kinds). */
export type WriteFault = 'fail-not-persist' | 'fail-but-persist'

/** Options of MemoryStore. */
export interface MemoryStoreOptions {
  /**
   * Paths that must never be rewritten with different bytes; doing so is recorded in
   * `violations` and rejects. Default: c2sp.org/tlog-tiles tiles and entry bundles (`tile/…`).
   */
  immutable?: (path: string) => boolean
}

/** Thrown by a write into which a fault was injected. */
export class InjectedFaultError extends Error {
  constructor(readonly fault: WriteFault) {
    super(`injected fault: ${fault}`)
    this.name = 'InjectedFaultError'
  }
}

/** FileStore's contract in memory, plus invariant checks and fault injection. */
export class MemoryStore {
  readonly files = new Map<string, Uint8Array>()
  /** Every broken invariant, in order; tests assert it stays empty. */
  readonly violations: string[] = []
  private readonly immutable: (path: string) => boolean
  private faults: WriteFault[] = []

  constructor(options: MemoryStoreOptions = {}) {
    this.immutable = options.immutable ?? ((path) => path.startsWith('tile/'))
  }

  /** Makes the next write calls fail, one fault each, in order. */
  injectFaults(...faults: WriteFault[]): void {
    this.faults.push(...faults)
  }

  async read(path: string): Promise<Uint8Array | undefined> {
    checkRelativePath(path)
    const data = this.files.get(path)
    return data === undefined ? undefined : data.slice()
  }

  async exists(path: string): Promise<boolean> {
    checkRelativePath(path)
    return this.files.has(path)
  }

  async write(files: Iterable<[string, Uint8Array]>): Promise<void> {
    const batch = new Map<string, Uint8Array>()
    for (const [path, bytes] of files) batch.set(checkRelativePath(path), bytes.slice())
    await Promise.resolve() // writes are asynchronous, as on disk
    for (const path of batch.keys()) this.checkShape(path)
    for (const [path, bytes] of batch) {
      const old = this.files.get(path)
      if (old !== undefined && this.immutable(path) && !equal(old, bytes)) {
        const msg = `immutable ${path} rewritten with different bytes`
        this.violations.push(msg)
        throw new Error(msg)
      }
    }
    const fault = this.faults.shift()
    if (fault === 'fail-not-persist') throw new InjectedFaultError(fault)
    for (const [path, bytes] of batch) this.files.set(path, bytes)
    if (fault === 'fail-but-persist') throw new InjectedFaultError(fault)
  }

  // A file and a directory may not share a path, as on a filesystem.
  private checkShape(path: string): void {
    for (const other of this.files.keys()) {
      if (other.startsWith(`${path}/`) || path.startsWith(`${other}/`)) {
        throw Object.assign(new Error(`${path} conflicts with ${other}`), { code: 'ENOTDIR' })
      }
    }
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => b[i] === x)
}

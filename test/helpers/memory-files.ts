/**
 * An in-memory LogFiles for engine tests that asserts the engine's storage invariants while tests
 * run, and injects faults:
 * - `.state/tree` (the commit point) never shrinks;
 * - a full tile or full entry bundle that was committed (at or below the committed size) is never
 *   rewritten with different bytes;
 * - `failNext(n, persist)` makes the next write fail, either before anything is stored or after the
 *   files were stored (the "fail but persist" case of a write whose acknowledgement was lost).
 */
import type { LogFiles } from '../../src/log/storage.js'

export class MemoryFiles implements LogFiles {
  readonly files = new Map<string, Uint8Array>()
  readonly violations: string[] = []
  writes = 0
  private faults: { persist: boolean }[] = []

  failNext(persist = false): void {
    this.faults.push({ persist })
  }

  async read(path: string): Promise<Uint8Array | undefined> {
    const b = this.files.get(path)
    return b && new Uint8Array(b)
  }

  async write(files: Iterable<[string, Uint8Array]>): Promise<void> {
    const list = [...files]
    const fault = this.faults.shift()
    if (fault && !fault.persist) throw new Error('injected write failure (not persisted)')
    for (const [path, bytes] of list) this.check(path, bytes)
    for (const [path, bytes] of list) this.files.set(path, new Uint8Array(bytes))
    this.writes++
    if (fault) throw new Error('injected write failure (persisted)')
  }

  async remove(paths: Iterable<string>): Promise<void> {
    for (const p of paths) {
      if (p === '.state/tree' || p === 'checkpoint') this.violations.push(`removed ${p}`)
      this.files.delete(p)
    }
  }

  committedSize(): number {
    const s = this.files.get('.state/tree')
    return s ? (JSON.parse(Buffer.from(s).toString()) as { size: number }).size : 0
  }

  private check(path: string, bytes: Uint8Array): void {
    const old = this.files.get(path)
    if (path === '.state/tree') {
      const size = (JSON.parse(Buffer.from(bytes).toString()) as { size: number }).size
      if (size < this.committedSize()) this.violations.push(`tree shrank from ${this.committedSize()} to ${size}`)
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
}

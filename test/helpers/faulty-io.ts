/**
 * A fault-injecting {@link DurableIO} (issue 15 item 2), in the spirit of Sunlight's fake backends:
 * it runs the real filesystem steps of FileStore and CarPacker (src/storage/durable.ts), fails the
 * k-th one on demand (a write, an fsync of the data file, a rename, a directory fsync, an unlink,
 * a mkdir), and keeps a model of what a power loss would leave: the {@link FaultyIO.durable} image.
 *
 * The model is the pessimistic one PostgreSQL's fsync lesson teaches: a file's contents are
 * durable once its fsync succeeded; a rename or unlink is durable once a later fsync of its
 * directory succeeded; and when an fsync of a directory FAILS, the operations pending in it are
 * dropped for good — still visible to the process, never durable, even if a later fsync of that
 * directory succeeds. {@link FaultyIO.crashImage} writes the image into a directory, so a test can
 * open the log a power loss would have left and check that every acknowledged entry is there.
 *
 * Only what runs through this object is modelled: attach it before the first write under `root`.
 * Directories are not (the image creates those its files need), nor SQLite's own writes.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import type { DurableIO, DurableStep } from '../../src/storage/durable.js'

/** The error an injected fault throws: a Node system error with `code` (EIO by default). */
export class InjectedIOError extends Error {
  readonly code: string
  readonly syscall: string
  constructor(readonly step: DurableStep, code = 'EIO') {
    super(`${code}: injected fault at ${step.op} ${step.path}`)
    this.name = 'Error'
    this.code = code
    this.syscall = step.op
  }
}

/** A step as recorded: its kind and path (relative to the root given to the constructor). */
export interface RecordedStep {
  op: DurableStep['op']
  path: string
}

const DELETED = null

/**
 * A step's kind and path with the random parts named generically (`.tmp-*`, a CAR's `<n>.car`):
 * the same for the same step of two runs, so a test can fail "the fsync of `.state/tree`'s
 * temporary file" in every run whatever order concurrent steps took.
 */
export function signature(step: RecordedStep): string {
  return `${step.op} ${step.path.replace(/\.tmp-[0-9a-f]{24}$/, '.tmp-*').replace(/^(cars\/[0-9]{16})-[a-z0-9]+\.car$/, '$1.car')}`
}

export class FaultyIO implements DurableIO {
  /** Every step that ran or was refused, in order (the k-th is `steps[k - 1]`). */
  readonly steps: RecordedStep[] = []
  /** Power-loss image: path (relative to the root) → durable bytes. */
  readonly durable = new Map<string, Uint8Array>()
  /** The step that was made to fail, once one was. */
  failed: RecordedStep | undefined
  /** Fail the step whose 1-based number is this (counted over all steps from construction), once. */
  failAt: number | undefined
  /** Fail the first step (from now) for which this holds, once: e.g. `s => signature(s) === 'fsyncDir log/.state'`. */
  failWhen: ((step: RecordedStep) => boolean) | undefined
  /** Error code of the injected fault (EIO by default; ENOSPC for a full disk). */
  code = 'EIO'
  private counted = 0
  /** Bytes of temporary files written, not yet fsynced (absolute path → bytes). */
  private readonly written = new Map<string, Uint8Array>()
  /** Temporary files whose contents were fsynced (absolute path → bytes). */
  private readonly synced = new Map<string, Uint8Array>()
  /** Per directory (absolute), the renames and unlinks not yet made durable by an fsync of it. */
  private readonly pending = new Map<string, Map<string, Uint8Array | typeof DELETED>>()

  /** @param root the directory under which every modelled file lies (paths are recorded relative to it). */
  constructor(readonly root: string) {}

  async step<T>(step: DurableStep, run: () => Promise<T>): Promise<T> {
    const rec: RecordedStep = { op: step.op, path: relative(this.root, step.path) }
    this.steps.push(rec)
    this.counted++
    if (this.failed === undefined && (this.counted === this.failAt || this.failWhen?.(rec))) {
      this.failed = rec
      this.fault(step)
      throw new InjectedIOError(step, this.code)
    }
    const result = await run()
    this.observe(step)
    return result
  }

  /** Steps run or refused so far. */
  get countedSteps(): number {
    return this.counted
  }

  /**
   * Writes the power-loss image of the files under `under` (relative to the root) into `dir`
   * (created): the files a crash right now would leave there.
   */
  async crashImage(under: string, dir: string): Promise<void> {
    await mkdir(dir, { recursive: true })
    for (const [path, bytes] of this.durable) {
      const rel = relative(under, path)
      if (rel.startsWith('..')) continue
      await mkdir(dirname(join(dir, rel)), { recursive: true })
      await writeFile(join(dir, rel), bytes)
    }
  }

  /** What a failed step leaves in the model: a failed directory fsync drops what was pending in it. */
  private fault(step: DurableStep): void {
    if (step.op === 'fsyncDir') this.pending.delete(step.path)
  }

  private observe(step: DurableStep): void {
    switch (step.op) {
      case 'write':
        this.written.set(step.path, step.bytes)
        break
      case 'fsync': {
        const bytes = this.written.get(step.path)
        this.written.delete(step.path)
        if (bytes) this.synced.set(step.path, bytes)
        break
      }
      case 'rename': {
        // Only a file whose contents were fsynced can become durable under its new name.
        const bytes = this.synced.get(step.path)
        this.synced.delete(step.path)
        this.pendingIn(dirname(step.to)).set(step.to, bytes ?? new Uint8Array(0))
        break
      }
      case 'unlink':
        this.synced.delete(step.path)
        this.pendingIn(dirname(step.path)).set(step.path, DELETED)
        break
      case 'fsyncDir': {
        for (const [path, bytes] of this.pending.get(step.path) ?? []) {
          const rel = relative(this.root, path)
          if (rel.startsWith('..')) continue
          if (bytes === DELETED) this.durable.delete(rel)
          else this.durable.set(rel, bytes)
        }
        this.pending.delete(step.path)
        break
      }
      case 'mkdir':
        break
    }
  }

  private pendingIn(dir: string): Map<string, Uint8Array | typeof DELETED> {
    let m = this.pending.get(dir)
    if (!m) this.pending.set(dir, (m = new Map()))
    return m
  }
}

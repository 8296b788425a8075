/**
 * The set of logs a service runs: one {@link Log} per space DID, opened on first use and kept open.
 * Reads never create a log; only an authorized append does (DESIGN.md: unknown logs are 404 and
 * create nothing).
 */
import type { NoteSigner } from '../tlog/index.js'
import { type Cosigner, Log, type LogOptions } from './log.js'
import type { LogBackend } from './storage.js'

/** Default origin prefix: origins are `<prefix>/logs/<spaceDID>`. */
export const DEFAULT_ORIGIN_PREFIX = 'ucanlog'

/** Options of {@link LogManager}: where logs live, how each is signed and witnessed, and the engine's knobs. */
export interface LogManagerOptions {
  backend: LogBackend
  /** Origin prefix (default {@link DEFAULT_ORIGIN_PREFIX}); no whitespace, `+` or trailing `/`. */
  originPrefix?: string
  /** The checkpoint signer for an origin (key name = origin). */
  signer(origin: string): NoteSigner
  /** The witness client for an origin (one per log: witnesses keep state per origin). */
  witnesses(origin: string): Cosigner
  /** Batching and retry knobs passed to every log. */
  log?: Pick<LogOptions, 'batchMaxSize' | 'batchMaxAgeMs' | 'maxPending' | 'publishRetryMs' | 'logger'>
}

/** Opens and caches one {@link Log} per log id; concurrent opens of the same id share one Log. */
export class LogManager {
  readonly originPrefix: string
  private readonly logs = new Map<string, Promise<Log>>()

  constructor(private readonly o: LogManagerOptions) {
    this.originPrefix = o.originPrefix ?? DEFAULT_ORIGIN_PREFIX
    if (!/^[^\s+]+$/u.test(this.originPrefix) || this.originPrefix.endsWith('/')) {
      throw new RangeError(`invalid origin prefix ${JSON.stringify(this.originPrefix)}: no whitespace, "+" or trailing "/"`)
    }
  }

  /** The c2sp.org/tlog-checkpoint origin of a log: `<prefix>/logs/<id>`. */
  origin(id: string): string {
    return `${this.originPrefix}/logs/${id}`
  }

  /** The open log with this id, or undefined when no such log exists (nothing is created). */
  async get(id: string): Promise<Log | undefined> {
    const open = this.logs.get(id)
    if (open) return open
    if (!(await this.o.backend.exists(id))) return undefined
    return this.open(id, false)
  }

  /** The log with this id, created empty when it does not exist yet. */
  async getOrCreate(id: string): Promise<Log> {
    return this.logs.get(id) ?? this.open(id, true)
  }

  /** Ids of every existing log. */
  list(): Promise<string[]> {
    return this.o.backend.list()
  }

  /** Flushes and closes every open log. */
  async close(): Promise<void> {
    const logs = await Promise.allSettled(this.logs.values())
    await Promise.all(logs.map((l) => (l.status === 'fulfilled' ? l.value.close() : undefined)))
    this.logs.clear()
  }

  private open(id: string, create: boolean): Promise<Log> {
    const existing = this.logs.get(id)
    if (existing) return existing
    const p = (async () => {
      const storage = await this.o.backend.open(id, create)
      if (!storage) throw new Error(`log ${id} does not exist`)
      const origin = this.origin(id)
      return Log.open({ id, origin, signer: this.o.signer(origin), witnesses: this.o.witnesses(origin), ...storage, ...this.o.log })
    })()
    this.logs.set(id, p)
    p.catch(() => this.logs.delete(id))
    return p
  }
}

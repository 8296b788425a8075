/**
 * The checkpoint history behind `GET /logs/<space>/history` (docs/wire.md, docs/auditing.md
 * "Explorer"): per space log, the (tree size, root hash, publication time) of each checkpoint it
 * published, for the explorer's tree-size-over-time chart.
 *
 * Informational, not evidence: the points are the service's own claim, unsigned (only a checkpoint
 * note is signed), kept in the lookup database (`<data>/lookup.db`, src/server/entry-index.ts) as
 * derived data. `time` is the service clock's Unix seconds when the cosigned checkpoint was
 * written (the publication time, not a witness cosignature's timestamp). A history lost (the file
 * recreated) or missing (a log older than this table) simply starts again at the next publication.
 *
 * - `history_logs(n, id, next, stride)`: the log ids, the sequence number the next publication
 *   gets, and the stride; `history(log, seq, size, root, time)`, WITHOUT ROWID, keyed by (log, seq).
 * - Bounded: at most `maxPoints` points per log, evenly spread over the log's whole life (by
 *   publication count). A publication is kept when its `seq` is a multiple of `stride` — and the
 *   newest one always (replaced by the next publication when off the stride). When a publication
 *   makes it `maxPoints + 1`, the stride doubles and every point off it (every other one) is deleted,
 *   the first (seq 0) and the newest kept: about `maxPoints / 2` points remain. (Thinning only the
 *   older half again and again would leave the old life of the log exponentially sparse.)
 * - Crash-safe: each publication's insert and thinning is one transaction.
 * - Answers only hold points with `size ≤` the size of the published view asked about (a data
 *   directory restored from an older copy hides the points it never published).
 */
import type Database from 'better-sqlite3'

/** Default most points kept per log (the `--history-max` knob). */
export const DEFAULT_HISTORY_MAX_POINTS = 10_000
/** Default points one `GET /logs/<space>/history` answers when no `limit` is given. */
export const DEFAULT_HISTORY_LIMIT = 500
/** Most points one `GET /logs/<space>/history` answers (`limit` ≤ this, else 400). */
export const MAX_HISTORY_LIMIT = 1000

/** One published checkpoint: tree size (entries), root hash (32 bytes), publication time (Unix seconds). */
export interface HistoryPoint {
  size: number
  rootHash: Uint8Array
  time: number
}

/** The per-log checkpoint history (see the module comment), on a database the caller opened and closes. */
export class CheckpointHistory {
  readonly #maxPoints: number
  readonly #s: ReturnType<typeof prepare>

  /**
   * Creates the tables when missing. `maxPoints` (≥ 2, default {@link DEFAULT_HISTORY_MAX_POINTS})
   * is the most points kept per log.
   * @throws RangeError on a bad `maxPoints`.
   */
  constructor(db: Database.Database, maxPoints = DEFAULT_HISTORY_MAX_POINTS) {
    if (!Number.isSafeInteger(maxPoints) || maxPoints < 2) throw new RangeError('maxPoints must be an integer ≥ 2')
    this.#maxPoints = maxPoints
    db.exec(`
      CREATE TABLE IF NOT EXISTS history_logs (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, next INTEGER NOT NULL, stride INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS history (log INTEGER NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (log, seq)) WITHOUT ROWID;
    `)
    this.#s = prepare(db)
  }

  /**
   * Records that log `id` published `p` (one transaction: insert, then thin to ≤ maxPoints). A
   * point equal in size and root to the newest kept one is not repeated.
   */
  record(id: string, p: HistoryPoint): void {
    this.#s.record(id, p, this.#maxPoints)
  }

  /** Points kept for log `id` with `size ≤ maxSize` (all when omitted). */
  count(id: string, maxSize = Number.MAX_SAFE_INTEGER): number {
    const n = this.#s.getLog.get(id)?.n
    return n === undefined ? 0 : this.#s.count.get(n, maxSize)!.c
  }

  /**
   * At most `limit` (≥ 1) of log `id`'s points with `size ≤ maxSize`, oldest first, evenly sampled
   * over the kept points: the first and the last are always in (when `limit` ≥ 2). Reads at most
   * `maxPoints` sequence numbers (integers) and `limit` rows.
   */
  sample(id: string, limit: number, maxSize = Number.MAX_SAFE_INTEGER): HistoryPoint[] {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be an integer ≥ 1')
    const n = this.#s.getLog.get(id)?.n
    if (n === undefined) return []
    // The sequence numbers only (integers, ≤ maxPoints of them), then the rows picked: the j-th is
    // row round(j·(total−1)/(limit−1)) — all of them when total ≤ limit, the newest when limit = 1.
    const seqs = this.#s.seqs.all(n, maxSize)
    const total = seqs.length
    const picked =
      total <= limit ? seqs : limit === 1 ? [seqs[total - 1]!] : Array.from({ length: limit }, (_, j) => seqs[Math.round((j * (total - 1)) / (limit - 1))]!)
    if (picked.length === 0) return []
    return this.#s.rows.all(n, picked[0]!, picked[picked.length - 1]!, JSON.stringify(picked)).map((r) => ({ size: r.size, rootHash: new Uint8Array(r.root), time: r.time }))
  }
}

type Row = { size: number; root: Buffer; time: number }

function prepare(db: Database.Database) {
  const getLog = db.prepare<[string], { n: number; next: number; stride: number }>('SELECT n, next, stride FROM history_logs WHERE id = ?')
  const insLog = db.prepare<[string]>('INSERT INTO history_logs (id, next, stride) VALUES (?, 0, 1)')
  const setLog = db.prepare<[number, number, number]>('UPDATE history_logs SET next = ?, stride = ? WHERE n = ?')
  const last = db.prepare<[number], Row & { seq: number }>('SELECT seq, size, root, time FROM history WHERE log = ? ORDER BY seq DESC LIMIT 1')
  const ins = db.prepare<[number, number, number, Buffer, number]>('INSERT INTO history (log, seq, size, root, time) VALUES (?, ?, ?, ?, ?)')
  const del = db.prepare<[number, number]>('DELETE FROM history WHERE log = ? AND seq = ?')
  const countAll = db.prepare<[number], { c: number }>('SELECT count(*) AS c FROM history WHERE log = ?')
  const thin = db.prepare<[number, number, number]>('DELETE FROM history WHERE log = ? AND seq % ? != 0 AND seq < ?')
  return {
    getLog,
    count: db.prepare<[number, number], { c: number }>('SELECT count(*) AS c FROM history WHERE log = ? AND size <= ?'),
    seqs: db.prepare<[number, number], number>('SELECT seq FROM history WHERE log = ? AND size <= ? ORDER BY seq').pluck(),
    // Between the first and last seq picked (a range of the primary key), those in the JSON array.
    rows: db.prepare<[number, number, number, string], Row>(
      'SELECT size, root, time FROM history WHERE log = ? AND seq BETWEEN ? AND ? AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq',
    ),
    record: db.transaction((id: string, p: HistoryPoint, max: number) => {
      let log = getLog.get(id)
      if (!log) {
        insLog.run(id)
        log = getLog.get(id)!
      }
      const prev = last.get(log.n)
      const root = Buffer.from(p.rootHash)
      if (prev && prev.size === p.size && prev.root.equals(root)) return
      // The previous newest point was kept only as the newest: off the stride, it goes.
      if (prev && prev.seq % log.stride !== 0) del.run(log.n, prev.seq)
      const seq = log.next
      ins.run(log.n, seq, p.size, root, p.time)
      let stride = log.stride
      while (countAll.get(log.n)!.c > max) {
        stride *= 2
        thin.run(log.n, stride, seq) // every point off the new stride but the newest; seq 0 always stays
      }
      setLog.run(seq + 1, stride, log.n)
    }),
  }
}

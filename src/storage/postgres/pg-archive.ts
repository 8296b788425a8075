/**
 * The per-checkpoint archive of one log in PostgreSQL (the {@link LogArchive} contract of
 * src/log/storage.ts): one CAR per published checkpoint in `log_cars`, and every directory entry of
 * the newest root in `log_car_entries`. The CARs are built by car-packer.ts's {@link planPack} (the
 * same encoding as the file archive); a pack stores its CAR and its entries in one transaction
 * fenced by the log's {@link WriteLease}, so a pack is all there or not at all. With uploads on
 * ({@link PgArchiveUploads}), the same transaction queues the CAR for upload (pg-upload-queue.ts).
 */
import type pg from 'pg'
import { CID } from 'multiformats/cid'
import { planPack, StaleTreeSizeError } from '../car-packer.js'
import { type ShardCache, sharedShardCache } from '../unixfs.js'
import { namedDatabaseError } from './errors.js'
import { asBuffer } from './pg-files.js'
import type { WriteLease } from './lease.js'
import { queueCarIn } from './pg-upload-queue.js'

/** Uploads to Storacha on: each pack also queues its CAR in `log_upload_jobs` (same transaction), then tells `queued`. */
export interface PgArchiveUploads {
  /** Called after a pack's transaction committed (the uploader looks for work); must not throw. */
  queued(logId: string): void
}

/** One archived checkpoint. */
export interface PgPackResult {
  /** Tree size (entries) of the checkpoint this CAR publishes. */
  treeSize: number
  /** CID of the new root UnixFS directory: the whole log in the tlog-tiles layout. */
  root: CID
  /** CIDv1 of the CAR (codec 0x0202, sha2-256). */
  carCid: CID
  /** Length of the CAR, bytes. */
  bytes: number
  /** Blocks in the CAR. */
  blocks: number
}

/** One log's archive in PostgreSQL; see the module comment. Packs run one at a time, in call order. */
export class PgArchive {
  private last: number
  private tail: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly pool: pg.Pool,
    readonly logId: string,
    private readonly lease: WriteLease,
    last: number,
    private readonly shards: ShardCache,
    private readonly uploads?: PgArchiveUploads,
  ) {
    this.last = last
  }

  /** Opens the archive of `logId`, written under `lease` (released by {@link close}). @throws DatabaseUnavailableError */
  static async open(pool: pg.Pool, logId: string, lease: WriteLease, shards: ShardCache = sharedShardCache(), uploads?: PgArchiveUploads): Promise<PgArchive> {
    try {
      const r = await pool.query<{ n: string | null }>('SELECT max(tree_size)::text AS n FROM log_cars WHERE log_id = $1', [logId])
      return new PgArchive(pool, logId, lease, Number(r.rows[0]?.n ?? 0), shards, uploads)
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }

  /** Tree size of the newest CAR, 0 when there is none. */
  get lastTreeSize(): number {
    return this.last
  }

  /**
   * Archives the files the checkpoint of `treeSize` entries added or changed: one CAR (see
   * car-packer.ts) and its directory entries, in one fenced transaction.
   * @throws StaleTreeSizeError (treeSize ≤ lastTreeSize), RangeError, InvalidPathError (nothing
   *   stored); LeaseLostError, DatabaseUnavailableError (nothing stored).
   */
  pack(treeSize: number, files: ReadonlyMap<string, Uint8Array>): Promise<PgPackResult> {
    const run = this.tail.then(() => this.packNow(treeSize, new Map(files)))
    this.tail = run.catch(() => {})
    return run
  }

  /** Every CAR of the log, by increasing tree size, with its bytes. @throws DatabaseUnavailableError */
  async cars(): Promise<{ treeSize: number; carCid: string; car: Uint8Array }[]> {
    try {
      const r = await this.pool.query<{ tree_size: string; car_cid: string; car: Buffer }>('SELECT tree_size::text, car_cid, car FROM log_cars WHERE log_id = $1 ORDER BY log_cars.tree_size', [this.logId])
      return r.rows.map((x) => ({ treeSize: Number(x.tree_size), carCid: x.car_cid, car: new Uint8Array(x.car) }))
    } catch (err) {
      throw namedDatabaseError(err)
    }
  }

  /** Waits for packs in flight, then releases the log's write lease. Idempotent. */
  async close(): Promise<void> {
    await this.tail
    await this.lease.release()
  }

  private async packNow(treeSize: number, files: Map<string, Uint8Array>): Promise<PgPackResult> {
    if (!Number.isSafeInteger(treeSize) || treeSize < 1) throw new RangeError(`tree size ${treeSize} is not a positive safe integer`)
    if (treeSize <= this.last) throw new StaleTreeSizeError(treeSize, this.last)
    const plan = await planPack(
      files,
      async (dir) => {
        try {
          const r = await this.pool.query<{ name: string; is_dir: boolean; cid: Buffer; tsize: string }>('SELECT name, is_dir, cid, tsize::text FROM log_car_entries WHERE log_id = $1 AND dir = $2', [this.logId, dir])
          return r.rows.map((row) => ({ name: row.name, isDir: row.is_dir, cid: CID.decode(new Uint8Array(row.cid)), tsize: Number(row.tsize) }))
        } catch (err) {
          throw namedDatabaseError(err)
        }
      },
      this.shards,
    )
    const e = plan.entries
    await this.lease.transaction(async (c) => {
      await c.query(
        `INSERT INTO log_car_entries (log_id, dir, name, is_dir, cid, tsize)
           SELECT $1, d, n, i, c, t FROM unnest($2::text[], $3::text[], $4::boolean[], $5::bytea[], $6::bigint[]) AS x (d, n, i, c, t)
         ON CONFLICT (log_id, dir, name) DO UPDATE SET is_dir = EXCLUDED.is_dir, cid = EXCLUDED.cid, tsize = EXCLUDED.tsize`,
        [this.logId, e.map((x) => x.dir), e.map((x) => x.name), e.map((x) => x.isDir), e.map((x) => asBuffer(x.cid.bytes)), e.map((x) => x.tsize)],
      )
      await c.query('INSERT INTO log_cars (log_id, tree_size, root, car_cid, car, blocks) VALUES ($1, $2, $3, $4, $5, $6)', [
        this.logId,
        treeSize,
        plan.root.toString(),
        plan.carCid.toString(),
        asBuffer(plan.car),
        plan.blocks,
      ])
      if (this.uploads) await queueCarIn(c, { logId: this.logId, treeSize, root: plan.root.toString(), carCid: plan.carCid.toString(), bytes: plan.car.length })
    })
    this.last = treeSize
    this.uploads?.queued(this.logId)
    return { treeSize, root: plan.root, carCid: plan.carCid, bytes: plan.car.length, blocks: plan.blocks }
  }
}

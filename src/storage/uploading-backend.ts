/**
 * The local backend plus uploads: every CAR the log engine packs (one per published checkpoint) is
 * also queued for upload to the log's Storacha space (StorachaUploader). Implements the engine's
 * `LogBackend` contract (src/log/storage.ts) like LocalBackend does.
 *
 * The queue entry is written right after CarPacker.pack resolves; a crash in between is repaired
 * when the log is next opened, by queueing every pack the packer lists that is newer than the
 * newest queued one. A queue write that fails (its database full or failing: issue 15 item 2) is
 * repaired the same way at the next pack, before that pack is queued. So every packed checkpoint
 * is eventually queued, in order, and every queued one uploaded.
 */
import type { CarPacker, PackResult } from './car-packer.js'
import type { FileStore } from './file-store.js'
import type { LocalBackend } from './local-backend.js'
import type { StorachaUploader } from './storacha-uploader.js'
import type { UploadQueue } from './upload-queue.js'

/** A CarPacker whose packs are also queued for upload. */
export interface UploadingArchive {
  readonly lastTreeSize: number
  pack(treeSize: number, files: ReadonlyMap<string, Uint8Array>): Promise<PackResult>
  close(): Promise<void>
}

/** LocalBackend whose archives also queue every pack for upload; see the module comment. */
export class UploadingBackend {
  /**
   * @param local where the log's files and CARs live.
   * @param uploader the uploader to queue packs on.
   * @param queue the uploader's queue (read to repair the pack→queue crash window).
   */
  constructor(
    readonly local: LocalBackend,
    private readonly uploader: StorachaUploader,
    private readonly queue: UploadQueue,
  ) {}

  /** True when a log with this id exists locally. Never creates anything. */
  exists(id: string): Promise<boolean> {
    return this.local.exists(id)
  }

  /** Ids of every local log. */
  list(): Promise<string[]> {
    return this.local.list()
  }

  /** The files of an existing local log, for reading; undefined when it does not exist. */
  files(id: string): Promise<FileStore | undefined> {
    return this.local.files(id)
  }

  /** The files of a log the service keeps for itself (never uploaded: it belongs to no space). */
  serviceLog(name: string): Promise<FileStore> {
    return this.local.serviceLog(name)
  }

  /** The absolute path of a local log's file, for operators' messages. */
  location(id: string, path: string): string {
    return this.local.location(id, path)
  }

  /**
   * Opens (creating when `create`) the log's local storage; queues any pack newer than the newest
   * queued one, and returns an archive whose packs are queued as they are made.
   */
  async open(id: string, create: boolean): Promise<{ files: FileStore; archive: UploadingArchive } | undefined> {
    const s = await this.local.open(id, create)
    if (!s) return undefined
    const packer: CarPacker = s.archive
    /** Queues every pack newer than the newest queued one, oldest first. */
    const catchUp = () => {
      const queued = this.queue.latestTreeSize(id)
      for (const p of packer.list()) if (p.treeSize > queued) this.uploader.enqueue(id, p)
    }
    try {
      catchUp()
    } catch (err) {
      await packer.close() // a failed open holds nothing (the index is exclusive)
      throw err
    }
    const uploader = this.uploader
    /** A queue write failed since the last catch-up: the next pack catches up first. */
    let behind = false
    const archive: UploadingArchive = {
      get lastTreeSize() {
        return packer.lastTreeSize
      },
      async pack(treeSize, files) {
        const r = await packer.pack(treeSize, files)
        try {
          if (behind) catchUp()
          else uploader.enqueue(id, r)
          behind = false
        } catch (err) {
          behind = true
          throw err
        }
        return r
      },
      close: () => packer.close(),
    }
    return { files: s.files, archive }
  }
}

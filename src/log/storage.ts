/**
 * What the log engine needs from storage. These interfaces belong to the engine (their consumer);
 * src/storage implements them for the local filesystem, and later backends implement the same
 * contract. Paths are c2sp.org/tlog-tiles paths relative to the log's prefix (`checkpoint`,
 * `tile/0/x001/067.p/5`, `tile/entries/000`), plus engine-private state under `.state/`.
 */

/**
 * Name of the error a backend rejects a write with once it has lost the right to write the log
 * (fencing: another instance took the log's lease, docs/storage.md): nothing of that write is
 * visible, and no later write through the same handle will succeed. The engine stops the log with
 * that error as is (so appenders are refused by that name, not as a failed disk) and the next
 * acquire reopens the log, which takes the right again or is refused.
 */
export const FENCED_OUT_ERROR = 'LeaseLost'

/** The files of one log. */
export interface LogFiles {
  /**
   * Reads one file. Resolves `undefined` when it does not exist; any other failure rejects.
   * Safe to call concurrently with `write`: a reader sees the old or the new file, never a mix.
   */
  read(path: string): Promise<Uint8Array | undefined>
  /**
   * Writes files, each atomically. Durable once the promise resolves (survives a crash or kill -9);
   * if it rejects, each file is either its old or its new version.
   */
  write(files: Iterable<[string, Uint8Array]>): Promise<void>
  /** Removes files (missing ones are ignored); durable once resolved. */
  remove(paths: Iterable<string>): Promise<void>
}

/**
 * The per-checkpoint archive of one log: one CAR per published checkpoint holding the files it
 * added or changed (docs/storage.md, the CARs in the space).
 */
export interface LogArchive {
  /** Tree size (entries) of the newest archived checkpoint; 0 when nothing is archived yet. */
  readonly lastTreeSize: number
  /**
   * Archives the files a checkpoint of `treeSize` entries added or changed. Durable once resolved.
   * Rejects for `treeSize ≤ lastTreeSize`.
   */
  pack(treeSize: number, files: ReadonlyMap<string, Uint8Array>): Promise<unknown>
  close?(): void | Promise<void>
}

/** Where the logs live: one {@link LogFiles} and one {@link LogArchive} per log id (space DID). */
export interface LogBackend {
  /** True when a log with this id has been created. Never creates anything. */
  exists(logId: string): Promise<boolean>
  /** Opens (creating when `create` is true) the storage of a log. */
  open(logId: string, create: boolean): Promise<{ files: LogFiles; archive: LogArchive } | undefined>
  /** Ids of every existing log. */
  list(): Promise<string[]>
  /**
   * Read access to an existing log's files without opening its archive (no descriptor is held
   * between reads); undefined when no such log exists. Never creates anything. Optional: without
   * it, reads of a log that is not open open it.
   */
  files?(logId: string): Promise<LogFiles | undefined>
  /** Where a log's file is, for operators' messages (e.g. an absolute path). Optional. */
  location?(logId: string, path: string): string
  /**
   * The files of a log the service keeps for itself rather than for a space (`revocations`),
   * created when missing; it has no archive (no CARs: its entries belong to no space). Optional:
   * a backend without it cannot hold the revocation log.
   * @param name a lowercase word, never a space DID.
   */
  serviceLog?(name: string): Promise<LogFiles>
}

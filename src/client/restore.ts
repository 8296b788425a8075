/**
 * Restore (`ucanlog restore`): rebuilds a log's local state (`<data>/logs/<space>/`, its CAR index and its
 * upload queue entry) from the blocks in its Storacha space, so another instance — or another
 * operator — can take the log over and keep appending, the tree growing consistently.
 *
 * The blocks come from an IPFS gateway (trustless: `GET <gateway>/ipfs/<cid>?format=raw`, each
 * block checked against its CID) or from a directory of CARs (the space's shards, or a copy of
 * `<data>/cars/<space>/`). The root is `--root`, or, with `--cars`, the CAR root whose checkpoint
 * is the largest. Verified as it goes, before anything is written:
 *
 * 1. the root's checkpoint: log signature (c2sp.org/signed-note, the log's vkey), origin, and the
 *    witness policy given (default: the log signature only) — then the whole audit of client/audit.ts:
 *    every entry bundle re-hashed against the level-0 tiles, the tree recomputed, every tile;
 * 2. every file under the root is a c2sp.org/tlog-tiles path of that tree (or `checkpoint`) and
 *    holds exactly what the verified tree says (hash tiles, partial ones included, equal to the
 *    tree's hashes; entry bundles hash to the level-0 tile's leaves);
 * 3. with `--cars`, the checkpoint under every other CAR root: its signature and its consistency
 *    (RFC 6962 §2.1.2 proof from the restored tree) with the restored checkpoint.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile, rename, rm, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { STATE_PATH, formatStoredTree } from '../log/state.js'
import {
  type BlockGetter,
  type WalkedEntry,
  CarPacker,
  FileStore,
  UPLOAD_QUEUE_FILE,
  UploadQueue,
  encodeCar,
  readUnixfsFile,
  walkDirectory,
} from '../storage/index.js'
import {
  type Hash,
  type Policy,
  checkTree,
  ed25519Verifier,
  leafHash,
  openNote,
  parseCheckpoint,
  parseEntryBundle,
  parseTilePath,
  proveTree,
  readTileData,
  tileWidth,
  equalBytes,
} from '../tlog/index.js'
import { auditLog } from './audit.js'
import { servedTileReader } from './tiles.js'

export type { BlockGetter }

/** A restore that cannot proceed or a check that failed; the message says which and why. */
export class RestoreError extends Error {
  override name = 'RestoreError'
}

/** Inputs of {@link restoreLog}. */
export interface RestoreInput {
  /** The space DID (the log id). */
  space: string
  /** The upload root to restore; undefined = the root among `carRoots` whose checkpoint is largest. */
  root?: CID
  /** Where blocks come from; each block is verified against its CID before use. */
  getBlock: BlockGetter
  /** Roots of every CAR available (with `--cars`): each one's checkpoint is verified too. */
  carRoots?: CID[]
  /** The service data directory to restore into. */
  dataDir: string
  /** Expected checkpoint origin, `<prefix>/logs/<space>`. */
  origin: string
  /** The log's vkey (c2sp.org/signed-note, type 0x01, name = origin). */
  logVkey: string
  /** Witness policy the restored checkpoint must satisfy (`quorum none` = log signature only). */
  policy: Policy
}

/** What restoreLog did. */
export interface RestoreReport {
  root: string
  /** Tree size (entries) of the restored checkpoint. */
  size: number
  rootHash: Hash
  /** Files written to `<data>/logs/<space>/`. */
  files: number
  /** Checkpoints whose signature (and consistency with the restored one) verified, the restored one included. */
  checkpointsVerified: number
  /** Blocks in the CAR recorded as the restored pack. */
  blocks: number
}

/**
 * Restores one log; see the module comment. Writes nothing until every check passed; the log
 * directory appears atomically (renamed from a temporary one) as the last step.
 * @throws RestoreError (a check failed, or the data directory already has this log), and
 *   MissingBlockError / InvalidBlockError from the block source.
 */
export async function restoreLog(i: RestoreInput): Promise<RestoreReport> {
  const logDir = join(i.dataDir, 'logs', i.space)
  const carDir = join(i.dataDir, 'cars', i.space)
  if (existsSync(logDir)) throw new RestoreError(`${logDir} already exists; restore into a data directory without this log`)
  if (existsSync(carDir)) throw new RestoreError(`${carDir} already exists; remove it (it belongs to no log here) and retry`)
  const verifier = ed25519Verifier(i.logVkey)
  const fetched = new Map<string, { cid: CID; bytes: Uint8Array }>()
  // Records the blocks reachable from the restored root (steps 1 and 2) for its CAR.
  let recording = false
  const get: BlockGetter = async (cid) => {
    const bytes = await i.getBlock(cid)
    if (bytes && recording) fetched.set(cid.toString(), { cid, bytes })
    return bytes
  }
  const checkpointAt = async (root: CID) => {
    const bytes = await readUnixfsFile(get, root, 'checkpoint')
    if (!bytes) throw new RestoreError(`${root} has no checkpoint file`)
    const note = Buffer.from(bytes).toString('utf8')
    let text: string
    try {
      text = openNote(note, [verifier]).text
    } catch (err) {
      throw new RestoreError(`the checkpoint under ${root} does not verify with ${i.logVkey}: ${(err as Error).message}`)
    }
    const cp = parseCheckpoint(text)
    if (cp.origin !== i.origin) throw new RestoreError(`the checkpoint under ${root} has origin ${cp.origin}, expected ${i.origin}`)
    return cp
  }

  let root = i.root
  if (root === undefined) {
    if (!i.carRoots?.length) throw new RestoreError('no root: pass --root <cid>, or --cars <dir> holding the space\'s CARs')
    let best: { root: CID; size: number } | undefined
    for (const r of i.carRoots) {
      const cp = await checkpointAt(r)
      if (!best || cp.size > best.size) best = { root: r, size: cp.size }
    }
    root = best!.root
  }
  const fetchFile = (path: string) => readUnixfsFile(get, root, path)

  // 1. Signature, policy and the whole tree.
  recording = true
  let report
  try {
    report = await auditLog({ fetchFile, origin: i.origin, logVkey: i.logVkey, policy: i.policy, inclusionSample: 100 })
  } catch (err) {
    // The CLI's exit code travels with it: a failed check's (verification failed), or 4 (unreachable).
    const exitCode = (err as { exitCode?: unknown }).exitCode
    throw Object.assign(new RestoreError(`the log under ${root} does not verify: ${(err as Error).message}`, { cause: err }), typeof exitCode === 'number' ? { exitCode } : {})
  }
  const size = report.size
  const reader = servedTileReader(size, report.rootHash, fetchFile, (path) => new RestoreError(`tile ${path} is missing under ${root}`))

  // 2. Every file is a tlog-tiles file of this tree holding what the tree says.
  const entries: WalkedEntry[] = []
  const files = new Map<string, Uint8Array>()
  for await (const e of walkDirectory(get, root)) {
    entries.push(e)
    if (e.isDir) continue
    const path = e.dir === '' ? e.name : `${e.dir}/${e.name}`
    const bytes = await fetchFile(path)
    if (!bytes) throw new RestoreError(`${path} under ${root} cannot be read`)
    if (path === 'checkpoint') {
      if (Buffer.from(bytes).toString('utf8') !== report.note) throw new RestoreError('checkpoint changed while restoring')
    } else {
      let parsed: ReturnType<typeof parseTilePath>
      try {
        parsed = parseTilePath(path)
      } catch {
        throw new RestoreError(`${path} under ${root} is not a tlog-tiles file`)
      }
      if (parsed.kind === 'tile') {
        const t = parsed.tile
        if (t.width > tileWidth(t.level, t.index, size)) throw new RestoreError(`${path} lies beyond the checkpoint's tree size ${size}`)
        if (!equalBytes(bytes, await readTileData(t, reader))) throw new RestoreError(`${path} differs from the verified tree`)
      } else {
        if (parsed.width > tileWidth(0, parsed.index, size)) throw new RestoreError(`${path} lies beyond the checkpoint's tree size ${size}`)
        const leaves = await readTileData({ level: 0, index: parsed.index, width: parsed.width }, reader)
        let bundle: Uint8Array[]
        try {
          bundle = parseEntryBundle(bytes)
        } catch {
          throw new RestoreError(`${path} is not an entry bundle`)
        }
        if (bundle.length !== parsed.width) throw new RestoreError(`${path} has ${bundle.length} entries, want ${parsed.width}`)
        bundle.forEach((entry, j) => {
          if (!equalBytes(leafHash(entry), leaves.subarray(j * 32, j * 32 + 32))) throw new RestoreError(`entry ${j} of ${path} does not hash to its leaf`)
        })
      }
    }
    files.set(path, bytes)
  }

  recording = false

  // 3. Every other checkpoint available is signed and consistent with the restored one.
  let checkpointsVerified = 1
  for (const r of i.carRoots ?? []) {
    if (r.equals(root)) continue
    const cp = await checkpointAt(r)
    if (cp.size > size) throw new RestoreError(`the checkpoint under ${r} (size ${cp.size}) is newer than the restored one (${size}); restore that root`)
    try {
      checkTree(await proveTree(size, cp.size, reader), size, report.rootHash, cp.size, cp.rootHash)
    } catch {
      throw new RestoreError(`the checkpoint under ${r} (size ${cp.size}) is not consistent with the restored tree: the log forked`)
    }
    checkpointsVerified++
  }

  // Write: the log's files in a temporary directory, the CAR index, the upload queue, then the rename.
  const tmpDir = join(i.dataDir, 'logs', `.restore-${i.space}`)
  await rm(tmpDir, { recursive: true, force: true })
  await mkdir(join(i.dataDir, 'logs'), { recursive: true })
  const store = await FileStore.create(tmpDir)
  await store.write(files)
  await store.write([[STATE_PATH, formatStoredTree({ size, root: report.rootHash })]])
  const blocks = [...fetched.values()]
  const car = await encodeCar(root, blocks)
  const pack = await CarPacker.restore(carDir, { treeSize: size, root, car, blocks: blocks.length, entries })
  const queue = new UploadQueue(join(i.dataDir, UPLOAD_QUEUE_FILE))
  try {
    // It came from the space: nothing to upload.
    const now = Date.now()
    queue.enqueue({ space: i.space, treeSize: size, root: root.toString(), carFile: pack.file, carCid: pack.carCid.toString() }, now)
    queue.markDone(i.space, size, now)
  } finally {
    queue.close()
  }
  await rename(tmpDir, logDir)
  return { root: root.toString(), size, rootHash: report.rootHash, files: files.size, checkpointsVerified, blocks: blocks.length }
}

/** Every block of every `.car` file in `dir`, and each CAR's root. */
export async function loadCars(dir: string): Promise<{ blocks: Map<string, Uint8Array>; roots: CID[] }> {
  const blocks = new Map<string, Uint8Array>()
  const roots: CID[] = []
  const names = (await readdir(dir)).filter((n) => n.endsWith('.car')).sort()
  if (names.length === 0) throw new RestoreError(`no .car files in ${dir}`)
  for (const name of names) {
    const it = await CarBlockIterator.fromBytes(await readFile(join(dir, name)))
    const [r] = await it.getRoots()
    if (r) roots.push(CID.decode(r.bytes))
    for await (const b of it) blocks.set(b.cid.toString(), new Uint8Array(b.bytes))
  }
  return { blocks, roots }
}

/** A trustless-gateway block getter: `GET <gateway>/ipfs/<cid>?format=raw`; 404 = missing. */
export function gatewayBlocks(gateway: string, fetchImpl: typeof fetch = fetch): BlockGetter {
  return async (cid) => {
    const url = new URL(`/ipfs/${cid}?format=raw`, gateway)
    const res = await fetchImpl(url, { headers: { accept: 'application/vnd.ipld.raw' } }).catch((err: Error) => {
      // exitCode 4: unreachable (src/cli/exit-codes.ts), not a log that failed to verify.
      throw Object.assign(new RestoreError(`cannot reach the gateway ${gateway} (${(err.cause as Error | undefined)?.message ?? err.message}); check --gateway and the network`, { cause: err }), { exitCode: 4 })
    })
    if (res.status === 404) return undefined
    if (!res.ok) throw new RestoreError(`GET ${url} answered ${res.status}`)
    return new Uint8Array(await res.arrayBuffer())
  }
}

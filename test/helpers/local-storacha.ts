/**
 * A local Storacha for tests and demos (development only: it imports the devDependency
 * `@storacha/upload-api`, pinned at 2.8.4, and is never imported by `ucanlog serve`).
 *
 * It runs upload-api's real ucanto service (`@storacha/upload-api/test/context` createContext({ http }):
 * in-memory stores, three storage nodes that accept the blob HTTP PUT, indexing and claims services)
 * behind one node:http front on 127.0.0.1:
 *
 *   POST /                  the upload service (space/blob/add, ucan/conclude, space/index/add, upload/add, …)
 *   GET  /receipt/<cid>     receipts from the service's own agent store (what blob/accept polling reads)
 *   GET  /ipfs/<cid>[/path] a minimal trustless gateway over the blobs stored in provisioned spaces:
 *                           `?format=raw` (or `Accept: application/vnd.ipld.raw`) answers one block;
 *                           otherwise the UnixFS file at `path` under `cid`.
 *
 * The front can be stopped and started again on the same port (stop/start) while the in-memory
 * state stays, which is how the fault tests take "Storacha" down. Note: createContext itself binds
 * its storage-node and indexing servers on `::` (all interfaces, ephemeral ports); only the front
 * is ours to bind to 127.0.0.1.
 */
import { createHash } from 'node:crypto'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { CarBlockIterator } from '@ipld/car'
import { Message, delegate, parseLink } from '@ucanto/core'
import type { API } from '@ucanto/core'
import * as CAR from '@ucanto/transport/car'
import { createContext, cleanupContext } from '@storacha/upload-api/test/context'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import { readUnixfsFile } from '../../src/storage/unixfs.js'

type Context = Awaited<ReturnType<typeof createContext>>

/** One upload registered in a space (upload/add), as the upload table holds it. */
export interface LocalUpload {
  /** The upload's root CID. */
  root: string
  /** CIDs of its shards (CAR blobs, codec 0x0202). */
  shards: string[]
  /** ISO 8601 time of the first upload/add. */
  insertedAt: string
}

/** A running local Storacha; see the module comment. */
export interface LocalStoracha {
  /** Base URL of the front, `http://127.0.0.1:<port>` (the upload service URL, POST /). */
  url: string
  /** The service DID, `did:web:test.up.storacha.network`. */
  did: `did:${string}:${string}`
  /** `<url>/receipt/`: the receipts endpoint. */
  receiptsEndpoint: string
  /** `<url>`: the gateway base (`<url>/ipfs/<cid>`). */
  gateway: string
  /** upload-api's test context (stores, storage nodes, connection), for assertions. */
  context: Context
  /** Provisions `space` (a did:key) with the service as its storage provider. */
  provision(space: string): Promise<void>
  /** The uploads registered in `space`, newest first. */
  uploads(space: string): Promise<LocalUpload[]>
  /** Every blob registered in `space`: its sha2-256 multihash (base58btc) and its bytes. */
  blobs(space: string): Promise<{ digest: string; size: number; bytes: Uint8Array }[]>
  /** Every block in the CAR blobs of `space`, keyed by CID string (index blobs included). */
  blocks(space: string): Promise<Map<string, Uint8Array>>
  /**
   * Visits every block of the CAR blobs of `space` (index blobs included), one blob at a time, each
   * read from its storage node block by block (no blob is held whole); blobs that are not CARs are
   * skipped. `onBlob(done, total)` after each blob. Resolves with the number of blobs read.
   */
  eachBlock(space: string, visit: (cid: string, bytes: Uint8Array) => void, onBlob?: (done: number, total: number) => void): Promise<number>
  /**
   * Which local CARs are not in `space`: a CAR is in the space when its root is an upload of the
   * space and each of its blocks is, byte for byte (sha2-256 of the bytes), in one of the space's
   * CAR blobs (checkpoints are coalesced into shards, so the local CAR itself need not be a blob).
   * Memory is bounded by the CIDs of the local CARs (one digest each), not by the blobs' bytes: the
   * local CARs are read one at a time (`read`), the blobs streamed (eachBlock). `progress` gets a line
   * now and then. Resolves with the missing CARs' names and why.
   */
  missingCars(
    space: string,
    cars: { name: string; read: () => Promise<Uint8Array> }[],
    progress?: (line: string) => void,
  ): Promise<{ name: string; reason: string }[]>
  /** Stops the front (connections refused, like a Storacha outage); state is kept. Idempotent. */
  stop(): Promise<void>
  /** Starts the front again on the same port. Idempotent. */
  start(): Promise<void>
  /** Stops everything and frees the in-memory state. */
  close(): Promise<void>
}

/**
 * Starts a local Storacha on 127.0.0.1.
 * @param options.port front port (default 0: any free port, kept across stop/start).
 */
export async function startLocalStoracha(options: { port?: number } = {}): Promise<LocalStoracha> {
  const errors: unknown[] = []
  const context = await createContext({ http, requirePaymentPlan: false, assert: { fail: (e: unknown) => errors.push(e) } })
  // upload-api 2.8.4's test context delegates `assert/*` to its indexing and claims clients with
  // ucanto's default lifetime (30 s), so space/index/add fails with "has expired" half a minute
  // after start. Re-delegate without expiry.
  for (const svc of [context.indexingService, context.claimsService] as unknown as { invocationConfig: { issuer: API.Signer; audience: API.Signer; with: `did:${string}:${string}`; proofs: API.Delegation[] } }[]) {
    const cfg = svc.invocationConfig
    cfg.proofs = [await delegate({ issuer: cfg.audience, audience: cfg.issuer, capabilities: [{ can: 'assert/*', with: cfg.with }], expiration: Infinity })]
  }
  const provisioned = new Set<string>()

  /** The blob's storage-node answer (its body unread), or undefined when no node has it. */
  const blobResponse = async (digestBytes: Uint8Array): Promise<Response | undefined> => {
    const key = base58btc.encode(digestBytes)
    for (const node of context.storageProviders as unknown as { server: http.Server }[]) {
      const addr = node.server.address() as AddressInfo | null
      if (!addr) continue
      // The storage nodes destroy every socket after answering, so a kept-alive connection can
      // be found closed ("other side closed"): retry on a network error.
      let res: Response | undefined
      for (let attempt = 0; attempt < 3 && res === undefined; attempt++) {
        res = await fetch(`http://127.0.0.1:${addr.port}/${key}/${key}.blob`).catch(() => undefined)
      }
      if (res?.ok) return res
      await res?.body?.cancel()
    }
    return undefined
  }
  const blobBytes = async (digestBytes: Uint8Array): Promise<Uint8Array | undefined> => {
    const res = await blobResponse(digestBytes)
    return res ? new Uint8Array(await res.arrayBuffer()) : undefined
  }
  const entries = async (space: string) => {
    const listed = await context.registry.entries(space as `did:key:${string}`)
    if (listed.error) throw new Error(`registry.entries: ${listed.error.message}`)
    return listed.ok.results
  }

  const blobs: LocalStoracha['blobs'] = async (space) => {
    const out: { digest: string; size: number; bytes: Uint8Array }[] = []
    for (const e of await entries(space)) {
      const bytes = await blobBytes(e.blob.digest.bytes)
      if (!bytes) throw new Error(`blob ${base58btc.encode(e.blob.digest.bytes)} is registered but no storage node has it`)
      out.push({ digest: base58btc.encode(e.blob.digest.bytes), size: e.blob.size, bytes })
    }
    return out
  }

  const eachBlock: LocalStoracha['eachBlock'] = async (space, visit, onBlob) => {
    const listed = await entries(space)
    let done = 0
    for (const e of listed) {
      const res = await blobResponse(e.blob.digest.bytes)
      if (!res?.body) throw new Error(`blob ${base58btc.encode(e.blob.digest.bytes)} is registered but no storage node has it`)
      const body = res.body
      let it
      try {
        it = await CarBlockIterator.fromIterable(body as AsyncIterable<Uint8Array>)
      } catch {
        await body.cancel().catch(() => {}) // not a CAR
      }
      if (it) for await (const { cid, bytes } of it) visit(cid.toString(), bytes)
      onBlob?.(++done, listed.length)
    }
    return done
  }

  const blocks: LocalStoracha['blocks'] = async (space) => {
    const out = new Map<string, Uint8Array>()
    await eachBlock(space, (cid, bytes) => out.set(cid, new Uint8Array(bytes)))
    return out
  }

  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('base64')
  const missingCars: LocalStoracha['missingCars'] = async (space, cars, progress) => {
    const listed = await context.uploadTable.list(space as `did:key:${string}`)
    if (listed.error) throw new Error(`uploadTable.list: ${listed.error.message}`)
    const roots = new Set(listed.ok.results.map((u) => u.root.toString()))
    // Pass 1, the local CARs one at a time: the root each needs, and the digest of each block it needs.
    const needed = new Map<string, string>() // CID → sha2-256 of the local bytes (base64)
    const local: { name: string; root: string; cids: string[] }[] = []
    const missing: { name: string; reason: string }[] = []
    for (const car of cars) {
      const it = await CarBlockIterator.fromBytes(await car.read())
      const root = String((await it.getRoots())[0])
      const cids: string[] = []
      for await (const { cid, bytes } of it) {
        const key = cid.toString()
        const digest = sha256(bytes)
        const had = needed.get(key)
        if (had !== undefined && had !== digest) missing.push({ name: car.name, reason: `two local CARs hold different bytes for block ${key}` })
        needed.set(key, had ?? digest)
        cids.push(key)
      }
      local.push({ name: car.name, root, cids })
    }
    progress?.(`${cars.length} local CARs need ${needed.size} distinct blocks; ${roots.size} uploads in the space; reading the space's blobs`)
    // Pass 2, the space's blobs streamed: which needed blocks are there with the same bytes.
    const found = new Set<string>()
    let last = Date.now()
    await eachBlock(
      space,
      (cid, bytes) => {
        const want = needed.get(cid)
        if (want !== undefined && !found.has(cid) && sha256(bytes) === want) found.add(cid)
      },
      (done, total) => {
        if (done === total || Date.now() - last >= 10_000) {
          last = Date.now()
          progress?.(`blobs read ${done}/${total}, needed blocks found ${found.size}/${needed.size}`)
        }
      },
    )
    for (const car of local) {
      if (!roots.has(car.root)) missing.push({ name: car.name, reason: `root ${car.root} is not an upload of the space` })
      else {
        const absent = car.cids.filter((c) => !found.has(c))
        if (absent.length) missing.push({ name: car.name, reason: `${absent.length} of its ${car.cids.length} blocks are not in the space's CAR blobs (first ${absent[0]})` })
      }
    }
    return missing
  }

  // The gateway's block lookup: every block of every provisioned space, refreshed on a miss.
  let known = new Map<string, Uint8Array>()
  const getBlock = async (cid: CID): Promise<Uint8Array | undefined> => {
    const key = cid.toString()
    if (!known.has(key)) {
      const all = new Map<string, Uint8Array>()
      for (const s of provisioned) for (const [k, v] of await blocks(s)) all.set(k, v)
      known = all
    }
    return known.get(key)
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.method === 'POST' && url.pathname === '/') {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]))
      const out = await context.connection.channel.request({ headers, body: new Uint8Array(Buffer.concat(chunks)) } as never)
      res.writeHead((out as { status?: number }).status ?? 200, out.headers)
      res.end(Buffer.from(out.body))
      return
    }
    const receipt = /^\/receipt\/([a-z0-9]+)$/.exec(url.pathname)
    if (req.method === 'GET' && receipt) {
      const r = await context.agentStore.receipts.get(parseLink(receipt[1]!) as never)
      if (r.error) {
        res.writeHead(404).end()
        return
      }
      const body = CAR.request.encode(await Message.build({ receipts: [r.ok] } as never)).body
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' })
      res.end(Buffer.from(body))
      return
    }
    const ipfs = /^\/ipfs\/([a-z0-9]+)((?:\/[^/]+)*)\/?$/i.exec(url.pathname)
    if (req.method === 'GET' && ipfs) {
      let cid: CID
      try {
        cid = CID.parse(ipfs[1]!)
      } catch {
        res.writeHead(400).end('bad cid\n')
        return
      }
      const path = decodeURIComponent(ipfs[2]!.slice(1))
      const raw = url.searchParams.get('format') === 'raw' || (req.headers.accept ?? '').includes('application/vnd.ipld.raw')
      if (raw && path === '') {
        const bytes = await getBlock(cid)
        if (!bytes) res.writeHead(404).end('block not found\n')
        else res.writeHead(200, { 'content-type': 'application/vnd.ipld.raw' }).end(Buffer.from(bytes))
        return
      }
      try {
        const file = await readUnixfsFile(getBlock, cid, path)
        if (!file) res.writeHead(404).end('not found\n')
        else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.from(file))
      } catch (err) {
        res.writeHead(404).end(`${(err as Error).message}\n`)
      }
      return
    }
    res.writeHead(404).end('not found\n')
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      errors.push(err)
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  })
  let port = options.port ?? 0
  let listening = false
  const start = async () => {
    if (listening) return
    await new Promise<void>((ok, fail) => {
      server.once('error', fail)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', fail)
        ok()
      })
    })
    port = (server.address() as AddressInfo).port
    listening = true
  }
  const stop = async () => {
    if (!listening) return
    listening = false
    server.closeAllConnections()
    await new Promise<void>((ok) => server.close(() => ok()))
  }
  await start()
  const url = `http://127.0.0.1:${port}`

  return {
    url,
    did: context.id.did() as `did:${string}:${string}`,
    receiptsEndpoint: `${url}/receipt/`,
    gateway: url,
    context,
    async provision(space) {
      const r = await context.provisionsStorage.put({
        cause: {} as never,
        consumer: space as `did:key:${string}`,
        customer: 'did:mailto:example.com:alice',
        provider: context.id.did() as `did:web:${string}`,
      })
      if (r.error) throw new Error(`provision ${space}: ${r.error.message}`)
      provisioned.add(space)
    },
    async uploads(space) {
      const r = await context.uploadTable.list(space as `did:key:${string}`)
      if (r.error) throw new Error(`uploadTable.list: ${r.error.message}`)
      return r.ok.results.map((u) => ({
        root: u.root.toString(),
        shards: (u.shards ?? []).map(String),
        insertedAt: u.insertedAt,
      }))
    },
    blobs,
    blocks,
    eachBlock,
    missingCars,
    start,
    stop,
    async close() {
      await stop()
      await cleanupContext(context)
    },
  }
}

/** Shared fixtures for the witness tests: a loopback server, request builders and store fakes. */
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { expect } from 'vitest'
import { ed25519Signer, signNote } from '../../src/tlog/note.js'
import { SqliteWitnessStore, Witness, witnessApp } from '../../witness/index.js'
import type { WitnessAppOptions, WitnessLog, WitnessStore } from '../../witness/index.js'
import { LOG, WITNESS } from '../vectors/litewitness.js'

export const witnessSeed = Buffer.from(WITNESS.seedHex, 'hex')
/** The litewitness test log's signer (seed derived as in the digest §11; its vkey is LOG.vkey). */
export const logSigner = ed25519Signer(LOG.origin, Buffer.from(LOG.seedHex, 'hex'))

/** An add-checkpoint body: `old N`, proof lines, blank line, note. */
export function request(old: number | string, proof: readonly string[], note: string): string {
  return `old ${old}\n${proof.map((p) => p + '\n').join('')}\n${note}`
}

/** A checkpoint note for the test log, signed by its key. */
export function signedCheckpoint(size: number | string, root: string, origin: string = LOG.origin, ext = ''): string {
  return signNote(`${origin}\n${size}\n${root}\n${ext}`, [logSigner])
}

/** A store with the litewitness log and its key configured. */
export function litewitnessStore(file = ':memory:'): SqliteWitnessStore {
  const store = new SqliteWitnessStore(file)
  store.addLog(LOG.origin)
  store.addKey(LOG.origin, LOG.vkey)
  return store
}

export interface Running {
  url: string
  witness: Witness
  post(body: string | Uint8Array): Promise<Response>
  close(): Promise<void>
}

/** Serves a witness over real HTTP on 127.0.0.1 (ephemeral port). The clock defaults to §5.3's T. */
export async function startWitness(
  store: WitnessStore,
  opts: { now?: () => number; app?: WitnessAppOptions } = {},
): Promise<Running> {
  const witness = new Witness({ name: WITNESS.name, seed: witnessSeed, store, now: opts.now ?? (() => WITNESS.timestamp) })
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve) => {
    const server = serve({ fetch: witnessApp(witness, opts.app).fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve({ server, port: info.port }),
    )
  })
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    witness,
    post: (body) => fetch(`${url}/add-checkpoint`, { method: 'POST', body }),
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  }
}

/** Asserts a response's status, content type and (optionally) exact body; returns the body. */
export async function expectResponse(res: Response, status: number, contentType: string, body?: string | RegExp): Promise<string> {
  const text = await res.text()
  expect({ status: res.status, contentType: res.headers.get('content-type'), text }).toMatchObject({ status, contentType })
  if (typeof body === 'string') expect(text).toBe(body)
  else if (body) expect(text).toMatch(body)
  return text
}

/**
 * A WitnessStore fake over SQLite that asserts the store's invariants while tests run: a log's
 * size never decreases, a successful compare-and-swap stores exactly what was asked, a failed one
 * changes nothing. It can also stall compare-and-swap calls to force interleavings.
 */
export class CheckedStore implements WitnessStore {
  readonly inner: SqliteWitnessStore
  readonly #maxSize = new Map<string, number>()
  /** When set, a CAS for which it returns a promise waits for that promise before writing. */
  stall: ((origin: string, oldSize: number, newSize: number) => Promise<void> | undefined) | undefined
  casCalls = 0

  constructor(inner: SqliteWitnessStore) {
    this.inner = inner
  }

  async getLog(origin: string): Promise<WitnessLog | undefined> {
    return this.#observe(this.inner.getLog(origin))
  }

  async compareAndSwap(origin: string, oldSize: number, newSize: number, rootHash: Uint8Array, checkpoint: string): Promise<boolean> {
    this.casCalls++
    await this.stall?.(origin, oldSize, newSize)
    // No await from here on: the three calls below are one atomic step against the sync store.
    const before = this.inner.getLog(origin)
    const ok = this.inner.compareAndSwap(origin, oldSize, newSize, rootHash, checkpoint)
    const after = this.inner.getLog(origin)
    if (ok) {
      expect(before?.treeSize).toBe(oldSize)
      expect(after).toMatchObject({ treeSize: newSize, checkpoint })
      expect(Buffer.from(after!.rootHash).equals(Buffer.from(rootHash))).toBe(true)
    } else {
      expect(after).toEqual(before)
    }
    this.#observe(after)
    return ok
  }

  addLog(origin: string) {
    return this.inner.addLog(origin)
  }
  addKey(origin: string, vkey: string) {
    return this.inner.addKey(origin, vkey)
  }
  deleteKey(origin: string, vkey: string) {
    return this.inner.deleteKey(origin, vkey)
  }
  async listLogs() {
    return this.inner.listLogs().map((l) => this.#observe(l)!)
  }

  #observe(log: WitnessLog | undefined): WitnessLog | undefined {
    if (log !== undefined) {
      const max = this.#maxSize.get(log.origin) ?? 0
      expect(log.treeSize, `size of ${log.origin} decreased`).toBeGreaterThanOrEqual(max)
      this.#maxSize.set(log.origin, log.treeSize)
    }
    return log
  }
}

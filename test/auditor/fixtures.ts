/**
 * Fixtures of the adversarial auditor tests: honest logs built with the real engine (src/log) and
 * signed with real Ed25519 keys (the log's key and three witness cosignature/v1 keys), a log server
 * on loopback HTTP whose files a test swaps or tampers with, and byte-level tampering helpers.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Log, type WitnessQuorum } from '../../src/log/log.js'
import {
  type Cosigner,
  ed25519Cosigner,
  ed25519Signer,
  formatSignatureLine,
  parseNote,
  parsePolicy,
  signNote,
} from '../../src/tlog/index.js'
import { MemoryFiles } from '../helpers/memory-files.js'
import { closeServer } from '../helpers/loopback.js'

/** A syntactically valid did:key (the auditor CLI checks the shape only). */
export const SPACE = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
export const ORIGIN = `ucanlog.test/logs/${SPACE}`
const seed = (n: number) => new Uint8Array(32).fill(n)
/** The log's key, pinned by the auditor. */
export const LOG_SIGNER = ed25519Signer(ORIGIN, seed(1))
/** Another key with the same name (origin): a checkpoint it signs is not the log's. */
export const OTHER_SIGNER = ed25519Signer(ORIGIN, seed(2))
/** The three policy witnesses' cosigning keys. */
export const W1 = ed25519Cosigner('w1.example', seed(11))
export const W2 = ed25519Cosigner('w2.example', seed(12))
export const W3 = ed25519Cosigner('w3.example', seed(13))
/** A key named like w2 but not w2's: its lines carry another key ID. */
export const W2_IMPOSTOR = ed25519Cosigner('w2.example', seed(99))
/** Cosignature timestamp (Unix seconds), in the past of any test run. */
export const COSIGN_TIME = 1_700_000_000

/** 2 of the 3 witnesses (the honest logs are cosigned by w1 and w2). */
export const POLICY_TEXT = `witness w1 ${W1.vkey}\nwitness w2 ${W2.vkey}\nwitness w3 ${W3.vkey}\ngroup two 2 w1 w2 w3\nquorum two\n`
export const POLICY = parsePolicy(POLICY_TEXT)

export const entry = (i: number, tag = '') => new TextEncoder().encode(`entry ${i}${tag}`)

/** The log engine's witnesses: cosigns every checkpoint with the given keys (no HTTP). */
class KeyCosigners implements WitnessQuorum {
  constructor(private readonly keys: Cosigner[]) {}
  async cosign(checkpoint: string) {
    return { note: checkpoint + cosignLines(parseNote(checkpoint).text, this.keys), cosigned: new Set<string>(), satisfied: true }
  }
}

/** Signature lines of `keys` cosigning checkpoint text `text` at {@link COSIGN_TIME}. */
export function cosignLines(text: string, keys: Cosigner[], time = COSIGN_TIME): string {
  return keys.map((k) => formatSignatureLine(k.cosign(text, time))).join('')
}

/** A log's public files by tlog-tiles path (`checkpoint`, `tile/0/000`, `tile/entries/000.p/5`, …). */
export type LogFilesMap = Map<string, Uint8Array>

/**
 * Appends `entries` to a fresh log with the real engine, signed by {@link LOG_SIGNER} and cosigned by
 * w1 and w2; returns a copy of its files at each of `sizes` (ascending, the last ≤ entries.length).
 */
export async function buildLog(entries: Uint8Array[], sizes: number[]): Promise<LogFilesMap[]> {
  const files = new MemoryFiles()
  const log = await Log.open({ id: SPACE, origin: ORIGIN, signer: LOG_SIGNER, files, witnesses: new KeyCosigners([W1, W2]), batchMaxAgeMs: 1 })
  const out: LogFilesMap[] = []
  let done = 0
  for (const size of sizes) {
    await Promise.all(entries.slice(done, size).map((e) => log.append(e)))
    done = size
    out.push(new Map([...files.files].map(([p, b]) => [p, new Uint8Array(b)])))
  }
  await log.close()
  return out
}

/** The checkpoint note of a files map. */
export const checkpointOf = (files: LogFilesMap) => Buffer.from(files.get('checkpoint')!).toString('utf8')

/** A copy of `files` with checkpoint note `note`. */
export function withCheckpoint(files: LogFilesMap, note: string): LogFilesMap {
  return new Map(files).set('checkpoint', new TextEncoder().encode(note))
}

/** A copy of `files` with byte `at` of file `path` XORed with 1 (negative `at` counts from the end). */
export function flipByte(files: LogFilesMap, path: string, at: number): LogFilesMap {
  const b = new Uint8Array(files.get(path)!)
  const i = at < 0 ? b.length + at : at
  b[i]! ^= 1
  return new Map(files).set(path, b)
}

/** Checkpoint text `text` signed by `signer` (the log key by default) and cosigned by `cosigners`. */
export function signedCheckpoint(text: string, cosigners: Cosigner[], signer = LOG_SIGNER): string {
  return signNote(text, [signer]) + cosignLines(text, cosigners)
}

/** The log's signature line of a checkpoint note (the first line after the blank line). */
export function logSignatureLine(note: string): string {
  return note.slice(note.lastIndexOf('\n\n') + 2).split('\n')[0]! + '\n'
}

export interface LogServer {
  url: string
  /** Serves `files` from now on (under /logs/{SPACE}/). */
  serve(files: LogFilesMap): void
  /** What /logs/{SPACE}/head shows as the log's vkey. */
  headVkey: string
  /** What /info shows as the witness policy. */
  policyText: string
  /** Paths under /logs/{SPACE}/ answered with this HTTP status instead of their file. */
  status: Map<string, number>
  /** Paths requested under /logs/{SPACE}/, in order. */
  requests: string[]
  /** fetchFile for auditLog: GET over HTTP, undefined on 404. */
  fetchFile(path: string): Promise<Uint8Array | undefined>
  close(): Promise<void>
}

/**
 * A ucanlog-shaped read server on 127.0.0.1 (ephemeral port): GET /info (the witness policy),
 * /logs/{SPACE}/head (origin and vkey) and /logs/{SPACE}/<tlog-tiles path> from the current map.
 */
export async function startLogServer(files: LogFilesMap, policyText = POLICY_TEXT): Promise<LogServer> {
  let current = files
  const requests: string[] = []
  const s: LogServer = {
    url: '',
    serve: (f) => (current = f),
    headVkey: LOG_SIGNER.vkey,
    policyText,
    status: new Map(),
    requests,
    fetchFile: async (path) => {
      const res = await fetch(`${s.url}/logs/${SPACE}/${path}`)
      return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
    },
    close: () => closeServer(server),
  }
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname
    const prefix = `/logs/${SPACE}/`
    if (path === '/info') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ witnessPolicy: s.policyText }))
    if (path === `${prefix}head`) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ origin: ORIGIN, vkey: s.headVkey }))
    const body = path.startsWith(prefix) ? current.get(path.slice(prefix.length)) : undefined
    if (path.startsWith(prefix)) requests.push(path.slice(prefix.length))
    const status = s.status.get(path.slice(prefix.length))
    if (status) return void res.writeHead(status).end(`status ${status}`)
    if (!body) return void res.writeHead(404).end('not found')
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.from(body))
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return s
}

/** The honest 12-entry log checkpointed at sizes 10 and 12, and a fork of it at 12 (entry 3 differs). */
export async function logAndFork(): Promise<{ small10: LogFilesMap; small12: LogFilesMap; forked12: LogFilesMap }> {
  const entries = Array.from({ length: 12 }, (_, i) => entry(i))
  const [small10, small12] = await buildLog(entries, [10, 12])
  const [forked12] = await buildLog(entries.map((e, i) => (i === 3 ? entry(3, ' (forked)') : e)), [12])
  return { small10: small10!, small12: small12!, forked12: forked12! }
}

/**
 * The client's reader of a log's public files (src/client/http.ts `httpLogFiles`) bounds what it
 * reads: a server (hostile, or broken) answering a tile or bundle path with more bytes than the
 * largest file tlog-tiles allows is refused with `UnexpectedAnswer` after at most that many bytes,
 * never buffered whole (the audit, the append verifier and the monitor all read through it).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_JSON_ANSWER_BYTES, MAX_LOG_FILE_BYTES, fetchLogHead, fetchServiceDID, fetchWitnessPolicy, httpLogFiles } from '../../src/client/http.js'

let server: Server
let url = ''
let endlessServer: Server
let endlessUrl = ''
let garbledServer: Server
let garbledUrl = ''
let sent = 0
/** Bytes written to the endless answers of /did, /head and /info. */
let sentSmall = 0

/** Writes 64 KiB chunks to `res` until the client hangs up, counting them with `count`. */
function endless(res: import('node:http').ServerResponse, count: (n: number) => void): void {
  const chunk = Buffer.alloc(1 << 16, 0x20)
  const pump = () => {
    while (!res.destroyed && res.write(chunk)) count(chunk.length)
    if (!res.destroyed) res.once('drain', pump)
  }
  res.on('close', () => res.removeAllListeners('drain'))
  pump()
}

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url?.endsWith('/tile/0/000')) {
      // An endless body without a content-length: 1 MiB chunks until the client hangs up.
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      const chunk = Buffer.alloc(1 << 20, 7)
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length
        if (!res.destroyed) res.once('drain', pump)
      }
      res.on('close', () => res.removeAllListeners('drain'))
      pump()
    } else if (req.url?.endsWith('/tile/0/001')) {
      // A content-length past the bound: refused before reading the body.
      res.writeHead(200, { 'content-length': String(MAX_LOG_FILE_BYTES + 1) })
      res.write(Buffer.alloc(16))
    } else if (req.url?.endsWith('/checkpoint')) {
      res.end('ok\n')
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  // Every route (/did, /logs/<space>/head, /info) answered with an endless body (JSON whitespace).
  endlessServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    endless(res, (n) => (sentSmall += n))
  })
  garbledServer = createServer((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"origin": '))
  for (const s of [endlessServer, garbledServer]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  endlessUrl = `http://127.0.0.1:${(endlessServer.address() as AddressInfo).port}`
  garbledUrl = `http://127.0.0.1:${(garbledServer.address() as AddressInfo).port}`
})
afterAll(async () => {
  for (const s of [server, endlessServer, garbledServer]) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

describe('the small answers (/did, /logs/<space>/head, /info)', () => {
  it('are read up to a bound: an endless body is refused UnexpectedAnswer, never buffered whole', async () => {
    for (const read of [
      () => fetchServiceDID(endlessUrl),
      () => fetchLogHead(endlessUrl, 'did:key:z6MkTest'),
      () => fetchWitnessPolicy(endlessUrl),
    ]) {
      sentSmall = 0
      await expect(read()).rejects.toMatchObject({ name: 'UnexpectedAnswer' })
      expect(sentSmall).toBeLessThan(MAX_JSON_ANSWER_BYTES + (4 << 20))
    }
  })
  it('name a body that is not JSON UnexpectedAnswer (not a SyntaxError)', async () => {
    await expect(fetchLogHead(garbledUrl, 'did:key:z6MkTest')).rejects.toMatchObject({ name: 'UnexpectedAnswer' })
    await expect(fetchWitnessPolicy(garbledUrl)).rejects.toMatchObject({ name: 'UnexpectedAnswer' })
  })
})

describe('httpLogFiles', () => {
  it('refuses an endless body with UnexpectedAnswer after at most the bound (plus a chunk)', async () => {
    const get = httpLogFiles(url, 'did:key:z6MkTest')
    await expect(get('tile/0/000')).rejects.toMatchObject({ name: 'UnexpectedAnswer' })
    expect(sent).toBeLessThan(MAX_LOG_FILE_BYTES + (8 << 20))
  })
  it('refuses a declared content-length past the bound without reading it', async () => {
    await expect(httpLogFiles(url, 'did:key:z6MkTest')('tile/0/001')).rejects.toMatchObject({ name: 'UnexpectedAnswer' })
  })
  it('still reads a small file and answers undefined on 404', async () => {
    const get = httpLogFiles(url, 'did:key:z6MkTest')
    expect(new TextDecoder().decode(await get('checkpoint'))).toBe('ok\n')
    expect(await get('tile/entries/000')).toBeUndefined()
  })
  it('bounds files to a full entry bundle: 256 entries of 65,535 bytes, each with its 2-byte length', () => {
    expect(MAX_LOG_FILE_BYTES).toBe(256 * (65535 + 2))
  })
})

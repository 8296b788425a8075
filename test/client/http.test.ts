/**
 * The client's reader of a log's public files (src/client/http.ts `httpLogFiles`) bounds what it
 * reads: a server (hostile, or broken) answering a tile or bundle path with more bytes than the
 * largest file tlog-tiles allows is refused with `UnexpectedAnswer` after at most that many bytes,
 * never buffered whole (the audit, the append verifier and the monitor all read through it).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_LOG_FILE_BYTES, httpLogFiles } from '../../src/client/http.js'

let server: Server
let url = ''
let sent = 0

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
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
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

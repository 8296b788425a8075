/**
 * The explorer's routes (src/server/explorer.ts): the same page at `/` and `/logs/<space>/` with a
 * strict CSP, its three assets, and nothing else (no other file, no path traversal, no space id
 * that is not a did:key). The page's behaviour is tested in Chromium (test/browser/explorer.test.ts).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { EXPLORER_CSP, explorerRoutes } from '../../src/server/explorer.js'
import { REPO } from '../e2e/helpers.js'

const SPACE = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const app = explorerRoutes(/^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/)

describe('explorer routes', () => {
  it('GET / and GET /logs/<space>/ answer explorer/index.html with the strict CSP, nosniff and no referrer', async () => {
    const html = await readFile(join(REPO, 'explorer', 'index.html'), 'utf8')
    for (const path of ['/', `/logs/${SPACE}/`]) {
      const res = await app.request(path)
      expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([200, 'text/html; charset=utf-8', html])
      expect(res.headers.get('content-security-policy')).toBe(EXPLORER_CSP)
      expect([res.headers.get('x-content-type-options'), res.headers.get('referrer-policy')]).toEqual(['nosniff', 'no-referrer'])
    }
    const moved = await app.request(`/logs/${SPACE}`)
    expect([moved.status, moved.headers.get('location')]).toEqual([301, `/logs/${SPACE}/`])
    expect(EXPLORER_CSP).toContain("script-src 'self'")
    expect(EXPLORER_CSP).not.toContain('unsafe')
  })

  it('serves the three assets with their types, and 404 for anything else', async () => {
    for (const [name, type] of [['explorer.js', 'text/javascript'], ['tlog.js', 'text/javascript'], ['explorer.css', 'text/css']]) {
      const res = await app.request(`/explorer/${name}`)
      expect([res.status, res.headers.get('content-type')?.split(';')[0], await res.text()]).toEqual([200, type, await readFile(join(REPO, 'explorer', name!), 'utf8')])
    }
    for (const path of ['/explorer/index.html', '/explorer/nope.js', '/explorer/..%2Fpackage.json', '/explorer/../package.json', '/logs/not-a-did/', `/logs/${SPACE}/x/`]) {
      expect((await app.request(path)).status, path).toBe(404)
    }
  })
})

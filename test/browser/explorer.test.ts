/**
 * The log explorer in a real browser: Debian's Chromium (scripts/ensure-chromium.sh installs it
 * when missing; the test fails, never skips, when it cannot) driven by playwright-core against a
 * real service with the bundled witness and 300 entries appended through the client library.
 * Everything asserted as verified is computed by the page's own script from the public tiles:
 * paging, an inclusion proof, a consistency check between a checkpoint the page saw earlier and
 * the latest, a new checkpoint found by the page's poll; the tree-size chart of a fresh browser
 * drawn from the service's history (marked apart from the points it verified); the same page against a copy of the tiles
 * on another origin (`?base=`); a pasted key; and, after one byte of a tile file is flipped on
 * disk, the failure. Screenshots: test-artifacts/explorer/.
 */
import { execFileSync } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, normalize } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createClient, createKey, delegateSpaceToAgent, formatDelegation, type UcanlogClient } from '../../src/client/index.js'
import { EXPLORER_CSP } from '../../src/server/explorer.js'
import { ed25519Signer } from '../../src/tlog/index.js'
import { closeServer } from '../helpers/loopback.js'
import { REPO, startTestService } from '../e2e/helpers.js'

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
const ARTIFACTS = join(REPO, 'test-artifacts', 'explorer')

let svc: Awaited<ReturnType<typeof startTestService>>
let browser: Browser
let client: UcanlogClient
let space: string
let logUrl: string

/** Entry i: text, except every 7th, which is binary, and entry 5, valid UTF-8 with a right-to-left override (both shown as hex). */
const entryBytes = (i: number) =>
  i % 7 === 3 ? new Uint8Array([0xff, 0x00, i & 0xff, 0x80, 0x01]) : new TextEncoder().encode(i === 5 ? 'invoice \u202egnp.exe' : `explorer entry ${i}: {"event":"deploy","n":${i}}`)

async function append(from: number, to: number) {
  const out = await client.append(Array.from({ length: to - from }, (_, k) => entryBytes(from + k)))
  expect(out.filter((o) => !o.ok?.published)).toEqual([])
}

/** expect.poll with room for a loaded 2-core machine (the page hashes with WebCrypto, one await per node). */
const poll = <T>(f: () => Promise<T> | T) => expect.poll(f, { timeout: 20_000 })

beforeAll(async () => {
  // Never skipped: without Chromium (and no way to install it) this throws and the file fails.
  execFileSync('sh', [join(REPO, 'scripts', 'ensure-chromium.sh')], { stdio: 'inherit', env: { ...process.env, CHROMIUM } })
  await mkdir(ARTIFACTS, { recursive: true })
  svc = await startTestService()
  const s = await createKey()
  const agent = await createKey()
  const proof = await formatDelegation(await delegateSpaceToAgent({ space: s, agent }))
  client = await createClient({ url: svc.url, agent, proof })
  space = s.did()
  logUrl = `${svc.url}/logs/${space}/`
  await append(0, 100)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})
afterAll(async () => {
  await browser?.close()
  await svc?.stop()
})

describe('the log explorer in Chromium', () => {
  it('lists the logs, pages through entries, verifies an inclusion proof and a consistency proof in the page', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // Every failed request, except the revocation log's checkpoint: it has published nothing here.
    page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/revocations/checkpoint') && errors.push(`${r.status()} ${r.url()}`))

    // The page with a strict CSP, first at 100 entries: the browser verifies and remembers the checkpoint.
    const res = await page.goto(logUrl)
    expect(res!.headers()['content-security-policy']).toBe(EXPLORER_CSP)
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
    expect(await page.locator('#tree-size').textContent()).toBe('100')

    // 200 more entries; the reload sees 300 and keeps the signed checkpoint of 100 for the consistency check.
    await append(100, 300)
    await page.reload()
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
    expect(await page.locator('#checkpoint-status').textContent()).toContain('witness quorum met')
    expect(await page.locator('#tree-size').textContent()).toBe('300')
    expect(await page.locator('#cosignatures tr td.ok').count()).toBe(1) // the bundled witness
    await poll(() => page.locator('#size-chart circle[data-kind="verified"]').count()).toBe(2)

    // Paging: 25 per page; text as text, binary as hex.
    await poll(() => page.locator('tr.entry').count()).toBe(25)
    expect(await page.locator('tr.entry[data-index="5"] td.hex').textContent()).toBe(Buffer.from('invoice \u202egnp.exe').toString('hex'))
    await page.click('#next')
    await poll(() => page.locator('#range').textContent()).toContain('entries 25–49 of 300')
    await page.click('#next')
    await poll(() => page.locator('#range').textContent()).toContain('entries 50–74 of 300')
    expect(await page.locator('tr.entry[data-index="52"] td.hex').textContent()).toBe('ff0034800' + '1')
    expect(await page.locator('tr.entry[data-index="51"] td.text').textContent()).toBe('explorer entry 51: {"event":"deploy","n":51}')

    // Click one: its inclusion proof is built from the tiles and verified in the page.
    await page.click('tr.entry[data-index="60"]')
    await poll(() => page.locator('#inclusion-status').getAttribute('data-state')).toBe('ok')
    expect(await page.locator('#inclusion-status').textContent()).toContain('inclusion verified: entry 60')
    expect(await page.locator('#entry-content').textContent()).toBe('explorer entry 60: {"event":"deploy","n":60}')
    await page.screenshot({ path: join(ARTIFACTS, 'log-inclusion.png'), fullPage: true })

    // Consistency 100 → 300, the old root from the checkpoint this browser verified at 100.
    expect(await page.locator('#old-size').inputValue()).toBe('100')
    await page.click('#check-consistency')
    await poll(() => page.locator('#consistency-status').getAttribute('data-state')).toBe('ok')
    expect(await page.locator('#consistency').textContent()).toContain('checkpoint seen earlier (signed)')
    // Between two sizes the browser never saw (roots from the tiles): 37 → 256.
    await page.fill('#old-size', '37')
    await page.fill('#new-size', '256')
    await page.click('#check-consistency')
    await poll(() => page.locator('#consistency-status').textContent()).toContain('consistency verified: the tree of 37 entries is a prefix of the tree of 256')
    await page.screenshot({ path: join(ARTIFACTS, 'log-consistency.png'), fullPage: true })
    // docs/explorer.png is this view, shortened: no key, chart or consistency panel, ten entries (copied by hand into docs/).
    await page.evaluate(`document.querySelectorAll('#keys, #chart, #consistency, #base, tr.entry').forEach((e) => (e.dataset.index >= 56 && e.dataset.index < 66) || e.remove())`)
    await page.screenshot({ path: join(ARTIFACTS, 'readme.png'), fullPage: true })

    // The list of logs: this one with its size; the policy with the bundled witness.
    await page.goto(`${svc.url}/`)
    const row = page.locator('#log-table tr.log', { hasText: space })
    await poll(() => row.locator('td').nth(1).textContent()).toBe('300')
    await poll(() => row.locator('td').nth(2).textContent()).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) // the newest cosignature's time
    expect(await row.locator('td').nth(3).textContent()).toBe('uploads off') // upload lag: this service has no Storacha uploads
    expect(await page.locator('#policy').textContent()).toContain('bundled')
    await page.screenshot({ path: join(ARTIFACTS, 'list.png'), fullPage: true })

    // An open log page polls (?poll=2): the next checkpoint is verified in the page and joins the chart.
    await page.goto(`${logUrl}?poll=2`)
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
    await append(300, 310)
    await poll(() => page.locator('#live-status').textContent()).toContain('new checkpoint verified: size 310')
    expect(await page.locator('#size-chart circle[data-kind="verified"]').count()).toBe(3)
    expect(errors).toEqual([])
    await context.close()
  })

  it("a fresh browser's chart draws the service's history (its claim), marked apart from what the page verified", async () => {
    // 310 entries appended in several publications (100, then 200, then 10; the batches split them further).
    const history = ((await (await fetch(`${logUrl}history`)).json()) as { points: { size: number }[] }).points
    expect(history.length).toBeGreaterThanOrEqual(3)
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } }) // no local history
    const page = await context.newPage()
    await page.goto(logUrl)
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
    // The latest checkpoint, verified here, is drawn once as verified; the earlier ones as the service's.
    await poll(() => page.locator('#size-chart circle[data-kind="verified"]').count()).toBe(1)
    const service = await page.locator('#size-chart circle[data-kind="service"]').count()
    expect(service).toBeGreaterThanOrEqual(2)
    expect(service).toBe(history.length - 1)
    expect(await page.locator('#size-chart circle[data-kind="conflict"]').count()).toBe(0)
    expect(await page.locator('#chart-caption').textContent()).toContain(`1 checkpoints verified by this browser (filled green; kept locally, last 500); ${service} points of the service's history (hollow grey): the service's own claim`)
    await page.locator('#chart').screenshot({ path: join(ARTIFACTS, 'chart-history.png') })
    await context.close()
  })

  it('works against a copy of the tiles served elsewhere (?base=, the log key pasted in the URL)', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'explorer-copy-'))
    await cp(join(svc.dataDir, 'logs', space), copy, { recursive: true })
    const server = await staticServer(copy)
    try {
      const vkey = ((await (await fetch(`${logUrl}head`)).json()) as { vkey: string }).vkey
      const context = await browser.newContext()
      const page = await context.newPage()
      await page.goto(`${svc.url}/?base=${encodeURIComponent(server.url + '/')}&vkey=${encodeURIComponent(vkey)}`)
      await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
      expect(await page.locator('#base').textContent()).toContain(server.url)
      // No history route on a copy of the tiles: the chart falls back to what this browser verified.
      await poll(() => page.locator('#chart-caption').textContent()).toContain('This source serves no checkpoint history')
      expect(await page.locator('#size-chart circle[data-kind="verified"]').count()).toBe(1)
      expect(await page.locator('#size-chart circle[data-kind="service"]').count()).toBe(0)
      await page.click('tr.entry[data-index="3"]')
      await poll(() => page.locator('#inclusion-status').textContent()).toContain('inclusion verified: entry 3')
      expect(await page.locator('#entry-content').textContent()).toBe('ff0003800' + '1')
      expect(server.requests.some((p) => p.startsWith('/tile/0/'))).toBe(true)
      // Another key than the log's: the page refuses the checkpoint.
      const other = vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')
      await page.goto(`${svc.url}/?base=${encodeURIComponent(server.url + '/')}&vkey=${encodeURIComponent(other)}`)
      await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('failed')
      await context.close()
    } finally {
      await closeServer(server.server)
      await rm(copy, { recursive: true, force: true })
    }
  })

  it('reports the failure when one byte of a tile on the proof path is flipped on disk', async () => {
    // Entry 60's sibling (61) is a hash of level-0 tile 0, on its proof path.
    const file = join(svc.dataDir, 'logs', space, 'tile', '0', '000')
    const bytes = await readFile(file)
    bytes[61 * 32 + 7]! ^= 0x01
    await writeFile(file, bytes)
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } }) // nothing cached
    const page = await context.newPage()
    await page.goto(logUrl)
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('ok')
    await page.fill('#goto', '60')
    await page.click('#goto-button')
    await page.click('tr.entry[data-index="60"]')
    await poll(() => page.locator('#inclusion-status').getAttribute('data-state')).toBe('failed')
    expect(await page.locator('#inclusion-status').textContent()).toContain("inclusion FAILED: the root computed from the proof is not the checkpoint's")
    // The consistency proof from 100 to the signed latest root needs hashes of that tile too.
    await page.fill('#old-size', '100')
    await page.click('#check-consistency')
    await poll(() => page.locator('#consistency-status').textContent()).toContain('consistency FAILED: the proof does not lead to the root of size')
    await page.screenshot({ path: join(ARTIFACTS, 'tampered-tile.png'), fullPage: true })
    // Entry 61's own leaf hash is the flipped one: the page says the tile disagrees with the entry.
    await page.click('tr.entry[data-index="61"]')
    await poll(() => page.locator('#inclusion-status').textContent()).toContain('inclusion FAILED: the leaf hash stored in tile 0')

    // The user's own key, pasted and pinned: a key other than the log's fails the checkpoint, and
    // neither the service's /head nor a link's ?vkey= replaces the pin.
    const origin = (await page.locator('#checkpoint table td.mono').first().textContent())!
    await page.fill('#vkey', ed25519Signer(origin, new Uint8Array(32).fill(9)).vkey)
    await page.click('#pin')
    await poll(() => page.locator('#checkpoint-status').textContent()).toContain('checkpoint FAILED: the log signature does not verify with this key')
    expect(await page.locator('#key-warning').textContent()).toContain('The service names another key')
    const headVkey = ((await (await fetch(`${logUrl}head`)).json()) as { vkey: string }).vkey
    await page.goto(`${logUrl}?vkey=${encodeURIComponent(headVkey)}`)
    await poll(() => page.locator('#checkpoint-status').getAttribute('data-state')).toBe('failed')
    expect(await page.locator('#key-warning').textContent()).toContain('The link names another key')
    await context.close()
  })
})

/** A plain static file server for `dir` on loopback (a stand-in for a gateway), with CORS like a gateway. */
async function staticServer(dir: string): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = []
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname)
    requests.push(path)
    const file = normalize(join(dir, path))
    if (!file.startsWith(dir)) return void res.writeHead(400).end()
    try {
      const body = await readFile(file)
      res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404, { 'access-control-allow-origin': '*' }).end('not found')
    }
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests }
}

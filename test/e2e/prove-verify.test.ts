/**
 * `ucanlog prove` and `ucanlog verify` (issue 13 item 3), as built CLI processes (`npm run build`
 * first) against a real service with the bundled witness: a bundle proved by index and by entry
 * file verifies offline with the service stopped (keys from the trust store, or from flags); one
 * flipped byte anywhere in the bundle — in every decoded field, and in the JSON text itself — fails
 * with a named verification error; a wrong pinned key fails.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ProofBundle, formatProofBundle, parseProofBundle, verifyProofBundle } from '../../src/client/proof-bundle.js'
import { loadTrust } from '../../src/client/trust-store.js'
import type { CheckpointAnchors } from '../../src/client/verify-checkpoint.js'
import { ed25519Signer, encodeBase64, leafHash, parsePolicy } from '../../src/tlog/index.js'
import { REPO, startTestService } from './helpers.js'
import { BUNDLE_CHECKS, bundleFlips, outcome } from '../helpers/bundle-flips.js'
import { type Writer, newWriter } from './read-helpers.js'

const BIN = join(REPO, 'bin', 'ucanlog.js')
const exec = promisify(execFile)
type Svc = Awaited<ReturnType<typeof startTestService>>

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(process.execPath, [BIN, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )
}

const ENTRIES = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`prove entry ${i} ${'x'.repeat(i)}`))

let tmp: string
let svc: Svc | undefined
let writer: Writer
let url: string
let state: string
let head: { origin: string; vkey: string }
let policyText: string
let policyFile: string
/** The bundle `prove --index` printed, and the entry it is of. */
let bundleText: string
let proved: { index: number; entry: Uint8Array }

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ucanlog-prove-'))
  state = join(tmp, 'state')
  svc = await startTestService()
  url = svc.url
  writer = await newWriter()
  const results = await writer.append(svc.url, svc.did, ENTRIES)
  proved = { index: results[17]!.index, entry: ENTRIES[17]! }
  head = (await (await fetch(`${url}/logs/${writer.space}/head`)).json()) as { origin: string; vkey: string }
  policyText = ((await (await fetch(`${url}/info`)).json()) as { witnessPolicy: string }).witnessPolicy
  policyFile = join(tmp, 'policy.txt')
  await writeFile(policyFile, policyText)
}, 120_000)

afterAll(async () => {
  await svc?.stop()
  await rm(tmp, { recursive: true, force: true })
})

const anchors = (): CheckpointAnchors => ({ origin: head.origin, logVkey: head.vkey, policy: parsePolicy(policyText), now: Math.floor(Date.now() / 1000) })

describe('ucanlog prove (built CLI, service running)', () => {
  it('--index N prints a bundle that verifies, pinning the log key, policy and checkpoint like audit', async () => {
    const r = await cli(['prove', '--url', url, '--space', writer.space, '--index', String(proved.index), '--state', state])
    expect(r.stderr).toContain('note: first proof of this log: trusting the log key')
    expect(r.code).toBe(0)
    bundleText = r.stdout
    const b = parseProofBundle(bundleText)
    expect(b).toMatchObject({ format: 'ucanlog-proof-bundle/v1', origin: head.origin, index: proved.index, entry: proved.entry, leafHash: leafHash(proved.entry) })
    expect(b.checkpoint).toContain(`${head.origin}\n${ENTRIES.length}\n`)
    verifyProofBundle(b, anchors())
    const pinned = await loadTrust(state, writer.space)
    expect(pinned).toMatchObject({ origin: head.origin, logVkey: head.vkey, policy: policyText, last: { size: ENTRIES.length } })
  })

  it('--entry FILE finds the index by lookup and prints the same bundle', async () => {
    const file = join(tmp, 'entry.bin')
    await writeFile(file, proved.entry)
    const r = await cli(['prove', '--url', url, '--space', writer.space, '--entry', file, '--state', state])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(bundleText)
  })

  it('an index past the published tree: exit 3, EntryNotFound; an entry not in the log: exit 3, EntryNotFound', async () => {
    const r = await cli(['prove', '--url', url, '--space', writer.space, '--index', String(ENTRIES.length), '--state', state])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: EntryNotFound: entry 40 is not in the published tree of 40 entries\n$/)
    const file = join(tmp, 'absent.bin')
    await writeFile(file, 'never appended')
    const a = await cli(['prove', '--url', url, '--space', writer.space, '--entry', file, '--state', state, '--json'])
    expect(a.code).toBe(3)
    expect(JSON.parse(a.stdout)).toMatchObject({ error: { name: 'EntryNotFound', exitCode: 3 } })
  })

  it('a wrong log key given: exit 3, LogSignatureInvalid; another key pinned: exit 3, LogKeyChanged; nothing printed', async () => {
    const other = join(tmp, 'other-state')
    const wrong = ed25519Signer(head.origin, new Uint8Array(32).fill(5)).vkey
    const r = await cli(['prove', '--url', url, '--space', writer.space, '--index', '0', '--state', other, '--log-vkey', wrong])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: LogSignatureInvalid: /)
    expect(r.stdout).toBe('')
    const pinned = JSON.parse(await readFile(join(state, `${writer.space}.json`), 'utf8')) as object
    await mkdir(other, { recursive: true })
    await writeFile(join(other, `${writer.space}.json`), JSON.stringify({ ...pinned, logVkey: wrong }))
    const p = await cli(['prove', '--url', url, '--space', writer.space, '--index', '0', '--state', other])
    expect(p.code).toBe(3)
    expect(p.stderr).toMatch(/^ucanlog: LogKeyChanged: the service now shows log key /)
    expect(p.stdout).toBe('')
  })
})

describe('ucanlog verify (built CLI, service stopped: offline)', () => {
  beforeAll(async () => {
    await svc!.stop()
    svc = undefined
    await writeFile(join(tmp, 'bundle.json'), bundleText)
  })

  it('verifies with the keys pinned in --state, and with --log-vkey and --witness-policy alone; --json', async () => {
    const r = await cli(['verify', '--state', state, join(tmp, 'bundle.json')])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^proof OK: entry ${proved.index} of ${head.origin.replace(/[.+]/g, '\\$&')}\n`))
    const j = await cli(['verify', '--state', join(tmp, 'empty'), '--log-vkey', head.vkey, '--witness-policy', policyFile, '--json', join(tmp, 'bundle.json')])
    expect(j.code).toBe(0)
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, origin: head.origin, index: proved.index, treeSize: ENTRIES.length, leafHash: encodeBase64(leafHash(proved.entry)) })
  })

  it('nothing pinned and no flags: exit 1, says what to give', async () => {
    const r = await cli(['verify', '--state', join(tmp, 'empty'), join(tmp, 'bundle.json')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/give --log-vkey and --witness-policy, or run `ucanlog audit` of that log first/)
  })

  it('a wrong log key (flag or pinned): exit 3, LogSignatureInvalid', async () => {
    const wrong = ed25519Signer(head.origin, new Uint8Array(32).fill(6)).vkey
    const r = await cli(['verify', '--state', state, '--log-vkey', wrong, join(tmp, 'bundle.json')])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^ucanlog: LogSignatureInvalid: /)
    const file = join(state, `${writer.space}.json`)
    const pinned = JSON.parse(await readFile(file, 'utf8')) as { logVkey: string }
    await writeFile(file, JSON.stringify({ ...pinned, logVkey: wrong }))
    try {
      const p = await cli(['verify', '--state', state, '--json', join(tmp, 'bundle.json')])
      expect(p.code).toBe(3)
      expect(JSON.parse(p.stdout)).toMatchObject({ error: { name: 'LogSignatureInvalid', exitCode: 3 } })
    } finally {
      await writeFile(file, JSON.stringify(pinned))
    }
  })

  it('one flipped byte in each field: exit 3 with the named check (CLI, one per field)', async () => {
    const b = parseProofBundle(bundleText)
    const flip = (x: Uint8Array, at = 0) => {
      const y = new Uint8Array(x)
      y[at]! ^= 1
      return y
    }
    const cases: [string, ProofBundle, string][] = [
      ['origin', { ...b, origin: b.origin.replace(/.$/, (c) => String.fromCharCode(c.charCodeAt(0) ^ 1)) }, 'OriginMismatch'],
      ['index', { ...b, index: b.index ^ 1 }, 'InclusionProofInvalid'],
      ['leafHash', { ...b, leafHash: flip(b.leafHash) }, 'LeafHashMismatch'],
      ['entry', { ...b, entry: flip(b.entry) }, 'LeafHashMismatch'],
      ['inclusionProof', { ...b, inclusionProof: [flip(b.inclusionProof[0]!), ...b.inclusionProof.slice(1)] }, 'InclusionProofInvalid'],
      ['checkpoint', { ...b, checkpoint: b.checkpoint.replace(`\n${ENTRIES.length}\n`, `\n${ENTRIES.length ^ 1}\n`) }, 'LogSignatureInvalid'],
    ]
    for (const [field, bad, name] of cases) {
      const file = join(tmp, `bad-${field}.json`)
      await writeFile(file, formatProofBundle(bad))
      const r = await cli(['verify', '--log-vkey', head.vkey, '--witness-policy', policyFile, file])
      expect({ field, code: r.code, stderr: r.stderr.split(':').slice(0, 2).join(':') }).toEqual({ field, code: 3, stderr: `ucanlog: ${name}` })
    }
  })
})

describe('verifyProofBundle: every flipped byte fails with a named error', () => {
  const fails = (text: string) => outcome(text, anchors())

  it('the untouched bundle verifies (so each failure below is the flip\'s)', () => {
    expect(bundleText).toMatch(/^{/)
    expect(fails(bundleText)).toBe('verified')
  })

  it('each byte of each decoded field, each bit of the index, each byte of the JSON text (test/helpers/bundle-flips.ts)', () => {
    let tried = 0
    for (const f of bundleFlips(bundleText)) {
      const r = fails(f.text)
      if (!BUNDLE_CHECKS.has(r)) expect.fail(`${f.what} flipped: ${r}`)
      tried++
    }
    expect(tried).toBeGreaterThan(1000)
  })
})

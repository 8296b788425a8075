/**
 * Verified appends over HTTP, end to end: a real service with its bundled witness on loopback, the
 * library's AppendVerifier pinning into a trust store, and the built `ucanlog audit` (bin/ucanlog.js,
 * `npm run build` first) sharing that store.
 *
 * - A forging HTTP proxy in front of the real service (it holds the service key, as a compromised
 *   service would) replaces each receipt's checkpoint with one log-signed by another key: refused
 *   with LogSignatureInvalid, where `checkAppendResult` (what `ucanlog append` ran) accepted it.
 * - Appends and audits see each other's last checkpoint: an audit after a verified append trusts
 *   nothing anew and checks consistency with the append's checkpoint, and the next append run
 *   checks consistency with the audit's.
 * - A second service with the same keys and other entries (a fork of the log) is refused by both.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type * as API from '@ucanto/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkAppendResult } from '../../src/client/receipt.js'
import { loadTrust } from '../../src/client/trust-store.js'
import { verifyServiceReceipt } from '../../src/client/verify-append.js'
import { openAppendVerification } from '../../src/client/verify-session.js'
import { ed25519Signer, parseNote, signNote } from '../../src/tlog/index.js'
import { appendInvocation, connect, createInvocation, delegateAgentToService, delegateSpaceToAgent, generateKey, type Key } from '../../src/ucan/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'
import { startForgingProxy } from '../helpers/forging-proxy.js'
import { startSameKeysService } from '../helpers/same-keys-service.js'
import { REPO, startTestService } from './helpers.js'

const exec = promisify(execFile)
type Svc = Awaited<ReturnType<typeof startTestService>>
let svc: Svc
let fork: Svc // the same service and witness keys, another log for the same space
let state: string
let space: Key
let agent: Key

beforeAll(async () => {
  svc = await startTestService()
  fork = await startSameKeysService(svc)
  state = await mkdtemp(join(tmpdir(), 'ucanlog-e2e-state-'))
  space = await generateKey()
  agent = await generateKey()
})
afterAll(async () => {
  await svc?.stop()
  await fork?.stop()
  await rm(state, { recursive: true, force: true })
})

/**
 * One verified append run as a client does it (what `ucanlog append` and the library's `append()`
 * call): open the run on the trust store (trust on first use; a new space's log created with
 * `tlog/create`, its receipt checked), append `entries` through `url`, verify every receipt, finish
 * (settle and pin). Returns the run's notes, what each receipt verified as, and the pinned size.
 */
async function appendRun(url: string, serviceDid: string, entries: string[]): Promise<{ notes: string[]; statuses: string[]; size: number | undefined }> {
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const agentToService = await delegateAgentToService({ agent, service: serviceDid as API.DID, proofs: [spaceToAgent], space: space.did() })
  const conn = connect(`${url}/rpc`, serviceDid as API.DID)
  const run = await openAppendVerification({
    url,
    space: space.did(),
    stateDir: state,
    createLog: async (did) => {
      const inv = await createInvocation({ agent, service: did as API.DID, space: space.did(), agentToService })
      const [receipt] = await conn.execute(inv)
      await verifyServiceReceipt(receipt as unknown as API.Receipt, did!, (await inv.delegate()).cid)
      return (receipt!.out as { ok: { origin: string; vkey: string } }).ok
    },
  })
  const statuses: string[] = []
  for (const e of entries) {
    const entry = new TextEncoder().encode(e)
    const inv = await appendInvocation({ agent, service: serviceDid as API.DID, space: space.did(), entry, agentToService })
    const [receipt] = await conn.execute(inv)
    statuses.push((await run.verifier.verifyReceipt(receipt as unknown as API.Receipt, entry, (await inv.delegate()).cid)).status)
  }
  const settled = await run.finish()
  return { notes: run.notes, statuses, size: settled.last?.size }
}

async function audit(url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), 'audit', '--space', space.did(), '--url', url, '--state', state]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )
}

describe('verified appends over HTTP', () => {
  it('honest appends verify, pin the log in the trust store, and the built `ucanlog audit` shares it', async () => {
    // First run on a new space: /head is 404, the log is created (tlog/create) and its key trusted on first use.
    expect((await fetch(`${svc.url}/logs/${space.did()}/head`)).status).toBe(404)
    const run1 = await appendRun(svc.url, svc.did, ['e0', 'e1', 'e2', 'e3'])
    expect(run1.statuses).toEqual(['verified', 'verified', 'verified', 'verified'])
    expect(run1.notes).toHaveLength(3) // service DID, log key and policy trusted on first use
    expect(run1.size).toBe(4)

    // The audit pins nothing anew: it checks consistency with the append's checkpoint.
    const a1 = await audit(svc.url)
    expect(a1.stderr).toBe('')
    expect(a1.code).toBe(0)
    expect(a1.stdout).toContain('  consistency      verified with the size 4 seen last time\n')

    // The next append run starts from the audit's pin, and is consistent with it.
    const run2 = await appendRun(svc.url, svc.did, ['e4'])
    expect(run2).toEqual({ notes: [], statuses: ['verified'], size: 5 })
    expect((await loadTrust(state, space.did()))?.serviceDid).toBe(svc.did) // the audit kept the DID append pinned
    expect((await audit(svc.url)).stdout).toContain('verified with the size 5 seen last time')
  })

  it('through a proxy that forges each checkpoint (log-signed by another key): LogSignatureInvalid, nothing pinned', async () => {
    const origin = `ucanlog/logs/${space.did()}`
    const forger = ed25519Signer(origin, new Uint8Array(32).fill(7))
    const forged: AppendResult[] = []
    const proxy = await startForgingProxy(svc, (r) => {
      const f = { ...r, checkpoint: signNote(parseNote(r.checkpoint).text, [forger]) }
      forged.push(f)
      return f
    })
    const honest = await startForgingProxy(svc, (r) => r) // the same proxy re-signing without altering: verified
    try {
      expect((await appendRun(honest.url, svc.did, ['via the proxy'])).statuses).toEqual(['verified'])
    } finally {
      await honest.close()
    }
    try {
      const before = await loadTrust(state, space.did())
      const err = await appendRun(proxy.url, svc.did, ['forged?']).catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'LogSignatureInvalid', exitCode: 3 })
      expect(await loadTrust(state, space.did())).toEqual(before)
      // What the CLI checked until now accepts the same receipt.
      expect(() => checkAppendResult(forged[0]!, new TextEncoder().encode('forged?'))).not.toThrow()
    } finally {
      await proxy.close()
    }
  })

  it('a fork (a second service with the same keys, other entries): the append run and the audit both refuse it', async () => {
    const pinned = (await loadTrust(state, space.did()))!.last!.size
    const spaceToAgent = await delegateSpaceToAgent({ space, agent })
    const conn = connect(`${fork.url}/rpc`, fork.did as API.DID)
    for (let i = 0; i <= pinned; i++) {
      await conn.execute(await appendInvocation({ agent, service: fork.did as API.DID, space: space.did(), entry: new TextEncoder().encode(`fork ${i}`), spaceToAgent }))
    }
    const err = await appendRun(fork.url, fork.did, ['on the fork']).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'LogForked', exitCode: 3 })
    const a = await audit(fork.url)
    expect(a.code).toBe(3)
    expect(a.stderr).toMatch(/^ucanlog: LogForked: /)
    expect((await loadTrust(state, space.did()))!.last!.size).toBe(pinned)
  })
})

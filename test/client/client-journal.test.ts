/**
 * The library's opt-in journal (issue 12 item 3, "the CLI (and the library, opt-in)"):
 * `client.append(entries, { journal })` runs on the same pipeline as `ucanlog append --journal`
 * (append-batch.ts). A fault proxy (test/cli/fault-proxy.ts) in front of the real service lets
 * the service run an append and drops its answer; the batch stops with the entry
 * `ServiceUnreachable`. The same call again, with the same journal, against the service itself,
 * resends the very invocation (the replay guard answers the first result) and sends nothing for
 * the entries already answered: every entry is in the log exactly once.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { JournalMismatchError, createClient, createKey, delegateSpaceToAgent, formatDelegation } from '../../src/client/index.js'
import { counts, readLog } from '../cli/append-helpers.js'
import { type FaultProxy, startFaultProxy } from '../cli/fault-proxy.js'
import { serviceForFile } from '../e2e/helpers.js'

const svc = serviceForFile()
let proxy: FaultProxy | undefined
let dir: string | undefined
afterEach(async () => {
  await proxy?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
  proxy = dir = undefined
})

describe('client.append with a journal', () => {
  it('a dropped answer, then the same call with the same journal: nothing appended twice, nothing lost', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ucanlog-client-journal-'))
    const journal = join(dir, 'app.journal')
    const space = await createKey()
    const agent = await createKey()
    const proof = await formatDelegation(await delegateSpaceToAgent({ space, agent }))
    const entries = Array.from({ length: 8 }, (_, i) => new TextEncoder().encode(`library-${i}`))
    // POST 1 is tlog/create, 2 the journal's tlog/read of the log's size, 3.. the appends (one at a
    // time): from the 6th on, the service runs the request and its answer never comes back.
    proxy = await startFaultProxy(svc().url, (n) => (n >= 6 ? 'drop-answer' : 'pass'))
    const faulty = await createClient({ url: proxy.url, agent, proof, serviceDID: svc().did as `did:key:${string}` })
    const first = await faulty.append(entries, { journal, concurrency: 1 })
    const answered = first.filter((o) => o.status === 'appended')
    expect(answered.length).toBeGreaterThan(0)
    expect(first.some((o) => o.error?.name === 'ServiceUnreachable')).toBe(true)
    expect(first.every((o) => o.status === 'appended' || o.error?.name === 'ServiceUnreachable')).toBe(true)
    const afterFirst = await readLog(svc().url, svc().did, space.did())
    expect(afterFirst.length).toBeGreaterThan(answered.length) // a dropped answer's append did happen

    const client = await createClient({ url: svc().url, agent, proof })
    const second = await client.append(entries, { journal, concurrency: 3 })
    expect(second.map((o) => o.error)).toEqual(entries.map(() => undefined))
    // Answered in the first call: recorded, not sent again.
    for (const o of answered) expect(second[o.input]!.status).toBe('already-appended')
    const log = await readLog(svc().url, svc().did, space.did())
    expect([...counts(log).entries()].sort()).toEqual(entries.map((e) => [new TextDecoder().decode(e), 1]).sort())
    // Each outcome's index holds its entry's bytes (the resent invocation got its first result).
    for (const o of second) expect(log[o.index!]).toEqual(o.entry)

    // The same journal with other entries is refused before anything is sent.
    await expect(client.append([new Uint8Array([1])], { journal })).rejects.toBeInstanceOf(JournalMismatchError)
    expect((await readLog(svc().url, svc().did, space.did())).length).toBe(entries.length)
  })
})

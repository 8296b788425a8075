/**
 * Issue 12 item 6, a unique origin by default: two services with fresh data directories and no
 * `--origin-prefix` give the same space different origins (c2sp.org/tlog-checkpoint: the origin
 * names one log, and a witness that knows one refuses the other's checkpoints forever); a data
 * directory keeps its origins across restarts, including one created before the default changed;
 * an explicit prefix still works, and one that contradicts the data directory's is refused.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { REPO, call, startTestService } from './helpers.js'

type Svc = Awaited<ReturnType<typeof startTestService>>

let space: Awaited<ReturnType<typeof generateKey>>
let agent: Awaited<ReturnType<typeof generateKey>>
let root: string
beforeAll(async () => {
  space = await generateKey()
  agent = await generateKey()
  root = await mkdtemp(join(tmpdir(), 'ucanlog-origin-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

/** Appends `text` to the test space's log on `svc` and returns the receipt's origin. */
async function appendOne(svc: Svc, text: string): Promise<string> {
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  const inv = await appendInvocation({ agent, service: svc.did as `did:key:${string}`, space: space.did(), entry: new TextEncoder().encode(text), spaceToAgent })
  const out = await call(svc.url, await inv.delegate())
  expect(out.error, JSON.stringify(out.error)).toBeUndefined()
  return (out.ok as { origin: string }).origin
}

async function info(svc: Svc): Promise<{ originPrefix: string }> {
  return (await (await fetch(`${svc.url}/info`)).json()) as { originPrefix: string }
}

describe('default origin prefix', () => {
  it('two services with fresh data directories give the same space different, host-like origins', async () => {
    const a = await startTestService({ dataDir: join(root, 'a'), originPrefix: 'auto' })
    const b = await startTestService({ dataDir: join(root, 'b'), originPrefix: 'auto' })
    try {
      const [oa, ob] = [await appendOne(a, 'one'), await appendOne(b, 'one')]
      expect(oa).not.toBe(ob)
      for (const o of [oa, ob]) expect(o).toMatch(new RegExp(`^[a-z2-7]{16}\\.ucanlog\\.local/logs/${space.did()}$`))
      expect(oa).toBe(`${(await info(a)).originPrefix}/logs/${space.did()}`)
      // Stored in the data directory, so it survives any change of the default.
      expect((await readFile(join(root, 'a', 'origin-prefix'), 'utf8')).trim()).toBe((await info(a)).originPrefix)
    } finally {
      await a.stop()
      await b.stop()
    }
  })

  it('a restart keeps the origin, and the log keeps growing under it', async () => {
    const dataDir = join(root, 'restart')
    const first = await startTestService({ dataDir, originPrefix: 'auto' })
    const origin = await appendOne(first, 'before')
    await first.stop()
    const again = await startTestService({ dataDir, originPrefix: 'auto' })
    try {
      expect(await appendOne(again, 'after')).toBe(origin)
      const head = (await (await fetch(`${again.url}/logs/${space.did()}/head`)).json()) as { origin: string; treeSize: number }
      expect(head).toMatchObject({ origin, treeSize: 2 })
    } finally {
      await again.stop()
    }
  })

  it('a data directory from before this default keeps its "ucanlog" origins', async () => {
    const dataDir = join(root, 'legacy')
    const old = await startTestService({ dataDir, originPrefix: 'ucanlog' })
    expect(await appendOne(old, 'old')).toBe(`ucanlog/logs/${space.did()}`)
    await old.stop()
    await unlink(join(dataDir, 'origin-prefix')) // as a data directory written before the file existed
    const now = await startTestService({ dataDir, originPrefix: 'auto' })
    try {
      expect((await info(now)).originPrefix).toBe('ucanlog')
      expect(await appendOne(now, 'new')).toBe(`ucanlog/logs/${space.did()}`)
    } finally {
      await now.stop()
    }
  })

  it('an explicit prefix is used; one contradicting the data directory is refused, naming both', async () => {
    const dataDir = join(root, 'explicit')
    const svc = await startTestService({ dataDir, originPrefix: 'log.example.com' })
    expect(await appendOne(svc, 'x')).toBe(`log.example.com/logs/${space.did()}`)
    await svc.stop()
    await expect(startTestService({ dataDir, originPrefix: 'other.example.com' })).rejects.toThrow(/other\.example\.com.*log\.example\.com|log\.example\.com.*other\.example\.com/)
    const back = await startTestService({ dataDir, originPrefix: 'auto' })
    try {
      expect((await info(back)).originPrefix).toBe('log.example.com')
    } finally {
      await back.stop()
    }
  })

  it('restore (the built CLI) follows: a log restored from its CARs keeps its derived origin, and serve on it signs under it', async () => {
    const dataA = join(root, 'restore-a')
    const a = await startTestService({ dataDir: dataA, originPrefix: 'auto' })
    const origin = await appendOne(a, 'restored')
    const head = (await (await fetch(`${a.url}/logs/${space.did()}/head`)).json()) as { vkey: string; checkpoint: string }
    await a.stop()
    const dataB = join(root, 'restore-b')
    const out = await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'ucanlog.js'), 'restore', '--space', space.did(), '--cars', join(dataA, 'cars', space.did()), '--data', dataB, '--log-vkey', head.vkey])
    expect(out.stdout).toContain(`restored ${origin}`)
    expect((await readFile(join(dataB, 'origin-prefix'), 'utf8')).trim()).toBe(origin.slice(0, -`/logs/${space.did()}`.length))
    const b = await startTestService({ dataDir: dataB, originPrefix: 'auto' })
    try {
      const restored = (await (await fetch(`${b.url}/logs/${space.did()}/head`)).json()) as { origin: string; checkpoint: string }
      expect(restored).toMatchObject({ origin, checkpoint: head.checkpoint })
      expect(await appendOne(b, 'after')).toBe(origin)
    } finally {
      await b.stop()
    }
  })
})

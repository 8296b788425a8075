/**
 * Disk per space (issue 8's resource model): a space's log holds at most `--max-log-entries`
 * entries, counting those still pending, so one space cannot fill the disk the others share. Over
 * HTTP on the real service; the cap holds across a restart (the size comes from the log's state).
 */
import { rm } from 'node:fs/promises'
import type * as API from '@ucanto/interface'
import { describe, expect, it } from 'vitest'
import { appendInvocation, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import { call, startTestService } from './helpers.js'

const text = (s: string) => new TextEncoder().encode(s)

describe('disk per space (--max-log-entries)', () => {
  it('a space at its entry cap gets LogFull, pending entries included; another space appends; the cap survives a restart', async () => {
    let svc = await startTestService({ maxLogEntries: 3 })
    const dataDir = svc.dataDir
    try {
      const service = svc.did as API.DID
      const [x, xAgent, y, yAgent] = [await generateKey(), await generateKey(), await generateKey(), await generateKey()]
      const xProof = await delegateSpaceToAgent({ space: x, agent: xAgent })
      const yProof = await delegateSpaceToAgent({ space: y, agent: yAgent })
      const appendX = async (entry: string) => (await appendInvocation({ agent: xAgent, service, space: x.did(), entry: text(entry), spaceToAgent: xProof })).delegate()

      // Five appends at once: the cap counts the pending ones, so exactly three are accepted.
      const outs = await Promise.all([0, 1, 2, 3, 4].map(async (i) => call(svc.url, await appendX(`x${i}`))))
      expect(outs.filter((o) => o.ok).length).toBe(3)
      expect(outs.filter((o) => !o.ok).map((o) => o.error?.name)).toEqual(['LogFull', 'LogFull'])
      expect(((await (await fetch(`${svc.url}/logs/${x.did()}/head`)).json()) as { treeSize: number }).treeSize).toBe(3)

      // Another space is not affected.
      const yOut = await call(svc.url, await (await appendInvocation({ agent: yAgent, service, space: y.did(), entry: text('y0'), spaceToAgent: yProof })).delegate())
      expect(yOut.ok, JSON.stringify(yOut.error)).toMatchObject({ index: 0 })

      // After a restart on the same data the log is still full.
      await svc.close()
      svc = await startTestService({ maxLogEntries: 3, dataDir })
      const after = await call(svc.url, await appendX('x after restart'))
      expect(after.error?.name).toBe('LogFull')
      expect(((await (await fetch(`${svc.url}/logs/${x.did()}/head`)).json()) as { treeSize: number }).treeSize).toBe(3)
    } finally {
      await svc.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

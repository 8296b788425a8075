/**
 * Helpers of the read-API and prove/verify tests (issue 13): appends entries to a real service
 * through real UCAN invocations over HTTP, several at once.
 */
import type * as API from '@ucanto/interface'
import type { AuditInput } from '../../src/client/audit.js'
import { parsePolicy } from '../../src/tlog/index.js'
import { appendInvocation, connect, delegateSpaceToAgent, generateKey } from '../../src/ucan/index.js'
import type { AppendResult } from '../../src/ucan/wire.js'

/** A space and an agent it delegated `tlog/append` to. */
export interface Writer {
  space: string
  append(url: string, did: string, entries: Uint8Array[]): Promise<AppendResult[]>
}

/** A fresh space whose agent appends `entries` in order of index (`concurrency` in flight; the result i is entry i's). */
export async function newWriter(concurrency = 16): Promise<Writer> {
  const space = await generateKey()
  const agent = await generateKey()
  const spaceToAgent = await delegateSpaceToAgent({ space, agent })
  return {
    space: space.did(),
    async append(url, did, entries) {
      const conn = connect(`${url}/rpc`, did as API.DID)
      const out: AppendResult[] = new Array(entries.length)
      let next = 0
      const worker = async () => {
        while (next < entries.length) {
          const k = next++
          const inv = await appendInvocation({ agent, service: did as API.DID, space: space.did(), entry: entries[k]!, spaceToAgent })
          const r = (await conn.execute(inv))[0]!.out as { ok?: AppendResult; error?: unknown }
          if (!r.ok) throw new Error(`append refused: ${JSON.stringify(r.error)}`)
          out[k] = r.ok
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, entries.length) }, worker))
      return out
    },
  }
}

/**
 * What {@link auditLog} needs to audit a space's log as the real service at `url` serves it: its
 * files over HTTP (undefined for a non-2xx), the origin and log key from `/head`, the witness policy
 * from `/info`.
 */
export async function servedLog(url: string, space: string): Promise<Pick<AuditInput, 'fetchFile' | 'origin' | 'logVkey' | 'policy'>> {
  const base = `${url}/logs/${space}/`
  const fetchFile = async (p: string) => {
    const res = await fetch(base + p)
    return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined
  }
  const head = (await (await fetch(base + 'head')).json()) as { vkey: string; origin: string }
  const info = (await (await fetch(`${url}/info`)).json()) as { witnessPolicy: string }
  return { fetchFile, origin: head.origin, logVkey: head.vkey, policy: parsePolicy(info.witnessPolicy) }
}

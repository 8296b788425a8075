/**
 * `ucanlog delegate`: the Space → Agent delegation of the three Storacha capabilities
 * (`space/blob/add`, `space/index/add`, `upload/add`), printed in the format of
 * `storacha delegation create --base64`.
 */
import { writeFile } from 'node:fs/promises'
import { Command } from 'commander'
import { delegateSpaceToAgent, formatDelegation } from '../ucan/index.js'
import { readKey } from './key.js'

/** `ucanlog delegate`: prints the Space → Agent delegation in the `storacha delegation create --base64` format. */
export function delegateCommand(): Command {
  return new Command('delegate')
    .description('Delegate space/blob/add, space/index/add and upload/add on a space to an agent (Space → Agent).')
    .requiredOption('--space-key <file>', 'the space key file (from `ucanlog key create`)')
    .requiredOption('--agent <did>', 'the agent did:key')
    .option('--ttl <seconds>', 'lifetime of the delegation in seconds', String(365 * 86400))
    .option('--out <file>', 'write the delegation to a file instead of stdout')
    .action(async (o: { spaceKey: string; agent: string; ttl: string; out?: string }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(o.agent)) throw new Error(`--agent must be a did:key, got ${JSON.stringify(o.agent)}`)
      const ttl = Number(o.ttl)
      if (!Number.isInteger(ttl) || ttl <= 0) throw new Error('--ttl must be a positive integer (seconds)')
      const space = await readKey(o.spaceKey)
      const d = await delegateSpaceToAgent({ space, agent: { did: () => o.agent as `did:key:${string}` }, expiration: Math.floor(Date.now() / 1000) + ttl })
      const text = (await formatDelegation(d)) + '\n'
      if (o.out) await writeFile(o.out, text, { mode: 0o600 })
      else process.stdout.write(text)
    })
}

/**
 * `ucanlog delegate`: the Space → Agent delegation of the three Storacha capabilities
 * (`space/blob/add`, `space/index/add`, `upload/add`), printed in the format of
 * `storacha delegation create --base64`.
 */
import { writeFile } from 'node:fs/promises'
import { Command } from 'commander'
import { delegateSpaceToAgent, formatDelegation } from '../ucan/index.js'
import { UsageError } from './exit-codes.js'
import { readKey } from './key.js'

/**
 * `ucanlog delegate`: prints the Space → Agent delegation in the `storacha delegation create --base64` format,
 * or writes it to `--out` (mode 0600, created exclusively: an existing file is never overwritten).
 * `--json` prints `{ delegation, space, agent, expiration (Unix s), file? }`.
 */
export function delegateCommand(): Command {
  return new Command('delegate')
    .description('Delegate space/blob/add, space/index/add and upload/add on a space to an agent (Space → Agent).')
    .requiredOption('--space-key <file>', 'the space key file (from `ucanlog key create`)')
    .requiredOption('--agent <did>', 'the agent did:key')
    .option('--ttl <seconds>', 'lifetime of the delegation in seconds', String(365 * 86400))
    .option('--out <file>', 'write the delegation to this file (mode 0600, never overwritten) instead of stdout')
    .option('--json', 'print {"delegation","space","agent","expiration","file"} as JSON')
    .action(async (o: { spaceKey: string; agent: string; ttl: string; out?: string; json?: boolean }) => {
      if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]+$/.test(o.agent)) throw new UsageError(`--agent must be a did:key, got ${JSON.stringify(o.agent)}`)
      const ttl = Number(o.ttl)
      if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a positive integer (seconds)')
      const space = await readKey(o.spaceKey)
      const expiration = Math.floor(Date.now() / 1000) + ttl
      const d = await delegateSpaceToAgent({ space, agent: { did: () => o.agent as `did:key:${string}` }, expiration })
      const delegation = await formatDelegation(d)
      if (o.out) {
        // O_EXCL, as `key create`: a delegation file is a credential, and overwriting one loses it.
        await writeFile(o.out, delegation + '\n', { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST') throw new UsageError(`${o.out} already exists; choose another --out (an existing delegation is never overwritten)`)
          throw new UsageError(`cannot write ${o.out} (${err.code ?? err.message}); choose another --out`)
        })
      }
      if (o.json) process.stdout.write(JSON.stringify({ delegation, space: space.did(), agent: o.agent, expiration, ...(o.out && { file: o.out }) }) + '\n')
      else if (!o.out) process.stdout.write(delegation + '\n')
    })
}

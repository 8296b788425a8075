/**
 * `ucanlog revoke`: sends `ucan/revoke` (storacha's capability) for a delegation to the service, so
 * that from then on no append through it is accepted — the second step of rotating an agent key
 * (README "Revocation and key rotation"). The revoker must be in the delegation's chain (the space
 * owner, or the delegation's issuer or audience); anyone else's revocation is logged but changes
 * nothing.
 */
import { readFile } from 'node:fs/promises'
import { Command } from 'commander'
import { connect, parseDelegation, revokeInvocation } from '../ucan/index.js'
import { fetchServiceDID } from './append.js'
import { readKey } from './key.js'

/** The `revoke` command. */
export function revokeCommand(): Command {
  return new Command('revoke')
    .description('Revoke a delegation (ucan/revoke): appends through a chain containing it are refused from then on.')
    .requiredOption('--key <file>', 'the revoker\'s key file: the space key, or the delegation\'s issuer or audience')
    .requiredOption('--delegation <file>', 'the delegation to revoke (from `ucanlog delegate` or `storacha delegation create --base64`)')
    .option('--url <url>', 'service base URL', process.env.UCANLOG_URL ?? 'http://127.0.0.1:8787')
    .action(async (o: { key: string; delegation: string; url: string }) => {
      const issuer = await readKey(o.key)
      const text = (await readFile(o.delegation, 'utf8').catch(() => {
        throw new Error(`cannot read --delegation ${o.delegation}`)
      })).trim()
      const parsed = await parseDelegation(text)
      if (parsed.error) throw new Error(`--delegation ${o.delegation} is not a delegation: ${parsed.error.message}`)
      const service = await fetchServiceDID(o.url)
      const [receipt] = await connect(o.url, service).execute(revokeInvocation({ issuer, service, ucan: parsed.ok }))
      const out = receipt!.out as { ok?: { ucan: string; scope: string; index?: number }; error?: { name: string; message: string } }
      if (out.error) throw new Error(`revocation refused: ${out.error.name}: ${out.error.message}`)
      process.stdout.write(
        `revoked ${out.ok!.ucan} on the authority of ${out.ok!.scope}\n` +
          (out.ok!.index !== undefined ? `revocation log entry ${out.ok!.index} (${o.url.replace(/\/$/, '')}/revocations/entries?since=${out.ok!.index})\n` : ''),
      )
    })
}

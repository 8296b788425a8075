/**
 * `ucanlog revoke`: sends `ucan/revoke` (storacha's capability) for a delegation to the service, so
 * that from then on no append through it is accepted — the second step of rotating an agent key
 * (README "Revocation and key rotation"). The revoker must be in the delegation's chain (the space
 * owner, or the delegation's issuer or audience); anyone else's revocation would have no effect, and
 * the service refuses it (`UnrelatedRevocation`, exit 2). Revoking what is already revoked changes
 * nothing and says so (exit 0).
 */
import { readFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { parseDelegation } from '../client/delegations.js'
import { InvalidDelegationError } from '../client/errors.js'
import { connect, revokeInvocation } from '../ucan/index.js'
import { ServiceRefusedError, UsageError, unreachable, isNetworkError } from './exit-codes.js'
import { readKey } from './key.js'
import { fetchServiceDID, urlOption } from './service-did.js'

/** The service's `ucan/revoke` result (docs/wire.md): `time` Unix ms of the first recording. */
interface RevokeOk {
  time: number
  ucan: string
  scope: string
  index?: number
  alreadyRevoked?: boolean
}

/**
 * The `revoke` command. `--json` prints `{ revoked, scope, time (Unix ms, when first recorded),
 * index?, alreadyRevoked }`.
 */
export function revokeCommand(): Command {
  return new Command('revoke')
    .description('Revoke a delegation (ucan/revoke): appends through a chain containing it are refused from then on.')
    .addOption(new Option('--key <file>', "the revoker's key file: the space key, or the delegation's issuer or audience").env('UCANLOG_REVOKER_KEY').makeOptionMandatory())
    .requiredOption('--delegation <file>', 'the delegation to revoke (from `ucanlog delegate` or `storacha delegation create --base64`)')
    .addOption(urlOption())
    .option('--json', 'print the result as JSON')
    .action(async (o: { key: string; delegation: string; url: string; json?: boolean }) => {
      const issuer = await readKey(o.key)
      const text = await readFile(o.delegation, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read --delegation ${o.delegation} (${err.code ?? err.message})`)
      })
      // The client's parser: surrounding whitespace (the file's newline) ignored, the text never echoed.
      const ucan = await parseDelegation(text).catch((err: unknown) => {
        throw err instanceof InvalidDelegationError ? new UsageError(`--delegation ${o.delegation} is ${err.message}`, { cause: err }) : err
      })
      const service = await fetchServiceDID(o.url)
      let receipt
      try {
        ;[receipt] = await connect(o.url, service).execute(revokeInvocation({ issuer, service, ucan }))
      } catch (err) {
        throw isNetworkError(err) ? unreachable(o.url, err) : err
      }
      const out = receipt!.out as { ok?: RevokeOk; error?: { name: string; message: string } }
      if (out.error) {
        const none = out.error.name === 'UnrelatedRevocation' ? ' Nothing was revoked: revoke with the space key, or the key of the delegation\'s issuer or audience.' : ''
        throw new ServiceRefusedError({ name: out.error.name, message: `revocation refused: ${out.error.name}: ${out.error.message}.${none}` })
      }
      const ok = out.ok!
      const already = ok.alreadyRevoked === true
      if (o.json) {
        process.stdout.write(JSON.stringify({ revoked: ok.ucan, scope: ok.scope, time: ok.time, ...(ok.index !== undefined && { index: ok.index }), alreadyRevoked: already }) + '\n')
        return
      }
      const entry = ok.index !== undefined ? `revocation log entry ${ok.index} (${o.url.replace(/\/$/, '')}/revocations/entries?since=${ok.index})\n` : ''
      process.stdout.write(
        already
          ? `already revoked: ${ok.ucan} on the authority of ${ok.scope} since ${new Date(ok.time).toISOString()}; nothing changed\n` + entry
          : `revoked ${ok.ucan} on the authority of ${ok.scope}\n` + entry,
      )
    })
}

/**
 * The `ucanlog` command: `serve`, `key create`, `delegate`, `append`, `revoke`, `audit`, `witness …`. Every command has
 * `--help`; errors say what to do next and never print a stack trace.
 */
import { Command, Option } from 'commander'
import { appendCommand } from './append.js'
import { auditCommand } from './audit.js'
import { delegateCommand } from './delegate.js'
import { keyCommand } from './key.js'
import { restoreCommand } from './restore.js'
import { revokeCommand } from './revoke.js'
import { serveCommand } from './serve.js'
import { witnessCommand } from './witness.js'

/** Builds the command tree (exported for tests). */
export function program(): Command {
  const p = new Command('ucanlog')
    .description('A transparency log for every Storacha space: UCAN-authorized appends, C2SP tiles, witness cosignatures.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
  p.addCommand(serveCommand())
  p.addCommand(keyCommand())
  p.addCommand(delegateCommand())
  p.addCommand(appendCommand())
  p.addCommand(revokeCommand())
  p.addCommand(auditCommand())
  p.addCommand(restoreCommand())
  p.addCommand(witnessCommand())
  return p
}

/** Runs the CLI with `argv` (process.argv shape). */
export async function main(argv: string[]): Promise<void> {
  await program().parseAsync(argv)
}

export { Option }

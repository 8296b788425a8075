/**
 * The `ucanlog` command: `serve`, `key create`, `delegate`, `append`, `revoke`, `audit`, `witness …`. Every command has
 * `--help`; errors say what to do next and never print a stack trace.
 */
import { Command, Option } from 'commander'
import { VERSION } from '../server/version.js'

/**
 * The subcommands, each loaded only when it runs (or for the top-level --help): `serve` and
 * `restore` pull in the whole service and the Storacha client, which the other commands never need.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.js')).serveCommand(),
  key: async () => (await import('./key.js')).keyCommand(),
  delegate: async () => (await import('./delegate.js')).delegateCommand(),
  append: async () => (await import('./append.js')).appendCommand(),
  revoke: async () => (await import('./revoke.js')).revokeCommand(),
  audit: async () => (await import('./audit.js')).auditCommand(),
  restore: async () => (await import('./restore.js')).restoreCommand(),
  witness: async () => (await import('./witness.js')).witnessCommand(),
}

/**
 * Builds the command tree (exported for tests). With `argv`, only the subcommand it names is
 * loaded; otherwise (or for an unknown name) all of them, so help and errors list every command.
 */
export async function program(argv?: string[]): Promise<Command> {
  const p = new Command('ucanlog')
    .description('A transparency log for every Storacha space: UCAN-authorized appends, C2SP tiles, witness cosignatures.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
  const name = argv?.[2]
  const wanted = name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS)
  for (const c of await Promise.all(wanted.map((n) => COMMANDS[n]!()))) p.addCommand(c)
  return p
}

/** Runs the CLI with `argv` (process.argv shape). */
export async function main(argv: string[]): Promise<void> {
  await (await program(argv)).parseAsync(argv)
}

export { Option }

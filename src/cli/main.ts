/**
 * The `ucanlog` command: `serve`, `key create`, `delegate`, `append`, `revoke`, `audit`, `prove`, `verify`, `witness …`, `monitor`, `db migrate`. Every command has
 * `--help` (ending with its exit status) and `--json`; errors say what to do next and never print a stack trace.
 */
import { Command, CommanderError, Option } from 'commander'
import { VERSION } from '../server/version.js'
import { ExitCode, describeError, exitStatusHelp } from './exit-codes.js'

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
  prove: async () => (await import('./prove.js')).proveCommand(),
  verify: async () => (await import('./verify.js')).verifyCommand(),
  restore: async () => (await import('./restore.js')).restoreCommand(),
  witness: async () => (await import('./witness.js')).witnessCommand(),
  monitor: async () => (await import('./monitor.js')).monitorCommand(),
  db: async () => (await import('./db.js')).dbCommand(),
  'migrate-store': async () => (await import('./migrate-store.js')).migrateStoreCommand(),
}

/** Commands whose --help already has its own "Exit status" section (audit names its failed checks, monitor adds 5). */
const OWN_EXIT_STATUS = new Set(['audit', 'monitor'])

/**
 * Builds the command tree (exported for tests). With `argv`, only the subcommand it names is
 * loaded; otherwise (or for an unknown name) all of them, so help and errors list every command.
 * Every command that runs something gets `--json` (if it has none) and an "Exit status" help
 * section; usage errors are thrown as CommanderError (exit 1) instead of exiting the process, and
 * under `--json` commander prints nothing itself (the error is reported as JSON by {@link run}).
 */
export async function program(argv?: string[]): Promise<Command> {
  const json = argv !== undefined && wantsJson(argv)
  const p = new Command('ucanlog')
    .description('A transparency log for every Storacha space: UCAN-authorized appends, C2SP tiles, witness cosignatures.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', exitStatusHelp())
  const name = argv?.[2]
  const wanted = name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS)
  for (const c of await Promise.all(wanted.map((n) => COMMANDS[n]!()))) p.addCommand(c)
  const visit = (c: Command) => {
    c.exitOverride()
    if (json) c.configureOutput({ outputError: () => {} })
    if (c !== p && c.commands.length === 0) {
      if (!c.options.some((o) => o.long === '--json')) c.option('--json', 'print the result, and any error, as JSON on stdout')
      if (!OWN_EXIT_STATUS.has(c.name())) c.addHelpText('after', exitStatusHelp())
    }
    for (const sub of c.commands) visit(sub)
  }
  visit(p)
  return p
}

/** Whether `argv` (process.argv shape) asks for JSON output: `--json` before any `--`. */
export function wantsJson(argv: readonly string[]): boolean {
  const args = argv.slice(2)
  const end = args.indexOf('--')
  return (end === -1 ? args : args.slice(0, end)).includes('--json')
}

/**
 * Runs the CLI with `argv` (process.argv shape); throws what the command throws (commander's
 * usage errors as CommanderError; help and version are not errors).
 */
export async function main(argv: string[]): Promise<void> {
  try {
    await (await program(argv)).parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return // --help, --version
    throw err
  }
}

/**
 * Runs the CLI and reports an error as bin/ucanlog.js does: one line `ucanlog: <name>: <message>`
 * on stderr (commander's usage errors are already printed by commander), or under `--json` one
 * object `{"error":{"name","message","exitCode"}}` on stdout — except an error carrying a batch
 * `summary` (`append`), whose JSON summary already ends stdout: it is named on stderr; never a stack trace.
 * @returns the exit code ({@link ExitCode}): 0 ok, 1 usage, 2 refused, 3 verification failed, 4 unreachable.
 */
export async function run(argv: string[]): Promise<number> {
  try {
    await main(argv)
    return ExitCode.Ok
  } catch (err) {
    const usage = err instanceof CommanderError
    const e = usage ? { name: 'UsageError', message: err.message.replace(/^error: /, ''), exitCode: ExitCode.Usage } : describeError(err)
    // An error carrying the `summary` of a batch (`append`) was reported by its command, whose JSON
    // summary is the last line on stdout; the error itself then goes to stderr as text.
    if (wantsJson(argv) && !reported(err)) process.stdout.write(JSON.stringify({ error: e }) + '\n')
    // The name is shown for errors that carry their own exit code (it names the failed check or
    // the refusal); other errors print their message alone, as they always did.
    else if (!usage || reported(err)) process.stderr.write(`ucanlog: ${named(err, e.exitCode) ? `${e.name}: ` : ''}${e.message}\n`)
    return e.exitCode
  }
}

/** Whether the command already reported this error's outcome on stdout (a batch error with its `summary`). */
function reported(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { summary?: unknown }).summary !== undefined
}

function named(err: unknown, exitCode: number): boolean {
  return (err as { exitCode?: unknown } | undefined)?.exitCode !== undefined || exitCode !== ExitCode.Usage
}

export { Option }

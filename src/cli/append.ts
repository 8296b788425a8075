/**
 * `ucanlog append`: appends entries as an agent. Per run it creates the Agent → Service delegation
 * (proof: the Space → Agent delegation); per entry it signs a `tlog/append` invocation carrying that
 * delegation and checks the returned inclusion proof against the returned checkpoint. Entries are
 * bytes (src/client/entries.ts), streamed; the batch (src/client/append-batch.ts) goes on past a
 * refused entry unless `--fail-fast`, and with `--journal FILE` it is exactly-once across reruns.
 *
 * Exit codes: 0 all appended (or already appended), 1 usage or input error, 2 an entry refused by
 * the service, 3 an answer that does not verify, 4 the service unreachable, 130 interrupted (SIGINT).
 */
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import cliProgress from 'cli-progress'
import { type AppendSummary, type EntryOutcome, appendBatch } from '../client/append-batch.js'
import { parseDelegation } from '../client/delegations.js'
import { AppendRefusedError, InvalidDelegationError, ServiceRefusedError, ServiceUnreachableError } from '../client/errors.js'
import { namedGet } from '../client/http.js'
import { type LineFormat, type SourceEntry, entriesFromArguments, entriesFromLines, entryFromFile } from '../client/entries.js'
import { Journal } from '../client/journal.js'
import { defaultStateDir, trustFilePath } from '../client/trust-store.js'
import { verifyServiceReceipt } from '../client/verify-append.js'
import { openAppendVerification } from '../client/verify-session.js'
import type { API } from '@ucanto/core'
import { DEFAULT_MAX_BODY_BYTES, connect, createInvocation, delegateAgentToService } from '../ucan/index.js'
import { UsageError } from './exit-codes.js'
import { readKey } from './key.js'
import { urlOption } from './service-did.js'

/** Options of `ucanlog append`, as commander parses them. */
interface AppendOptions {
  agentKey: string
  proof: string
  url: string
  file?: string
  lines?: boolean
  base64?: boolean
  text?: boolean
  journal?: string
  failFast?: boolean
  concurrency: string
  maxBodyBytes: string
  state: string
  logVkey?: string
  witnessPolicy?: string
  json?: boolean
}

/** `ucanlog append`: the command definition (options, help, action). */
export function appendCommand(): Command {
  return new Command('append')
    .description(
      'Append entries to a space\'s log as an agent. Entries come from the arguments (UTF-8), --file (one entry of raw bytes; ' +
        'with --lines one per line), or stdin (one per line). Lines end at \\n only (a \\r stays in the entry); empty lines are skipped. ' +
        'Text lines must be UTF-8: binary data goes through --base64 (one base64 entry per line) or --file. ' +
        'An entry is at most 65535 bytes. Exit codes: 0 ok, 1 usage or input, 2 refused by the service, 3 verification failed, 4 unreachable.',
    )
    .argument('[entries...]', 'entries (UTF-8 strings), one per argument')
    .addOption(new Option('--agent-key <file>', 'the agent key file (from `ucanlog key create`)').env('UCANLOG_AGENT_KEY').makeOptionMandatory())
    .addOption(new Option('--proof <file>', 'the Space → Agent delegation (from `ucanlog delegate` or `storacha delegation create --base64`)').env('UCANLOG_PROOF').makeOptionMandatory())
    .addOption(urlOption())
    .option('--file <file>', 'append this file as one entry of raw bytes (with --lines: one entry per line)')
    .option('--lines', 'split --file into one entry per line')
    .addOption(new Option('--text', 'lines are UTF-8 text, each stored as its bytes (the default; a line that is not UTF-8 is refused)').conflicts('base64'))
    .option('--base64', 'each line (or argument) is one entry in standard padded base64, stored decoded')
    .option('--journal <file>', 'exactly-once journal: record each signed invocation and outcome here; rerun with the same file and input to resume')
    .option('--fail-fast', 'stop at the first entry the service refuses (default: report it and go on)')
    .option('--concurrency <n>', 'invocations in flight', '64')
    .option('--max-body-bytes <n>', 'the service\'s request body limit, checked before sending (its --max-body)', String(DEFAULT_MAX_BODY_BYTES))
    .option('--state <dir>', 'the trust store shared with `ucanlog audit`: pinned service DID, log key, witness policy and the last checkpoint seen, per space (env UCANLOG_STATE)', defaultStateDir())
    .option('--log-vkey <vkey>', 'the log\'s vkey to verify checkpoints with (default: pinned in --state, else trusted on first use from /head)')
    .option('--witness-policy <file>', 'witness policy the checkpoints must meet (default: pinned in --state, else trusted on first use from /info)')
    .option('--json', 'print one JSON object per entry, then one with the summary')
    .action(async (args: string[], o: AppendOptions) => {
      const format: LineFormat = o.base64 ? 'base64' : 'text'
      if (o.lines && !o.file) throw new UsageError('--lines splits --file; stdin is always read one entry per line')
      if (o.file && args.length) throw new UsageError('pass entries as arguments or --file, not both')
      if (o.file && o.base64 && !o.lines) throw new UsageError('--base64 reads lines: add --lines to read --file as base64 lines, or drop --base64 to append its raw bytes')
      const maxBodyBytes = positiveInteger(o.maxBodyBytes, '--max-body-bytes')
      const concurrency = positiveInteger(o.concurrency, '--concurrency')
      // Arguments are checked before anything else is done.
      const source = entrySource(args, o, format)
      if (source === undefined) throw new UsageError('nothing to append: pass entries as arguments, --file, or lines on stdin')

      const agent = await readKey(o.agentKey)
      const proofText = await readFile(o.proof, 'utf8').catch(() => {
        throw new UsageError(`cannot read --proof ${o.proof}; create one with: ucanlog delegate --space-key <space.key> --agent ${agent.did()}`)
      })
      // The client's parser: surrounding whitespace (the file's newline) ignored, the text never echoed.
      const spaceToAgent = await parseDelegation(proofText).catch((err: unknown) => {
        throw err instanceof InvalidDelegationError ? new UsageError(`--proof ${o.proof} is ${err.message}`, { cause: err }) : err
      })
      const space = spaceToAgent.capabilities[0]?.with as `did:key:${string}`
      if (spaceToAgent.audience.did() !== agent.did()) {
        throw new UsageError(`the proof is delegated to ${spaceToAgent.audience.did()}, not to this agent (${agent.did()})`)
      }
      // The receipts are verified against the trust store `ucanlog audit` shares (src/client/verify-session.ts):
      // the service DID, log key and witness policy pinned (trusted on first use), and the last checkpoint seen.
      const reach = namedGet(o.url, fetch, 'check --url / UCANLOG_URL')
      const run = await openAppendVerification({
        url: o.url,
        space,
        stateDir: o.state,
        explicit: { logVkey: o.logVkey, policy: o.witnessPolicy === undefined ? undefined : await readFile(o.witnessPolicy, 'utf8') },
        get: reach,
        // A new space: create its log (tlog/create) to learn its origin and key, from a receipt the service signed.
        createLog: async (did) => {
          const service = did as API.DID
          const a2s = await delegateAgentToService({ agent, service, proofs: [spaceToAgent], space, expiration: spaceToAgent.expiration })
          const inv = await createInvocation({ agent, service, space, agentToService: a2s })
          const [receipt] = await connect(o.url, service).execute(inv)
          await verifyServiceReceipt(receipt as unknown as API.Receipt, service, (await inv.delegate()).cid)
          const out = receipt!.out as { ok?: { origin: string; vkey: string }; error?: { name: string; message: string } }
          if (out.error) throw new ServiceRefusedError({ name: out.error.name, message: `tlog/create refused: ${out.error.name}: ${out.error.message}` })
          return out.ok!
        },
      })
      for (const n of run.notes) process.stderr.write(`note: ${n}\n`)
      const serviceDID = run.anchors.serviceDid as API.DID
      const connection = connect(o.url, serviceDID)
      // One Agent → Service delegation for this run (it lives as long as the Space → Agent proof);
      // every entry is still its own invocation, signed by the agent.
      const agentToService = await delegateAgentToService({ agent, service: serviceDID, proofs: [spaceToAgent], space, expiration: spaceToAgent.expiration })
      const journal = o.journal === undefined ? undefined : await Journal.open(o.journal)

      const bar = !o.json && process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'appending [{bar}] {value}/{total} entries', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined
      let read = 0
      const counted = async function* (): AsyncGenerator<SourceEntry> {
        for await (const e of source()) {
          read++
          if (read === 2) bar?.start(2, 0)
          else bar?.setTotal(read)
          yield e
        }
      }
      const interrupt = new AbortController()
      const onSigint = () => {
        interrupt.abort()
        process.stderr.write('\ninterrupted: finishing the appends in flight (Ctrl-C again to quit at once)\n')
        process.once('SIGINT', () => process.exit(130))
      }
      process.once('SIGINT', onSigint)
      let summary: AppendSummary
      try {
        summary = await appendBatch(counted(), {
          connection,
          agent,
          service: serviceDID,
          space,
          agentToService,
          journal,
          concurrency,
          maxBodyBytes,
          failFast: o.failFast,
          verifier: run.verifier,
          signal: interrupt.signal,
          onOutcome: (out) => {
            bar?.increment()
            if (o.json) process.stdout.write(JSON.stringify(outcomeJson(out)) + '\n')
          },
        })
      } catch (err: unknown) {
        bar?.stop()
        const s = (err as { summary?: AppendSummary }).summary
        if (s) printSummary(s, o.json)
        // Refused entries do not make the others unverified: settle and pin what was verified (its failure, exit 3, wins).
        if (err instanceof AppendRefusedError) await run.finish()
        if (err instanceof ServiceUnreachableError) {
          err.message = `${o.url}: ${err.message}; ${o.journal ? `rerun with the same --journal ${o.journal} to resume (nothing is appended twice)` : 'entries without an answer may or may not be appended; use --journal FILE to be able to resume exactly once'}`
        }
        throw err
      } finally {
        process.removeListener('SIGINT', onSigint)
        await journal?.close()
      }
      bar?.stop()
      if (summary.entries === 0) throw new UsageError('nothing to append: the input has no entries (empty lines are skipped)')
      // Only now, with every checkpoint consistent with the pinned one and the log's current one, are they verified.
      await run.finish()
      printSummary(summary, o.json, trustFilePath(o.state, space))
      if (summary.interrupted) {
        throw Object.assign(new Error(`interrupted after ${summary.appended + summary.alreadyAppended} entries; ${o.journal ? `rerun with the same --journal ${o.journal} and input to resume` : 'the summary above says what was appended'}`), { name: 'Interrupted', exitCode: 130 })
      }
    })
}

/** The entries to append, as a function starting the stream (or undefined when there is no input). */
function entrySource(args: string[], o: AppendOptions, format: LineFormat): (() => AsyncIterable<SourceEntry>) | undefined {
  if (args.length) {
    if (format === 'base64') return () => entriesFromLines(args.map((a) => a + '\n'), 'base64')
    const entries = entriesFromArguments(args)
    return async function* () {
      yield* entries
    }
  }
  const file = o.file
  if (file !== undefined) {
    if (!o.lines) {
      return async function* () {
        yield await entryFromFile(file).catch(fileError(file))
      }
    }
    return () => entriesFromLines(withFileError(createReadStream(file), file), format)
  }
  if (process.stdin.isTTY) return undefined
  return () => entriesFromLines(process.stdin, format)
}

async function* withFileError(stream: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<Uint8Array> {
  try {
    yield* stream
  } catch (err) {
    fileError(file)(err as NodeJS.ErrnoException)
  }
}

function fileError(file: string): (err: NodeJS.ErrnoException) => never {
  return (err) => {
    if (err.code === undefined) throw err
    throw new Error(`cannot read --file ${file} (${err.code}); check the path`)
  }
}

function outcomeJson(out: EntryOutcome): Record<string, unknown> {
  return {
    line: out.line,
    position: out.position,
    status: out.status,
    ...(out.index !== undefined || out.result ? { index: out.index ?? out.result!.index } : {}),
    ...(out.result ? { treeSize: out.result.treeSize, published: out.result.published } : {}),
    ...(out.resent ? { resent: true } : {}),
    ...(out.error ? { error: out.error } : {}),
  }
}

/** Prints the summary; `pinned` (the trust-store file) only once the run settled: then the appends are verified. */
function printSummary(s: AppendSummary, json: boolean | undefined, pinned?: string): void {
  if (json) {
    process.stdout.write(
      JSON.stringify({
        summary: {
          entries: s.entries,
          appended: s.appended,
          alreadyAppended: s.alreadyAppended,
          refused: s.refused.map((r) => ({ line: r.line, position: r.position, error: r.error })),
          unpublished: s.unpublished,
          interrupted: s.interrupted,
          verified: pinned !== undefined && s.unpublished === 0,
          ...(s.last ? { origin: s.last.origin, treeSize: s.last.treeSize, rootHash: s.last.rootHash } : {}),
          ...(s.indexes ? { indexes: s.indexes } : {}),
        },
      }) + '\n',
    )
    return
  }
  const lines = [`appended ${s.appended} entr${s.appended === 1 ? 'y' : 'ies'}${s.last ? ` to ${s.last.origin}` : ''}`]
  if (s.indexes) lines.push(s.indexes.min === s.indexes.max ? `index ${s.indexes.min}` : `indexes ${s.indexes.min}..${s.indexes.max}`)
  if (s.last) lines.push(`tree size ${s.last.treeSize}, root ${s.last.rootHash}`)
  if (s.alreadyAppended) lines.push(`already appended ${s.alreadyAppended} (recorded in the journal or found in the log; not sent again)`)
  if (s.refused.length) {
    lines.push(`refused ${s.refused.length}:`)
    for (const r of s.refused) lines.push(`  line ${r.line}: ${r.error.name}: ${r.error.message}`)
  }
  if (s.unpublished) lines.push(`${s.unpublished} not yet published (witness quorum not met); they are durable and will be published`)
  if (s.appended > s.unpublished && pinned !== undefined) {
    lines.push(`every inclusion proof verified against its cosigned checkpoint, consistent with the last checkpoint seen (pinned in ${pinned})`)
  }
  process.stdout.write(lines.join('\n') + '\n')
}

function positiveInteger(s: string, flag: string): number {
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got ${s}`)
  return n
}

/**
 * `ucanlog append`: appends entries as an agent. Per run it creates the Agent → Service delegation
 * (proof: the Space → Agent delegation); per entry it signs a `tlog/append` invocation carrying that
 * delegation and checks the returned inclusion proof against the returned cosigned checkpoint.
 */
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { Command, Option } from 'commander'
import cliProgress from 'cli-progress'
import { checkAppendResult } from '../client/receipt.js'
import { type AppendResult, appendInvocation, connect, delegateAgentToService, parseDelegation } from '../ucan/index.js'
import { ServiceRefusedError } from './exit-codes.js'
import { readKey } from './key.js'
import { fetchServiceDID, urlOption } from './service-did.js'

/** `ucanlog append`: the command definition (options, help, action). */
export function appendCommand(): Command {
  return new Command('append')
    .description('Append entries to a space\'s log as an agent. Entries come from the arguments, --file, or stdin (one per line).')
    .argument('[entries...]', 'entries (UTF-8 strings), one per argument')
    .addOption(new Option('--agent-key <file>', 'the agent key file (from `ucanlog key create`)').env('UCANLOG_AGENT_KEY').makeOptionMandatory())
    .addOption(new Option('--proof <file>', 'the Space → Agent delegation (from `ucanlog delegate` or `storacha delegation create --base64`)').env('UCANLOG_PROOF').makeOptionMandatory())
    .addOption(urlOption())
    .option('--file <file>', 'append this file as one entry (with --lines: one entry per line)')
    .option('--lines', 'split --file into one entry per line')
    .option('--concurrency <n>', 'invocations in flight', '64')
    .option('--json', 'print one JSON result per entry')
    .action(async (args: string[], o: { agentKey: string; proof: string; url: string; file?: string; lines?: boolean; concurrency: string; json?: boolean }) => {
      const entries = await collectEntries(args, o)
      if (entries.length === 0) throw new Error('nothing to append: pass entries as arguments, --file, or lines on stdin')
      const agent = await readKey(o.agentKey)
      const proofText = (await readFile(o.proof, 'utf8').catch(() => {
        throw new Error(`cannot read --proof ${o.proof}; create one with: ucanlog delegate --space-key <space.key> --agent ${agent.did()}`)
      })).trim()
      const parsed = await parseDelegation(proofText)
      if (parsed.error) throw new Error(`--proof ${o.proof} is not a delegation: ${parsed.error.message}`)
      const spaceToAgent = parsed.ok
      const space = spaceToAgent.capabilities[0]?.with as `did:key:${string}`
      if (spaceToAgent.audience.did() !== agent.did()) {
        throw new Error(`the proof is delegated to ${spaceToAgent.audience.did()}, not to this agent (${agent.did()})`)
      }
      const serviceDID = await fetchServiceDID(o.url)
      const conn = connect(o.url, serviceDID)
      // One Agent → Service delegation for this run (it lives as long as the Space → Agent proof);
      // every entry is still its own invocation, signed by the agent.
      const agentToService = await delegateAgentToService({ agent, service: serviceDID, proofs: [spaceToAgent], space, expiration: spaceToAgent.expiration })

      const bar = entries.length > 1 && !o.json ? new cliProgress.SingleBar({ format: 'appending [{bar}] {value}/{total} entries', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined
      bar?.start(entries.length, 0)
      const results: AppendResult[] = new Array(entries.length)
      const concurrency = Math.max(1, Number(o.concurrency) || 64)
      let next = 0
      const worker = async () => {
        while (next < entries.length) {
          const i = next++
          const inv = await appendInvocation({ agent, service: serviceDID, space, entry: entries[i]!, agentToService })
          const [receipt] = await executeRetrying429(
            () => conn.execute(inv),
            ([r]) => (r?.out as { error?: { name?: string } } | undefined)?.error?.name === 'RateLimited',
          )
          const out = receipt!.out as { ok?: AppendResult; error?: { name: string; message: string } }
          if (out.error) throw new ServiceRefusedError(`append refused: ${out.error.name}: ${out.error.message}`, out.error.name)
          const r = out.ok!
          if (r.published) checkAppendResult(r, entries[i]!)
          results[i] = r
          if (o.json) process.stdout.write(JSON.stringify({ index: r.index, treeSize: r.treeSize, published: r.published }) + '\n')
          bar?.increment()
        }
      }
      try {
        await Promise.all(Array.from({ length: Math.min(concurrency, entries.length) }, worker))
      } finally {
        bar?.stop()
      }
      if (!o.json) {
        const last = results.reduce((a, b) => (b.treeSize > a.treeSize ? b : a))
        const unpublished = results.filter((r) => !r.published).length
        process.stdout.write(
          `appended ${results.length} entr${results.length === 1 ? 'y' : 'ies'} to ${last.origin}\n` +
            (results.length === 1 ? `index ${results[0]!.index}\n` : `indexes ${Math.min(...results.map((r) => r.index))}..${Math.max(...results.map((r) => r.index))}\n`) +
            `tree size ${last.treeSize}, root ${last.rootHash}\n` +
            (unpublished ? `${unpublished} not yet published (witness quorum not met); they are durable and will be published\n` : 'every inclusion proof verified against its cosigned checkpoint\n'),
        )
      }
    })
}

async function collectEntries(args: string[], o: { file?: string; lines?: boolean }): Promise<Uint8Array[]> {
  if (args.length) return args.map((a) => new TextEncoder().encode(a))
  if (o.file) {
    const bytes = new Uint8Array(await readFile(o.file))
    if (!o.lines) return [bytes]
    return splitLines(Buffer.from(bytes).toString('utf8'))
  }
  if (process.stdin.isTTY) return []
  const out: Uint8Array[] = []
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.length) out.push(new TextEncoder().encode(line))
  }
  return out
}

function splitLines(s: string): Uint8Array[] {
  return s
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => new TextEncoder().encode(l))
}

export { fetchServiceDID } from './service-did.js'

/**
 * Runs `send`, waiting and resending while the service answers HTTP 429 or `limited` holds for the
 * answer (a `RateLimited` receipt): rate limited, nothing ran, so resending the same invocation is
 * safe (the service's replay guard makes it safe anyway). Waits 1 s, doubling to 8 s, for at most
 * 5 minutes in all, then returns the last answer; other errors are thrown as they come.
 */
async function executeRetrying429<T>(send: () => T | PromiseLike<T>, limited: (answer: Awaited<T>) => boolean = () => false): Promise<Awaited<T>> {
  let delay = 1000
  for (let waited = 0; ; waited += delay, delay = Math.min(delay * 2, 8000)) {
    try {
      const answer = await send()
      if (!limited(answer) || waited >= 300_000) return answer
    } catch (err) {
      if ((err as { status?: number }).status !== 429 || waited >= 300_000) throw err
    }
    await new Promise((r) => setTimeout(r, delay))
  }
}

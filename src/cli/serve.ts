/** `ucanlog serve`: runs the service on the embedded default (what `npm start` runs). */
import { Command, Option } from 'commander'
import { KNOBS, DEFAULT_CONFIG, resolveConfig } from '../server/config.js'
import { startService } from '../server/service.js'

/** `ucanlog serve`: one option per knob of src/server/config.ts (flag, env var, default), then {@link startService}. */
export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'Run the log service: UCAN RPC on POST /rpc, tlog-tiles reads under /logs/<space>/, the bundled witness under /witness. ' +
      'Keys and state are created in the data directory on first start.',
  )
  for (const k of KNOBS) {
    const flag = k.boolean ? k.flag : `${k.flag} <${k.unit.replace(/\s+/g, '-')}>`
    cmd.addOption(new Option(flag, `${k.description} (env ${k.env})`).default(undefined, String(DEFAULT_CONFIG[k.key])))
  }
  cmd.action(async (opts: Record<string, string>) => {
    const flags: Record<string, string> = {}
    for (const k of KNOBS) {
      const v: unknown = opts[camel(k.flag.slice(2))]
      if (v !== undefined) flags[k.key] = String(v)
    }
    const config = resolveConfig(flags, process.env)
    const svc = await startService(config)
    process.stdout.write(`ucanlog serving on ${svc.url}\n  service DID: ${svc.did}\n  bundled witness: ${svc.witnessVkey}\n  data: ${config.dataDir}\n`)
    let stopping = false
    const stop = async (sig: string) => {
      if (stopping) return
      stopping = true
      process.stdout.write(`${sig}: flushing logs and stopping…\n`)
      await svc.close()
      process.exit(0)
    }
    process.on('SIGINT', () => void stop('SIGINT'))
    process.on('SIGTERM', () => void stop('SIGTERM'))
  })
  return cmd
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}

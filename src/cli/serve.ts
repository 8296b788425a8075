/** `ucanlog serve`: runs the service on the embedded default (what `npm start` runs). */
import { Command, Option } from 'commander'
import { KNOBS, DEFAULT_CONFIG, resolveConfig } from '../server/config.js'
import { ORIGIN_PREFIX_FILE } from '../server/origin-prefix.js'
import { startService } from '../server/service.js'

/** How each origin prefix source reads in the start-up lines. */
const PREFIX_SOURCE: Record<string, string> = {
  stored: `kept in the data directory (${ORIGIN_PREFIX_FILE})`,
  configured: 'from --origin-prefix / UCANLOG_ORIGIN_PREFIX',
  derived: 'derived from the service key',
  legacy: 'this data directory predates derived prefixes',
}

/**
 * `ucanlog serve`: one option per knob of src/server/config.ts (flag, env var, default shown in
 * `--help`), then {@link startService}. Prints its start-up lines (URL, DID, bundled witness, data
 * directory, witness policy and its source, origin prefix and its source) on stdout, or with
 * `--json` one JSON object; warnings go to stderr as `warning: …`.
 */
export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'Run the log service: UCAN RPC on POST /rpc, tlog-tiles reads under /logs/<space>/, the bundled witness under /witness. ' +
      'Keys and state are created in the data directory on first start.',
  )
  for (const k of KNOBS) {
    const flag = k.boolean ? k.flag : `${k.flag} <${k.unit.replace(/\s+/g, '-')}>`
    // The default is in the description: commander shows a default only when the option has a
    // value, and a value here would hide whether the flag or the env var was given.
    cmd.addOption(new Option(flag, `${k.description} (env ${k.env}; default: ${k.defaultText ?? String(DEFAULT_CONFIG[k.key])})`))
  }
  cmd.option('--json', 'print the start-up lines as one JSON object')
  cmd.action(async (opts: Record<string, string | boolean | undefined>) => {
    const flags: Record<string, string> = {}
    for (const k of KNOBS) {
      const v: unknown = opts[camel(k.flag.slice(2))]
      if (v !== undefined) flags[k.key] = String(v)
    }
    const config = resolveConfig(flags, process.env)
    const svc = await startService(config)
    for (const w of svc.warnings) process.stderr.write(`warning: ${w}\n`)
    if (opts.json) {
      process.stdout.write(
        JSON.stringify({
          url: svc.url,
          did: svc.did,
          witnessVkey: svc.witnessVkey,
          dataDir: config.dataDir,
          witnessPolicy: svc.policySource,
          originPrefix: svc.originPrefix,
          originPrefixSource: svc.originPrefixSource,
          database: svc.database ?? null,
        }) + '\n',
      )
    } else {
      process.stdout.write(
        `ucanlog serving on ${svc.url}\n  service DID: ${svc.did}\n  bundled witness: ${svc.witnessVkey}\n` +
          `  witness policy: ${svc.policySource === 'built-in' ? `built-in (the bundled witness alone; ${config.witnessPolicyFile} not found)` : svc.policySource}\n` +
          `  origin prefix: ${svc.originPrefix} (${PREFIX_SOURCE[svc.originPrefixSource]})\n` +
          `  data: ${config.dataDir}\n` +
          (svc.database ? `  logs: PostgreSQL ${svc.database}\n` : ''),
      )
    }
    let stopping = false
    const stop = async (sig: string) => {
      if (stopping) return
      stopping = true
      if (!opts.json) process.stdout.write(`${sig}: flushing logs and stopping…\n`)
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

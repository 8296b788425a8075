#!/usr/bin/env node
// `npm run test:mutation`: Stryker over the security core (stryker.config.mjs), then a per-file table
// of its JSON report (reports/mutation/mutation.json). Extra arguments go to `stryker run`, e.g.
// `npm run test:mutation -- --mutate src/tlog/proof.ts`. `--summary` only prints the table.
import { spawnSync } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const report = join(root, 'reports/mutation/mutation.json')
const args = process.argv.slice(2)

if (!args.includes('--summary')) {
  const started = Date.now()
  const bin = join(root, 'node_modules/.bin/stryker')
  const run = spawnSync(bin, ['run', ...args], { cwd: root, stdio: 'inherit' })
  console.log(`stryker finished in ${Math.round((Date.now() - started) / 1000)} s (exit ${run.status})`)
  if (run.status !== 0) process.exit(run.status ?? 1)
}
if (!existsSync(report)) {
  console.error(`no report at ${report}: run \`npm run test:mutation\` first`)
  process.exit(1)
}
console.log(summarize(JSON.parse(readFileSync(report, 'utf8'))))

/**
 * Markdown table, a row per mutated file: Stryker's score = (killed + timeout) / valid mutants,
 * where valid excludes compile and runtime errors and ignored mutants.
 */
function summarize(json) {
  const rows = []
  const total = { killed: 0, timeout: 0, survived: 0, noCoverage: 0 }
  for (const [file, { mutants }] of Object.entries(json.files).sort(([a], [b]) => a.localeCompare(b))) {
    const c = { killed: 0, timeout: 0, survived: 0, noCoverage: 0 }
    for (const m of mutants) {
      if (m.status === 'Killed') c.killed++
      else if (m.status === 'Timeout') c.timeout++
      else if (m.status === 'Survived') c.survived++
      else if (m.status === 'NoCoverage') c.noCoverage++
    }
    for (const k of Object.keys(total)) total[k] += c[k]
    rows.push(row(file, c))
  }
  return [
    '| file | score | killed | timeout | survived | no coverage |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    row('**all**', total),
  ].join('\n')
}

function row(name, c) {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage
  const score = valid === 0 ? 'n/a' : `${((100 * (c.killed + c.timeout)) / valid).toFixed(1)} %`
  return `| ${name} | ${score} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} |`
}

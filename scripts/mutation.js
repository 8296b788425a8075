#!/usr/bin/env node
// `npm run test:mutation`: Stryker over the security core, one run per group of mutation-groups.mjs,
// then one merged JSON report (reports/mutation/mutation.json) and a per-file table (docs/testing.md).
//
//   npm run test:mutation                          every group
//   npm run test:mutation -- --group tlog          one group (repeatable)
//   npm run test:mutation -- --mutate src/tlog/proof.ts   one file (its group is inferred); other
//                                                  arguments go to `stryker run` as they are
//   npm run test:mutation -- --survivors           re-test only the lines holding a survivor in
//                                                  each group's last report (after writing tests
//                                                  for them: see scripts/mutation-survivors.mjs)
//   npm run test:mutation -- --summary             only print the table of the last reports
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GROUPS } from '../mutation-groups.mjs'
import { mergeStatuses, survivorRanges } from './mutation-survivors.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const reports = join(root, 'reports/mutation')
const args = process.argv.slice(2)

const groups = []
const passThrough = []
let summaryOnly = false
let survivorsOnly = false
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--summary') summaryOnly = true
  else if (a === '--survivors') survivorsOnly = true
  else if (a === '--group') groups.push(...args[++i].split(','))
  else {
    passThrough.push(a)
    if (a === '--mutate' || a === '-m') {
      const files = args[i + 1].split(',').map((f) => f.replace(/:.*$/, ''))
      for (const f of files) {
        const g = Object.entries(GROUPS).find(([, v]) => v.mutate.some((m) => m.replace(/:.*$/, '') === f))
        if (g === undefined) fail(`${f} is in no group of mutation-groups.mjs`)
        if (!groups.includes(g[0])) groups.push(g[0])
      }
    }
  }
}
for (const g of groups) if (!(g in GROUPS)) fail(`unknown group ${g}: one of ${Object.keys(GROUPS).join(', ')}`)
if (groups.length === 0) groups.push(...Object.keys(GROUPS))

if (!summaryOnly) {
  mkdirSync(reports, { recursive: true })
  const started = Date.now()
  for (const g of groups) {
    const t = Date.now()
    const extra = []
    let before
    if (survivorsOnly) {
      before = readReports(g)
      const ranges = survivorRanges(before.report)
      if (ranges.length === 0) {
        console.log(`\n== mutation group ${g}: no survivors in its last report`)
        continue
      }
      extra.push('--force', '--mutate', ranges.join(','))
      console.log(`\n== mutation group ${g}: re-testing ${ranges.length} lines that hold survivors`)
    } else {
      console.log(`\n== mutation group ${g}: ${GROUPS[g].mutate.join(', ')}`)
    }
    const run = spawnSync(join(root, 'node_modules/.bin/stryker'), ['run', ...passThrough, ...extra], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, UCANLOG_MUTATION_GROUP: g },
    })
    console.log(`== group ${g} finished in ${seconds(t)} s (exit ${run.status})`)
    if (run.status !== 0) process.exit(run.status ?? 1)
    if (before !== undefined) {
      // Stryker wrote only the re-tested lines: put them back into the full report and incremental file.
      const partial = JSON.parse(readFileSync(join(reports, `${g}.json`), 'utf8'))
      const changed = mergeStatuses(before.report, partial)
      mergeStatuses(before.incremental, partial)
      writeFileSync(join(reports, `${g}.json`), JSON.stringify(before.report))
      writeFileSync(join(reports, `${g}.incremental.json`), JSON.stringify(before.incremental))
      console.log(`== group ${g}: ${changed} results changed`)
    }
  }
  console.log(`\nall groups finished in ${seconds(started)} s on ${new Date().toISOString().slice(0, 10)}`)
}

const merged = merge()
writeFileSync(join(reports, 'mutation.json'), JSON.stringify(merged))
console.log(summarize(merged))

/** A group's last full report and incremental file (both needed by `--survivors`). */
function readReports(g) {
  const p = join(reports, `${g}.json`)
  const inc = join(reports, `${g}.incremental.json`)
  if (!existsSync(p) || !existsSync(inc)) fail(`--survivors needs a full report of group ${g}: run \`npm run test:mutation -- --group ${g}\` first`)
  return { report: JSON.parse(readFileSync(p, 'utf8')), incremental: JSON.parse(readFileSync(inc, 'utf8')) }
}

function merge() {
  const out = { schemaVersion: '2', thresholds: { high: 95, low: 90 }, files: {}, testFiles: {} }
  for (const g of Object.keys(GROUPS)) {
    const p = join(reports, `${g}.json`)
    if (!existsSync(p)) continue
    const r = JSON.parse(readFileSync(p, 'utf8'))
    Object.assign(out.files, r.files)
    for (const [k, v] of Object.entries(r.testFiles ?? {})) out.testFiles[`${g}:${k}`] = v
  }
  if (Object.keys(out.files).length === 0) fail(`no reports in ${reports}: run \`npm run test:mutation\` first`)
  return out
}

/**
 * Markdown table, a row per mutated file: Stryker's score = (killed + timeout) / valid mutants,
 * where valid excludes compile and runtime errors and ignored mutants.
 */
function summarize(json) {
  const total = count([])
  const rows = Object.entries(json.files)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([file, { mutants }]) => {
      const c = count(mutants)
      for (const k of Object.keys(total)) total[k] += c[k]
      return row(file, c)
    })
  return [
    '| file | score | killed | timeout | survived | no coverage | ignored |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    row('**all**', total),
  ].join('\n')
}

function count(mutants) {
  const c = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, ignored: 0 }
  const key = { Killed: 'killed', Timeout: 'timeout', Survived: 'survived', NoCoverage: 'noCoverage', Ignored: 'ignored' }
  for (const m of mutants) if (key[m.status]) c[key[m.status]]++
  return c
}

function row(name, c) {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage
  const score = valid === 0 ? 'n/a' : `${((100 * (c.killed + c.timeout)) / valid).toFixed(1)} %`
  return `| ${name} | ${score} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.ignored} |`
}

function seconds(since) {
  return Math.round((Date.now() - since) / 1000)
}

function fail(message) {
  console.error(`test:mutation: ${message}`)
  process.exit(1)
}

#!/usr/bin/env node
// `npm run bench`: runs every benchmark and prints its figures with the machine and date.
// Benchmarks are not tests: nothing here asserts a time. Record results in BENCHMARKS.md.
// `node bench/run.js instances` runs bench/instances.js (one instance on the file store, one and two
// on PostgreSQL; needs PostgreSQL's server binaries: `npm run bench:instances` installs them); it is
// not in the default list.
import os from 'node:os'

const which = process.argv.slice(2)
const suites = which.length === 0 ? ['engine', 'engine-scale', 'lookup-index', 'ucan', 'rpc', 'throughput'] : ['engine', 'engine-scale', 'lookup-index', 'ucan', 'rpc', 'throughput', 'instances'].filter((s) => which.includes(s))
console.log(`ucanlog benchmarks — ${new Date().toISOString()}`)
console.log(`machine: ${os.cpus()[0]?.model} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`)
for (const s of suites) {
  console.log(`\n## ${s}`)
  const { run } = await import(`./${s}.js`)
  await run((name, value, unit) => console.log(`${name.padEnd(96)} ${value.toFixed(value < 100 ? 1 : 0).padStart(10)} ${unit}`))
}

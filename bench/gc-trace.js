// The live V8 heap over a process's life, from node's `--trace-gc` lines (issue 15: is memory
// growing, or only the garbage between full collections?). A heap's "used" figure, sampled at
// random times, floats with the garbage not yet collected; the size right after a mark-compact is
// what is still reachable. This prints, per minute of each process (by pid) and per isolate, how
// many mark-compacts ran and the smallest and largest heap right after one, in MiB. The column
// "main" is the isolate with the largest heap reserved (the figure in parentheses) at its last
// mark-compact: ucanlog's worker threads are capped far below the main thread (64 + 8 MiB); the
// others are worker threads by isolate address. Minutes are V8's clock of each line.
//
//   node bench/gc-trace.js <log>...   e.g. the serve log bench/soak.js keeps, run with
//                                      BENCH_SOAK_NODE_ARGS="--max-old-space-size=192 --trace-gc"
//
// Other lines (pino's JSON) are skipped. Nothing here is a test.
import { readFileSync } from 'node:fs'

// [1928:0x4531bf00]   104277 ms: Mark-Compact 35.8 (71.6) -> 27.4 (70.8) MB, ...
const LINE = /^\[(\d+):(0x[0-9a-f]+)\]\s+(\d+) ms: Mark-Compact(?: \(reduce\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: node bench/gc-trace.js <log>... (a log of a node process run with --trace-gc)')
  process.exit(2)
}

/** pid → isolate address → minute → { n, min, max } of the heap after each mark-compact (MiB). */
const byPid = new Map()
/** pid → isolate address → the heap reserved (MiB) at its last mark-compact. */
const reserved = new Map()
for (const file of files) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = LINE.exec(line)
    if (m === null) continue
    const [, pid, isolate, ms, , , after, afterReserved] = m
    if (!reserved.has(pid)) reserved.set(pid, new Map())
    reserved.get(pid).set(isolate, Number(afterReserved))
    const minute = Math.floor(Number(ms) / 60_000)
    const isolates = byPid.get(pid) ?? new Map()
    byPid.set(pid, isolates)
    const minutes = isolates.get(isolate) ?? new Map()
    isolates.set(isolate, minutes)
    const cell = minutes.get(minute) ?? { n: 0, min: Infinity, max: -Infinity }
    const v = Number(after)
    cell.n++
    cell.min = Math.min(cell.min, v)
    cell.max = Math.max(cell.max, v)
    minutes.set(minute, cell)
  }
}
if (byPid.size === 0) {
  console.error('no --trace-gc mark-compact lines found')
  process.exit(1)
}

for (const [pid, isolates] of byPid) {
  const bySize = [...reserved.get(pid)].sort((x, y) => y[1] - x[1]).map(([a]) => a)
  const names = bySize.map((a, i) => ({ a, name: i === 0 ? 'main' : `worker ${a}` }))
  const last = Math.max(...[...isolates.values()].flatMap((m) => [...m.keys()]))
  console.log(`\npid ${pid}: heap right after each mark-compact, MiB (count: min–max) per minute of the process`)
  console.log(`| minute | ${names.map((n) => n.name).join(' | ')} |`)
  console.log(`|---|${names.map(() => '---').join('|')}|`)
  for (let minute = 0; minute <= last; minute++) {
    const cells = names.map(({ a }) => {
      const c = isolates.get(a)?.get(minute)
      return c === undefined ? '' : `${c.n}: ${c.min.toFixed(1)}–${c.max.toFixed(1)}`
    })
    if (cells.every((c) => c === '')) continue
    console.log(`| ${minute} | ${cells.join(' | ')} |`)
  }
}

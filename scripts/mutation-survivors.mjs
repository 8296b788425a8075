// Re-testing a group's survivors (`npm run test:mutation -- --survivors`, docs/testing.md).
//
// Stryker's incremental mode reuses a survivor's result unless it sees a new test covering the
// mutant, and with vitest it does not see tests added to an existing file: after writing tests for
// survivors, a plain rerun still reports them as survivors. So this mode re-runs, with `--force`,
// only the source lines that hold a survivor or an uncovered mutant in the group's last report, and
// writes each fresh result back into that report (and the incremental file), leaving every other
// result as it was.

/** Identifies a mutant across runs: file, mutator, replacement and exact location. */
function key(file, m) {
  const { start, end } = m.location
  return `${file}|${m.mutatorName}|${m.replacement ?? ''}|${start.line}:${start.column}-${end.line}:${end.column}`
}

/**
 * The `--mutate` ranges (`file:line-line`, one per line) holding a Survived or NoCoverage mutant
 * in a Stryker JSON report; empty when there is none.
 */
export function survivorRanges(report) {
  const ranges = new Set()
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      if (m.status === 'Survived' || m.status === 'NoCoverage') ranges.add(`${file}:${m.location.start.line}-${m.location.end.line}`)
    }
  }
  return [...ranges]
}

/**
 * Copies into `full` the status of every mutant that `partial` re-tested (matched by file, mutator,
 * replacement and location; the source must be the same, so a file whose text changed since `full`
 * was written is refused). Returns how many results changed.
 * @throws Error when a re-tested file's source differs from the full report's.
 */
export function mergeStatuses(full, partial) {
  let changed = 0
  for (const [file, { source, mutants }] of Object.entries(partial.files)) {
    const target = full.files[file]
    if (target === undefined) continue
    if (target.source !== source) throw new Error(`${file} changed since the group's last full run: run the group again first`)
    const fresh = new Map(mutants.map((m) => [key(file, m), m]))
    target.mutants = target.mutants.map((m) => {
      const f = fresh.get(key(file, m))
      if (f === undefined || f.status === m.status) return m
      changed++
      return { ...m, status: f.status, statusReason: f.statusReason, killedBy: f.killedBy, coveredBy: f.coveredBy, testsCompleted: f.testsCompleted }
    })
  }
  return changed
}

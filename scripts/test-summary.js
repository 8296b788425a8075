#!/usr/bin/env node
// Prints "N passed, N failed[, N skipped]" from vitest's JSON report (used by .ci/run).
import { readFileSync } from 'node:fs'

const file = process.argv[2] ?? 'test-results.json'
let r
try {
  r = JSON.parse(readFileSync(file, 'utf8'))
} catch {
  console.log('0 passed, 1 failed')
  process.exit(1)
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ''))

#!/usr/bin/env node
// The `ucanlog` command. The TypeScript sources are compiled to dist/ by `npm ci` (the prepare script).
import { main } from '../dist/src/cli/main.js'

// An error prints as `ucanlog: <name>: <message>` (the name only when it says more than "Error"), and
// exits with the error's `exitCode` when it has one (`ucanlog audit`: 2 when the log fails a check), else 1.
main(process.argv).catch((err) => {
  const name = typeof err?.name === 'string' && err.name !== 'Error' ? `${err.name}: ` : ''
  process.stderr.write(`ucanlog: ${name}${err?.message ?? err}\n`)
  process.exitCode = Number.isInteger(err?.exitCode) && err.exitCode > 0 ? err.exitCode : 1
})
